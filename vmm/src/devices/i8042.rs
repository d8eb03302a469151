//! The i8042 keyboard controller at ports 0x60 (data) and 0x64 (status/command), for its CPU
//! reset line: Linux's `reboot=k` (and `panic=-1` with it) writes 0xfe to port 0x64, which ends
//! the VM.
//!
//! There is no keyboard or mouse behind it. The controller answers the commands a kernel's
//! i8042 driver sends while probing (read/write the configuration byte, self tests, the output
//! port) so that probing finishes at once instead of waiting out timeouts, and its status never
//! shows the input buffer full, so the reboot path's wait loop does not spin.

use crate::devices::bus::BusDevice;

const DATA_OFFSET: u64 = 0;
const COMMAND_OFFSET: u64 = 4;

/// Status bits: output buffer full; the system flag (set once the self test passed, as on a PC
/// after POST); keyboard not locked. The input buffer is always empty.
const STATUS_OUTPUT_FULL: u8 = 0x01;
const STATUS_SYSTEM: u8 = 0x04;
const STATUS_UNLOCKED: u8 = 0x10;

const CMD_READ_CONFIG: u8 = 0x20;
const CMD_WRITE_CONFIG: u8 = 0x60;
const CMD_AUX_TEST: u8 = 0xa9;
const CMD_SELF_TEST: u8 = 0xaa;
const CMD_KBD_TEST: u8 = 0xab;
const CMD_READ_OUTPUT_PORT: u8 = 0xd0;
const CMD_WRITE_OUTPUT_PORT: u8 = 0xd1;
/// 0xf0..=0xff pulse output port lines low for a moment; bit 0 clear pulses the CPU reset line.
const CMD_PULSE_FIRST: u8 = 0xf0;

const SELF_TEST_PASSED: u8 = 0x55;
const INTERFACE_OK: u8 = 0x00;
/// The aux (mouse) interface test's answer "clock line stuck low": there is no mouse port.
const AUX_ABSENT: u8 = 0x01;
/// Output port: bit 0 is the CPU reset line (active low), bit 1 the A20 gate.
const OUTPUT_PORT_RESET: u8 = 0x01;
const OUTPUT_PORT_DEFAULT: u8 = 0x03;
/// The configuration byte after POST: keyboard interrupt on, system flag, translation on.
const CONFIG_DEFAULT: u8 = 0x45;

pub struct I8042 {
    on_reset: Box<dyn Fn() + Send>,
    config: u8,
    /// The byte the guest reads next from port 0x60.
    output: Option<u8>,
    /// A command that takes the next byte written to port 0x60 as its parameter.
    awaiting_data: Option<u8>,
}

impl I8042 {
    /// `on_reset` runs when the guest pulls the CPU reset line.
    pub fn new(on_reset: Box<dyn Fn() + Send>) -> Self {
        I8042 { on_reset, config: CONFIG_DEFAULT, output: None, awaiting_data: None }
    }

    fn status(&self) -> u8 {
        STATUS_SYSTEM | STATUS_UNLOCKED | if self.output.is_some() { STATUS_OUTPUT_FULL } else { 0 }
    }

    fn command(&mut self, cmd: u8) {
        self.awaiting_data = None;
        match cmd {
            CMD_READ_CONFIG => self.output = Some(self.config),
            CMD_WRITE_CONFIG | CMD_WRITE_OUTPUT_PORT => self.awaiting_data = Some(cmd),
            CMD_AUX_TEST => self.output = Some(AUX_ABSENT),
            CMD_SELF_TEST => self.output = Some(SELF_TEST_PASSED),
            CMD_KBD_TEST => self.output = Some(INTERFACE_OK),
            CMD_READ_OUTPUT_PORT => self.output = Some(OUTPUT_PORT_DEFAULT),
            CMD_PULSE_FIRST..=0xff if cmd & OUTPUT_PORT_RESET == 0 => (self.on_reset)(),
            // Enabling/disabling the ports and everything else: nothing to do.
            _ => {}
        }
    }

    fn data(&mut self, byte: u8) {
        match self.awaiting_data.take() {
            Some(CMD_WRITE_CONFIG) => self.config = byte,
            Some(CMD_WRITE_OUTPUT_PORT) if byte & OUTPUT_PORT_RESET == 0 => (self.on_reset)(),
            // Bytes for the (absent) keyboard go nowhere.
            _ => {}
        }
    }
}

impl BusDevice for I8042 {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let value = match offset {
            DATA_OFFSET => self.output.take().unwrap_or(0),
            COMMAND_OFFSET => self.status(),
            _ => 0xff,
        };
        data.fill(0);
        if let Some(first) = data.first_mut() {
            *first = value;
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        match (offset, data) {
            (COMMAND_OFFSET, [cmd]) => self.command(*cmd),
            (DATA_OFFSET, [byte]) => self.data(*byte),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn controller() -> (I8042, Arc<AtomicUsize>) {
        let resets = Arc::new(AtomicUsize::new(0));
        let counter = resets.clone();
        (
            I8042::new(Box::new(move || {
                counter.fetch_add(1, Ordering::SeqCst);
            })),
            resets,
        )
    }

    fn inb(dev: &mut I8042, offset: u64) -> u8 {
        let mut b = [0u8];
        dev.read(offset, &mut b);
        b[0]
    }

    #[test]
    fn writing_0xfe_to_the_command_port_resets() {
        let (mut dev, resets) = controller();
        // Linux's kb_wait(): the input buffer is never full.
        assert_eq!(inb(&mut dev, COMMAND_OFFSET) & 0x02, 0);
        dev.write(COMMAND_OFFSET, &[0xfe]);
        assert_eq!(resets.load(Ordering::SeqCst), 1);
        dev.write(COMMAND_OFFSET, &[0xff]); // pulses no line
        assert_eq!(resets.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn writing_the_output_port_with_reset_low_resets() {
        let (mut dev, resets) = controller();
        dev.write(COMMAND_OFFSET, &[CMD_WRITE_OUTPUT_PORT]);
        dev.write(DATA_OFFSET, &[0x03]);
        assert_eq!(resets.load(Ordering::SeqCst), 0);
        dev.write(COMMAND_OFFSET, &[CMD_WRITE_OUTPUT_PORT]);
        dev.write(DATA_OFFSET, &[0x02]);
        assert_eq!(resets.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn probing_commands_are_answered() {
        let (mut dev, resets) = controller();
        assert_eq!(inb(&mut dev, COMMAND_OFFSET) & STATUS_OUTPUT_FULL, 0);
        dev.write(COMMAND_OFFSET, &[CMD_SELF_TEST]);
        assert_eq!(inb(&mut dev, COMMAND_OFFSET) & STATUS_OUTPUT_FULL, 1);
        assert_eq!(inb(&mut dev, DATA_OFFSET), SELF_TEST_PASSED);
        assert_eq!(inb(&mut dev, COMMAND_OFFSET) & STATUS_OUTPUT_FULL, 0);

        dev.write(COMMAND_OFFSET, &[CMD_WRITE_CONFIG]);
        dev.write(DATA_OFFSET, &[0x30]);
        dev.write(COMMAND_OFFSET, &[CMD_READ_CONFIG]);
        assert_eq!(inb(&mut dev, DATA_OFFSET), 0x30);
        dev.write(COMMAND_OFFSET, &[CMD_AUX_TEST]);
        assert_eq!(inb(&mut dev, DATA_OFFSET), AUX_ABSENT);
        // A keyboard command gets no answer and changes nothing.
        dev.write(DATA_OFFSET, &[0xff]);
        assert_eq!(inb(&mut dev, COMMAND_OFFSET) & STATUS_OUTPUT_FULL, 0);
        assert_eq!(resets.load(Ordering::SeqCst), 0);
    }
}
