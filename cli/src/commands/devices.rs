//! `belay devices`: the serial ports present, and which look like
//! MicroPython boards.

use anyhow::{Context, Result};
use belay_transport::devices;
use serde_json::json;

use super::Ctx;
use crate::output::{outln, print_json};

pub(crate) fn devices(out: &Ctx) -> Result<()> {
    let devs = devices::list().context("cannot list serial ports")?;
    if out.json {
        let arr: Vec<_> = devs
            .iter()
            .map(|d| {
                json!({
                    "port": d.port,
                    "type": d.kind,
                    "vid": d.vid.map(|v| format!("{v:04x}")),
                    "pid": d.pid.map(|v| format!("{v:04x}")),
                    "serial_number": d.serial_number,
                    "manufacturer": d.manufacturer,
                    "product": d.product,
                    "board": d.board,
                    "micropython": d.micropython_likely,
                    "uart_bridge": d.uart_bridge,
                })
            })
            .collect();
        print_json(&serde_json::Value::Array(arr))?;
        return Ok(());
    }
    if devs.is_empty() {
        out.info("no serial ports found");
        return Ok(());
    }
    for d in &devs {
        let ids = match (d.vid, d.pid) {
            (Some(v), Some(p)) => format!("{v:04x}:{p:04x}"),
            _ => "-".into(),
        };
        let who = [d.manufacturer.as_deref(), d.product.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        let mark = if d.micropython_likely { "*" } else { " " };
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
