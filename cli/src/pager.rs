//! Long human output on a terminal (`belay log`): a pager as git runs it,
//! and colour.
//!
//! - Pager: `BELAY_PAGER`, else `PAGER`, else `less`; run by `sh -c`, with
//!   `LESS=FRX` when `LESS` is unset (quit when the text fits on one screen,
//!   pass colours through, keep the text on the screen after quitting). Only
//!   when stdout is a terminal; never with `--no-pager`, `--json`, or a
//!   pager of `""` or `cat`.
//! - Colour: `--color always|never|auto`; auto colours only a terminal and
//!   honours `NO_COLOR`, `CLICOLOR_FORCE` and `TERM=dumb` (as anstream does).

use std::io::{self, IsTerminal, Write};
use std::process::{Child, Command, Stdio};

use anstyle::Style;

use crate::args::ColorWhen;

/// Where long output goes: a pager's stdin or stdout. Dropping it waits for
/// the pager, so the shell's prompt does not come back under it.
pub(crate) struct Out {
    child: Option<Child>,
    sink: Box<dyn Write>,
    pub colour: bool,
}

impl Out {
    pub(crate) fn new(colour: ColorWhen, pager: bool) -> Out {
        let tty = io::stdout().is_terminal();
        let colour = match colour {
            ColorWhen::Always => true,
            ColorWhen::Never => false,
            ColorWhen::Auto => {
                anstream::AutoStream::choice(&io::stdout()) != anstream::ColorChoice::Never
            }
        };
        if pager
            && tty
            && let Some(mut child) = spawn_pager()
        {
            let stdin = child.stdin.take().expect("piped");
            return Out {
                child: Some(child),
                sink: Box::new(io::BufWriter::new(stdin)),
                colour,
            };
        }
        Out {
            child: None,
            sink: Box::new(io::BufWriter::new(io::stdout())),
            colour,
        }
    }

    /// `text` in `style` when colouring.
    pub(crate) fn paint(&self, style: Style, text: &str) -> String {
        if self.colour {
            format!("{}{text}{}", style.render(), style.render_reset())
        } else {
            text.to_string()
        }
    }
}

fn spawn_pager() -> Option<Child> {
    let cmd = std::env::var("BELAY_PAGER")
        .or_else(|_| std::env::var("PAGER"))
        .unwrap_or_else(|_| "less".into());
    let cmd = cmd.trim();
    if cmd.is_empty() || cmd == "cat" {
        return None;
    }
    let mut c = Command::new("sh");
    c.arg("-c").arg(cmd).stdin(Stdio::piped());
    if std::env::var_os("LESS").is_none() {
        c.env("LESS", "FRX");
    }
    // A pager that cannot be started: print without one.
    c.spawn().ok()
}

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sink.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.sink.flush()
    }
}

impl Drop for Out {
    fn drop(&mut self) {
        let _ = self.sink.flush();
        // Close the pager's stdin, then wait for the user to quit it.
        self.sink = Box::new(io::sink());
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }
}
