//! The live VM: vcpu threads and the event loop, run until the guest stops.
//! (Filled in by the VMM core work; the types below are the API the hull binary uses.)

use std::time::Instant;

use crate::config::VmConfig;
use crate::error::{Error, Result};

/// Why the VM stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmExit {
    /// The guest reset or powered off: the i8042 reset line (`reboot=k`), or a triple fault
    /// (KVM_EXIT_SHUTDOWN). A Linux guest's `reboot`, `poweroff` and `panic=-1` all end here.
    Reset,
    /// [`VmmHandle::stop`] was called.
    Stopped,
    /// A vcpu failed: KVM_RUN returned an error or an exit the VMM cannot handle.
    VcpuError(String),
}

/// When things happened, for `--debug` boot timelines.
#[derive(Debug, Clone)]
pub struct Timeline {
    pub vmm_start: Instant,
    /// Memory, kernel, devices and vcpus ready.
    pub built: Option<Instant>,
    /// The boot vcpu entered the guest for the first time.
    pub kernel_entry: Option<Instant>,
    pub exited: Option<Instant>,
}

/// A VM built from a [`VmConfig`], not yet running.
pub struct Vmm {
    _private: (),
}

/// Lets another thread stop a running VM. Clone + Send.
#[derive(Clone)]
pub struct VmmHandle {
    _private: (),
}

impl Vmm {
    /// Creates everything in order (see [`crate::builder`]); nothing runs yet.
    pub fn build(_config: VmConfig) -> Result<Vmm> {
        Err(Error::Config("the VMM is not implemented yet".into()))
    }

    pub fn handle(&self) -> VmmHandle {
        VmmHandle { _private: () }
    }

    /// Starts the vcpus and runs the event loop on this thread until the guest stops; every
    /// thread is joined and every fd closed before it returns.
    pub fn run(self) -> Result<(VmExit, Timeline)> {
        Err(Error::Config("the VMM is not implemented yet".into()))
    }
}

impl VmmHandle {
    /// Ends the VM as soon as possible; `run` then returns [`VmExit::Stopped`].
    pub fn stop(&self) {}
}
