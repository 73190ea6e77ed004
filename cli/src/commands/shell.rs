//! `belay completions SHELL` and `belay man`: generated from the clap
//! definitions, so they never drift from `--help`.

use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;

use super::Ctx;
use crate::args::Cli;

pub(crate) fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, &mut cmd, "belay", &mut out);
    Ok(())
}

pub(crate) fn man(ctx: &Ctx, dir: Option<&Path>) -> Result<()> {
    let cmd = Cli::command();
    let Some(dir) = dir else {
        let mut out = std::io::stdout().lock();
        clap_mangen::Man::new(cmd).render(&mut out)?;
        return Ok(());
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // One page per command, named as git's: belay-backup.1, ...
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();
    let mut pages = vec![cmd.clone()];
    pages.extend(
        cmd.get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| s.clone().display_name(format!("belay-{}", s.get_name()))),
    );
    for page in pages {
        let path = clap_mangen::Man::new(page)
            .generate_to(dir)
            .with_context(|| format!("cannot write a man page into {}", dir.display()))?;
        written.push(path);
    }
    if ctx.json {
        crate::output::print_json(&serde_json::json!({ "dir": dir, "pages": written }))?;
    } else {
        ctx.info(format!(
            "wrote {} man pages into {} (read one with: man -l {})",
            written.len(),
            dir.display(),
            dir.join("belay-backup.1").display()
        ));
    }
    Ok(())
}
