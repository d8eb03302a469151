//! The last few KiB a guest wrote to its serial console, kept in memory.
//!
//! A VM that should stay quiet (the vm backend's containers) still wants to say why it died:
//! with `quiet` on the kernel command line only errors reach the console (a panic, an oops, the
//! agent's last words through /dev/kmsg), so keeping its tail costs a few VM exits a boot, and
//! the caller prints it when the guest stops unexpectedly.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

/// A bounded buffer of console output: writes past `capacity` drop the oldest bytes. Clones
/// share the buffer (the serial device writes, the caller reads).
#[derive(Debug, Clone)]
pub struct ConsoleTail {
    bytes: Arc<Mutex<VecDeque<u8>>>,
    capacity: usize,
}

impl ConsoleTail {
    pub fn new(capacity: usize) -> Self {
        ConsoleTail { bytes: Arc::new(Mutex::new(VecDeque::with_capacity(capacity))), capacity }
    }

    /// The last `max_lines` lines kept, without carriage returns or empty lines; the first one
    /// may be cut where the buffer dropped bytes.
    pub fn last_lines(&self, max_lines: usize) -> Vec<String> {
        let bytes: Vec<u8> = self.bytes.lock().unwrap_or_else(|e| e.into_inner()).iter().copied().collect();
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<String> = text
            .split('\n')
            .map(|l| l.trim_end_matches('\r').to_string())
            .filter(|l| !l.trim().is_empty())
            .collect();
        lines[lines.len().saturating_sub(max_lines)..].to_vec()
    }
}

impl Write for ConsoleTail {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut bytes = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        let keep = buf.len().min(self.capacity);
        let overflow = (bytes.len() + keep).saturating_sub(self.capacity).min(bytes.len());
        bytes.drain(..overflow);
        bytes.extend(&buf[buf.len() - keep..]);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_bytes_and_lines() {
        let tail = ConsoleTail::new(16);
        let mut writer = tail.clone();
        writer.write_all(b"first line\r\n\r\nsecond\r\n").unwrap();
        assert_eq!(tail.last_lines(5), ["line", "second"]);
        writer.write_all(b"a much longer third line\n").unwrap();
        assert_eq!(tail.last_lines(5), ["nger third line"]);
        assert_eq!(tail.last_lines(0), Vec::<String>::new());
        let small = ConsoleTail::new(8);
        small.clone().write_all(b"one\ntwo\nthree\n").unwrap();
        assert_eq!(small.last_lines(1), ["three"]);
    }
}
