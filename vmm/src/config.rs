//! What a VM is made of: plain data, checked by the builder. Nothing here touches KVM.

use std::fs::File;
use std::path::PathBuf;

use crate::console_tail::ConsoleTail;

/// The guest kernel, already opened (the vm backend opens it before pivot_root).
#[derive(Debug)]
pub struct KernelImage {
    pub file: File,
    /// Shown in errors.
    pub path: PathBuf,
}

/// Where the 8250 serial console's output goes. Off by default: every byte is a VM exit.
#[derive(Debug, Default)]
pub enum SerialOutput {
    #[default]
    Off,
    /// Written to this file (a tty, a pipe, a log file).
    File(File),
    /// Kept in memory, the last bytes only, for the caller to show when the guest dies.
    Tail(ConsoleTail),
}

/// A virtio-vsock device in Firecracker's hybrid model: the host side is a unix socket.
///
/// Host-initiated: connect to `uds_path`, send `CONNECT <port>\n`, read `OK <host_port>\n`,
/// then the stream is the guest's listener on `<port>`. Guest-initiated connections to the
/// host (CID 2) on port P go to the unix socket `<uds_path>_<P>`, which someone on the host
/// listens on.
#[derive(Debug, Clone)]
pub struct VsockConfig {
    /// The guest's context id (3 or more).
    pub guest_cid: u32,
    pub uds_path: PathBuf,
}

/// A host directory served to the guest over virtio-fs (mount -t virtiofs TAG DIR).
#[derive(Debug, Clone)]
pub struct FsShare {
    pub tag: String,
    pub path: PathBuf,
    pub read_only: bool,
}

/// One virtio-net NIC on a tap.
#[derive(Debug)]
pub struct NetConfig {
    /// The tap, opened by the caller (`Tap::open`, in the network namespace it belongs in).
    pub tap: crate::devices::virtio::net::Tap,
    pub mac: [u8; 6],
    /// Offered to the driver when set.
    pub mtu: Option<u16>,
}

#[derive(Debug)]
pub struct VmConfig {
    pub vcpus: u8,
    pub mem_mib: u32,
    pub kernel: KernelImage,
    /// An initramfs image (newc cpio, optionally compressed), made by the caller.
    pub initramfs: Option<Vec<u8>>,
    /// The guest kernel command line, without the device entries: the builder appends
    /// `virtio_mmio.device=` for each device (and `console=ttyS0` when the serial is on).
    pub cmdline: String,
    pub serial: SerialOutput,
    pub vsock: Option<VsockConfig>,
    pub shares: Vec<FsShare>,
    /// NICs, in order (the guest's eth0, eth1, ...).
    pub nets: Vec<NetConfig>,
    /// Set when the caller knows the kernel is built for PVM (see [`crate::pvm`]).
    pub kernel_supports_pvm: bool,
    /// Installed by each vcpu thread before its first KVM_RUN (see [`crate::seccomp::vcpu`]).
    pub vcpu_filter: Option<seccompiler::BpfProgram>,
}

impl VmConfig {
    /// A VM with 1 vcpu and 128 MiB, no devices: fill in the rest.
    pub fn new(kernel: KernelImage) -> Self {
        VmConfig {
            vcpus: 1,
            mem_mib: 128,
            kernel,
            initramfs: None,
            cmdline: String::new(),
            serial: SerialOutput::Off,
            vsock: None,
            shares: Vec::new(),
            nets: Vec::new(),
            kernel_supports_pvm: false,
            vcpu_filter: None,
        }
    }
}
