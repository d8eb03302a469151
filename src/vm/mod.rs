//! The vm backend's host side: finding the guest kernel, making the initramfs around hull
//! itself, and `hull vm-run`, which boots a microVM (the `vmm` crate) and runs one command in
//! it through hull's agent mode ([`crate::agent`]).

pub mod backend;
pub mod cmdline;
pub mod config;
pub mod cpio;
pub mod elf;
pub mod initramfs;
pub mod kernel;
pub mod rundir;
pub mod session;
pub mod timeline;
pub mod vm_run;

/// The guest's vsock context id (the first one after the reserved 0-2).
pub const GUEST_CID: u32 = 3;
/// The host port the agent connects to; vm-run listens on `<uds_path>_<port>`.
pub const AGENT_PORT: u32 = 1024;
/// The guest port a VM container's agent serves `exec` on; the host connects through the
/// VMM's vsock socket (`CONNECT <port>`).
pub const EXEC_PORT: u32 = 1025;
/// The virtio-fs tag of the shared directory, and where the agent mounts it.
pub const SHARE_TAG: &str = "hullroot";
pub const SHARE_MOUNT_POINT: &str = "/run/share";
/// vm-run's exit status when it fails itself (not the command): the guest stopped without an
/// exit status, the agent never connected, the VM could not be built, bad options.
pub const EXIT_VM_FAILED: u8 = 125;
