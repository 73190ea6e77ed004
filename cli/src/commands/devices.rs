//! `belay devices`: the serial ports present, and which look like
//! MicroPython boards.

use anyhow::Result;

use super::Ctx;
use crate::output::{outln, print_json};

pub(crate) fn devices(out: &Ctx) -> Result<()> {
    let devs = belay_core::board::devices()?;
    if out.json {
        print_json(&devs)?;
        return Ok(());
    }
    if devs.is_empty() {
        out.info("no serial ports found");
        return Ok(());
    }
    for d in &devs {
        let ids = match (&d.vid, &d.pid) {
            (Some(v), Some(p)) => format!("{v}:{p}"),
            _ => "-".into(),
        };
        let who = [d.manufacturer.as_deref(), d.product.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        let mark = if d.micropython { "*" } else { " " };
        outln!(
            "{mark} {:<16} {:<10} {:<9} {}{}",
            d.port,
            d.kind,
            ids,
            who,
            d.board
                .as_ref()
                .map(|b| format!("  [{b}]"))
                .unwrap_or_default()
        )?;
    }
    out.info("* likely a MicroPython board; back one up with: belay backup serial:PORT");
    Ok(())
}
