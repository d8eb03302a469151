//! The vm backend's errors: what `create` says when the VM cannot be had. They reach the
//! lifecycle as [`crate::container::Error::BackendFailed`], named by command and container.

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// This host cannot run the VM: no guest kernel, no /dev/kvm, a PVM host with a stock
    /// kernel. Found before anything of the container exists.
    #[error("vm backend: {0}")]
    Unavailable(String),
    /// The spec asks for something the vm backend cannot give (a size, a terminal).
    #[error("vm backend: {0}")]
    Unsupported(String),
    /// The VMM init failed while `create` waited for it: the guest did not come up, the VM
    /// could not be built, a hook failed.
    #[error("vm backend: {0}")]
    Vmm(String),
    /// `exec` could not start the process in the guest (the guest's reason, or why the guest
    /// could not be reached).
    #[error("vm backend: {0}")]
    Exec(String),
}
