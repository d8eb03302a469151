//! The 8250 UART on port 0x3f8 (COM1), IRQ 4: the guest's `console=ttyS0`.
//!
//! vm-superio's `Serial` emulates the registers; this wraps it as a bus device whose interrupt
//! is an irqfd and whose output goes to the configured file or nowhere. Guest input is not
//! supported: the console is for boot messages and debugging.

use std::io::{self, Write};

use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

use crate::config::SerialOutput;
use crate::devices::bus::BusDevice;

/// The serial's interrupt line: an eventfd that KVM turns into IRQ 4.
pub struct IrqLine(EventFd);

impl IrqLine {
    pub fn new(irqfd: EventFd) -> Self {
        IrqLine(irqfd)
    }

    pub fn irqfd(&self) -> &EventFd {
        &self.0
    }
}

impl Trigger for IrqLine {
    type E = io::Error;

    fn trigger(&self) -> io::Result<()> {
        self.0.write(1)
    }
}

pub struct SerialDevice {
    uart: Serial<IrqLine, vm_superio::serial::NoEvents, Box<dyn Write + Send>>,
}

impl SerialDevice {
    pub fn new(irq: IrqLine, output: SerialOutput) -> Self {
        let out: Box<dyn Write + Send> = match output {
            SerialOutput::Off => Box::new(io::sink()),
            SerialOutput::File(file) => Box::new(file),
            SerialOutput::Tail(tail) => Box::new(tail),
        };
        SerialDevice { uart: Serial::new(irq, out) }
    }

    pub fn irq(&self) -> &IrqLine {
        self.uart.interrupt_evt()
    }
}

impl BusDevice for SerialDevice {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match data {
            [byte] => *byte = self.uart.read(offset as u8),
            _ => data.fill(0xff),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if let [byte] = data {
            // A failed output write or interrupt loses that byte or interrupt; the guest goes on.
            let _ = self.uart.write(offset as u8, *byte);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::Read;

    const THR: u64 = 0;
    const IER: u64 = 1;
    const LSR: u64 = 5;
    const IER_THR_EMPTY: u8 = 0x2;

    #[test]
    fn guest_output_reaches_the_file_and_raises_the_irq() {
        let path = std::env::temp_dir().join(format!("hull-serial-test-{}", std::process::id()));
        let file = File::create(&path).unwrap();
        let mut serial = SerialDevice::new(
            IrqLine::new(EventFd::new(libc::EFD_NONBLOCK).unwrap()),
            SerialOutput::File(file),
        );
        let mut lsr = [0u8];
        serial.read(LSR, &mut lsr);
        assert_ne!(lsr[0] & 0x20, 0, "transmitter holding register empty");
        serial.write(IER, &[IER_THR_EMPTY]);
        for b in b"hi\n" {
            serial.write(THR, &[*b]);
        }
        assert!(serial.irq().irqfd().read().unwrap() > 0);
        let mut out = String::new();
        File::open(&path).unwrap().read_to_string(&mut out).unwrap();
        assert_eq!(out, "hi\n");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn output_off_is_discarded_and_wide_accesses_ignored() {
        let mut serial =
            SerialDevice::new(IrqLine::new(EventFd::new(libc::EFD_NONBLOCK).unwrap()), SerialOutput::Off);
        serial.write(THR, b"x");
        serial.write(THR, b"xy");
        let mut wide = [0u8; 2];
        serial.read(LSR, &mut wide);
        assert_eq!(wide, [0xff, 0xff]);
    }
}
