//! Parsing a SOURCE / TARGET argument: `dir:PATH`, `serial:PORT[@BAUD]`, or
//! a plain path. PORT may be mpremote's short names (`a0` is
//! `/dev/ttyACM0`, `u0` `/dev/ttyUSB0`, `c0` `COM0`) or `auto`, the only
//! MicroPython board connected.

use std::path::PathBuf;

pub const DEFAULT_BAUD: u32 = 115_200;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    Dir(PathBuf),
    Serial { port: String, baud: u32 },
}

impl Location {
    pub fn parse(s: &str) -> Result<Location, String> {
        if let Some(rest) = s.strip_prefix("dir:") {
            if rest.is_empty() {
                return Err("dir: needs a path, e.g. dir:./board".into());
            }
            return Ok(Location::Dir(PathBuf::from(rest)));
        }
        if let Some(rest) = s.strip_prefix("serial:") {
            let (port, baud) = match rest.rsplit_once('@') {
                Some((p, b)) => (
                    p,
                    b.parse::<u32>()
                        .ok()
                        .filter(|b| *b > 0)
                        .ok_or_else(|| format!("invalid baud rate {b:?} in {s:?}"))?,
                ),
                None => (rest, DEFAULT_BAUD),
            };
            if port.is_empty() {
                return Err("serial: needs a port, e.g. serial:/dev/ttyACM0".into());
            }
            let port = if port == "auto" {
                auto_port()?
            } else {
                short_port_name(port).unwrap_or_else(|| port.to_string())
            };
            return Ok(Location::Serial { port, baud });
        }
        if s.is_empty() {
            return Err("empty source".into());
        }
        if looks_like_a_port(s) {
            return Err(format!(
                "{s} is a serial port: write serial:{s} to use the board on it (a folder is dir:PATH)"
            ));
        }
        Ok(Location::Dir(PathBuf::from(s)))
    }
}

/// mpremote's short names: `aN` → `/dev/ttyACMN`, `uN` → `/dev/ttyUSBN`,
/// `cN` → `COMN`.
fn short_port_name(s: &str) -> Option<String> {
    let (kind, n) = s.split_at_checked(1)?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(match kind {
        "a" => format!("/dev/ttyACM{n}"),
        "u" => format!("/dev/ttyUSB{n}"),
        "c" => format!("COM{n}"),
        _ => return None,
    })
}

/// A plain argument that names a serial device rather than a folder.
fn looks_like_a_port(s: &str) -> bool {
    let dev = ["/dev/tty", "/dev/cu.", "/dev/serial/", "/dev/rfcomm"];
    if dev.iter().any(|p| s.starts_with(p)) {
        return true;
    }
    s.strip_prefix("COM")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        && !std::path::Path::new(s).exists()
}

/// `serial:auto`: the port of the only connected board whose USB ids say
/// MicroPython; otherwise an error listing what there is.
fn auto_port() -> Result<String, String> {
    let devs = crate::devices::list()
        .map_err(|e| format!("serial:auto: cannot list serial ports: {e}"))?;
    let boards: Vec<&crate::devices::Device> =
        devs.iter().filter(|d| d.micropython_likely).collect();
    match boards.as_slice() {
        [one] => Ok(one.port.clone()),
        [] => {
            let ports: Vec<&str> = devs.iter().map(|d| d.port.as_str()).collect();
            Err(if ports.is_empty() {
                "serial:auto: no MicroPython board is connected (no serial ports at all); plug one in, or name the port: serial:/dev/ttyACM0".into()
            } else {
                format!(
                    "serial:auto: no port looks like a MicroPython board by its USB ids (ports: {}); name one, e.g. serial:{}",
                    ports.join(", "),
                    ports[0]
                )
            })
        }
        many => {
            let list: Vec<String> = many
                .iter()
                .map(|d| match &d.board {
                    Some(b) => format!("{} ({b})", d.port),
                    None => d.port.clone(),
                })
                .collect();
            Err(format!(
                "serial:auto: several MicroPython boards are connected: {}; name one, e.g. serial:{}",
                list.join(", "),
                many[0].port
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_forms() {
        assert_eq!(
            Location::parse("serial:/dev/ttyACM0@921600").unwrap(),
            Location::Serial {
                port: "/dev/ttyACM0".into(),
                baud: 921600
            }
        );
        assert_eq!(
            Location::parse("serial:/dev/ttyUSB0").unwrap(),
            Location::Serial {
                port: "/dev/ttyUSB0".into(),
                baud: DEFAULT_BAUD
            }
        );
        assert_eq!(
            Location::parse("dir:x").unwrap(),
            Location::Dir(PathBuf::from("x"))
        );
        assert_eq!(
            Location::parse("./a b").unwrap(),
            Location::Dir(PathBuf::from("./a b"))
        );
        assert!(Location::parse("serial:").is_err());
        for (short, port) in [
            ("a0", "/dev/ttyACM0"),
            ("u12", "/dev/ttyUSB12"),
            ("c3", "COM3"),
        ] {
            assert_eq!(
                Location::parse(&format!("serial:{short}@9600")).unwrap(),
                Location::Serial {
                    port: port.into(),
                    baud: 9600
                }
            );
        }
        assert!(
            Location::parse("/dev/ttyACM0")
                .unwrap_err()
                .contains("serial:/dev/ttyACM0")
        );
        assert!(Location::parse("serial:/dev/x@fast").is_err());
    }
}
