//! hull's VMM: the KVM microVM the vm backend boots around a bundle.
//!
//! Built the way rust-vmm's vmm-reference and Firecracker's `src/vmm` are: the configuration
//! ([`config`]) is plain data, the [`builder`] creates the live objects in order (guest memory,
//! KVM VM and irqchip, kernel and initramfs, devices on the buses, vcpus), and [`Vmm`] runs them
//! until the guest stops. Devices live one per file under [`devices`].
//!
//! Threads: one per vcpu (KVM_RUN loops, port and MMIO exits dispatched on the buses) and the
//! caller's thread running the event loop (virtqueue notifications through ioeventfds, the
//! vsock unix sockets, the virtio-fs requests, the exit event). Everything is joined and closed
//! before [`Vmm::run`] returns. Each kind of thread can run under a seccomp filter of its own
//! ([`seccomp`]).

pub mod arch;
pub mod builder;
pub mod config;
pub mod console_tail;
pub mod devices;
pub mod error;
pub mod memory;
pub mod pvm;
pub mod seccomp;
pub mod vmm;
pub mod vstate;

pub use config::{FsShare, KernelImage, NetConfig, SerialOutput, VmConfig, VsockConfig};
pub use console_tail::ConsoleTail;
pub use error::Error;
pub use vmm::{Timeline, VmExit, Vmm, VmmHandle};
