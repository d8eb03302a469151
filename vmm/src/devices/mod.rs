//! Emulated devices: the buses the vcpus dispatch exits to, the legacy devices a Linux guest
//! needs (8250 serial, i8042 reset line) and the virtio-mmio devices.

pub mod bus;
pub mod i8042;
pub mod serial;
pub mod virtio;
