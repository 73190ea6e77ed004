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
}
