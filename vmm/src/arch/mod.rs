//! Architecture specifics. Only x86_64 is supported: the guest boots with the Linux 64-bit or
//! the PVH boot protocol on KVM's in-kernel PIC, IOAPIC and local APICs.

pub mod x86_64;
