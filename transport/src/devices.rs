//! `belay devices`: the serial ports present, with USB ids, and a guess at
//! which are MicroPython boards (from their USB vendor and product ids).

use serialport::{SerialPortType, available_ports};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub port: String,
    /// "usb", "pci", "bluetooth" or "unknown".
    pub kind: &'static str,
    pub vid: Option<u16>,
    pub pid: Option<u16>,
    pub serial_number: Option<String>,
    pub manufacturer: Option<String>,
    pub product: Option<String>,
    /// What the USB ids suggest, e.g. "Raspberry Pi RP2040 (Pico)".
    pub board: Option<String>,
    /// True when the ids belong to a MicroPython board (native USB);
    /// false for USB-serial bridges, which may or may not have one behind.
    pub micropython_likely: bool,
    /// True for a UART bridge (its input buffer is small: writes go one
    /// frame at a time).
    pub uart_bridge: bool,
}

/// What the USB ids say: (description, native MicroPython USB, UART bridge).
pub fn classify(vid: u16, pid: u16) -> Option<(&'static str, bool, bool)> {
    Some(match (vid, pid) {
        (0x2e8a, 0x0005) => ("Raspberry Pi RP2040 (Pico) with MicroPython", true, false),
        (0x2e8a, 0x000f) => ("Raspberry Pi RP2350 (Pico 2) with MicroPython", true, false),
        (0x2e8a, 0x0003) => (
            "Raspberry Pi RP2040 in BOOTSEL mode (no MicroPython running)",
            false,
            false,
        ),
        (0x2e8a, _) => ("Raspberry Pi RP2040/RP2350 board", true, false),
        (0xf055, 0x9800) => (
            "MicroPython board (pyboard / generic MicroPython USB)",
            true,
            false,
        ),
        (0xf055, _) => ("MicroPython board", true, false),
        (0x303a, 0x1001) => ("Espressif ESP32-S3/C3/C6 USB-Serial-JTAG", true, false),
        (0x303a, _) => ("Espressif ESP32-S2/S3 native USB", true, false),
        (0x239a, _) => ("Adafruit board (MicroPython or CircuitPython)", true, false),
        (0x1209, 0xadda) => ("MicroPython board (pid.codes)", true, false),
        (0x10c4, 0xea60) => ("CP210x UART bridge (ESP32/ESP8266?)", false, true),
        (0x1a86, 0x7523) | (0x1a86, 0x55d4) | (0x1a86, 0x7522) => {
            ("CH34x UART bridge (ESP32/ESP8266?)", false, true)
        }
        (0x0403, 0x6001) | (0x0403, 0x6010) | (0x0403, 0x6014) | (0x0403, 0x6015) => {
            ("FTDI UART bridge (ESP32/ESP8266?)", false, true)
        }
        (0x0483, 0x5740) => ("STM32 virtual COM port (pyboard?)", true, false),
        (0x0483, 0x374b) | (0x0483, 0x374e) => {
            ("ST-Link virtual COM port (STM32 Nucleo?)", false, true)
        }
        (0x1366, _) => ("SEGGER J-Link virtual COM port (nRF?)", false, true),
        (0x2341, _) => ("Arduino board", false, false),
        _ => return None,
    })
}

/// Every serial port the system reports, in name order.
pub fn list() -> std::io::Result<Vec<Device>> {
    let ports = available_ports().map_err(std::io::Error::other)?;
    let mut out: Vec<Device> = ports
        .into_iter()
        .map(|p| match p.port_type {
            SerialPortType::UsbPort(u) => {
                let c = classify(u.vid, u.pid);
                Device {
                    port: p.port_name,
                    kind: "usb",
                    vid: Some(u.vid),
                    pid: Some(u.pid),
                    serial_number: u.serial_number,
                    manufacturer: u.manufacturer,
                    product: u.product,
                    board: c.map(|c| c.0.to_string()),
                    micropython_likely: c.is_some_and(|c| c.1),
                    uart_bridge: c.is_some_and(|c| c.2),
                }
            }
            other => Device {
                port: p.port_name,
                kind: match other {
                    SerialPortType::PciPort => "pci",
                    SerialPortType::BluetoothPort => "bluetooth",
                    _ => "unknown",
                },
                vid: None,
                pid: None,
                serial_number: None,
                manufacturer: None,
                product: None,
                board: None,
                micropython_likely: false,
                uart_bridge: false,
            },
        })
        .collect();
    out.sort_by(|a, b| a.port.cmp(&b.port));
    Ok(out)
}

/// A USB vendor id, and optionally a product id, that `belay watch`
/// treats as a board.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UsbId {
    pub vid: u16,
    pub pid: Option<u16>,
}

impl UsbId {
    /// `2e8a`, `0x2e8a` or `2e8a:0005` (hex).
    pub fn parse(s: &str) -> Result<UsbId, String> {
        let hex = |t: &str| {
            let t = t.trim();
            let t = t
                .strip_prefix("0x")
                .or_else(|| t.strip_prefix("0X"))
                .unwrap_or(t);
            (!t.is_empty() && t.len() <= 4)
                .then(|| u16::from_str_radix(t, 16).ok())
                .flatten()
        };
        let bad = || {
            format!(
                "{s:?}: give a USB vendor id in hex, optionally with a product id, e.g. 2e8a or 2e8a:0005"
            )
        };
        match s.split_once(':') {
            Some((v, p)) => Ok(UsbId {
                vid: hex(v).ok_or_else(bad)?,
                pid: Some(hex(p).ok_or_else(bad)?),
            }),
            None => Ok(UsbId {
                vid: hex(s).ok_or_else(bad)?,
                pid: None,
            }),
        }
    }

    pub fn matches(&self, d: &Device) -> bool {
        d.vid == Some(self.vid) && self.pid.is_none_or(|p| d.pid == Some(p))
    }
}

impl std::fmt::Display for UsbId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pid {
            Some(p) => write!(f, "{:04x}:{p:04x}", self.vid),
            None => write!(f, "{:04x}", self.vid),
        }
    }
}

/// The USB vendors whose serial ports `belay watch` backs up by default:
/// MicroPython's own boards (native USB) and the USB-serial bridges most
/// ESP32/ESP8266 boards carry.
pub const WATCH_DEFAULT_USB: [UsbId; 7] = [
    UsbId {
        vid: 0x2e8a,
        pid: None,
    }, // Raspberry Pi RP2040 / RP2350
    UsbId {
        vid: 0x303a,
        pid: None,
    }, // Espressif native USB
    UsbId {
        vid: 0xf055,
        pid: None,
    }, // MicroPython
    UsbId {
        vid: 0x239a,
        pid: None,
    }, // Adafruit
    UsbId {
        vid: 0x10c4,
        pid: None,
    }, // Silicon Labs CP210x
    UsbId {
        vid: 0x1a86,
        pid: None,
    }, // WCH CH34x
    UsbId {
        vid: 0x0403,
        pid: None,
    }, // FTDI
];

/// The paths matching `pattern`, a path whose components may hold glob
/// characters (`*`, `?`, `[...]`, `{a,b}`), e.g.
/// `/dev/serial/by-id/usb-MicroPython*` or `/dev/ttyACM*`, in name order.
/// Only existing paths are returned (a symlink counts when its target
/// exists: a udev link to an unplugged board dangles or is gone).
pub fn glob_paths(pattern: &str) -> Result<Vec<std::path::PathBuf>, String> {
    use std::path::{Component, PathBuf};
    let is_glob = |c: &str| c.contains(['*', '?', '[', '{']);
    let mut found = vec![PathBuf::new()];
    for comp in std::path::Path::new(pattern).components() {
        let text = comp.as_os_str().to_string_lossy();
        if !matches!(comp, Component::Normal(_)) || !is_glob(&text) {
            for p in &mut found {
                p.push(comp);
            }
            continue;
        }
        let m = globset::GlobBuilder::new(&text)
            .literal_separator(true)
            .build()
            .map_err(|e| format!("{pattern:?}: {e}"))?
            .compile_matcher();
        let mut next = Vec::new();
        for dir in &found {
            let list = if dir.as_os_str().is_empty() {
                std::fs::read_dir(".")
            } else {
                std::fs::read_dir(dir)
            };
            let Ok(list) = list else { continue };
            for e in list.flatten() {
                if m.is_match(e.file_name()) {
                    next.push(dir.join(e.file_name()));
                }
            }
        }
        found = next;
    }
    let mut out: Vec<PathBuf> = found.into_iter().filter(|p| p.exists()).collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// How many write frames may be in flight to a board on `port`: more than
/// one only where USB flow control holds what the board has not read yet.
pub fn write_window(port: &str) -> usize {
    match list() {
        Ok(devs) => devs
            .iter()
            .find(|d| d.port == port)
            .filter(|d| d.micropython_likely && !d.uart_bridge)
            .map_or(1, |_| 2),
        Err(_) => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_ids() {
        assert!(classify(0x2e8a, 0x0005).unwrap().1);
        assert!(classify(0x10c4, 0xea60).unwrap().2);
        assert!(classify(0x1234, 0x5678).is_none());
    }

    #[test]
    fn usb_ids() {
        assert_eq!(
            UsbId::parse("0x2E8A:0005"),
            Ok(UsbId {
                vid: 0x2e8a,
                pid: Some(5)
            })
        );
        assert_eq!(UsbId::parse("303a").unwrap().to_string(), "303a");
        assert!(UsbId::parse("pico").is_err());
        assert!(UsbId::parse("12345").is_err());
    }

    #[test]
    fn globs_match_existing_paths_only() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("usb-MicroPython_a"), "").unwrap();
        std::fs::write(d.path().join("usb-Other"), "").unwrap();
        std::os::unix::fs::symlink(d.path().join("gone"), d.path().join("usb-MicroPython_b"))
            .unwrap();
        let pat = format!("{}/usb-MicroPython*", d.path().display());
        assert_eq!(
            glob_paths(&pat).unwrap(),
            vec![d.path().join("usb-MicroPython_a")]
        );
        let plain = format!("{}/usb-Other", d.path().display());
        assert_eq!(glob_paths(&plain).unwrap().len(), 1);
    }
}
