//! Parsing a SOURCE / TARGET argument: `dir:PATH`, `serial:PORT[@BAUD]`, or
//! a plain path.

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
            return Ok(Location::Serial {
                port: port.to_string(),
                baud,
            });
        }
        if s.is_empty() {
            return Err("empty source".into());
        }
        Ok(Location::Dir(PathBuf::from(s)))
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
        assert!(Location::parse("serial:/dev/x@fast").is_err());
    }
}
