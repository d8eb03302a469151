//! The VMM's pid namespace. When the spec asks for a pid namespace, the VMM is pid 1 of one of
//! its own (the workload gets the guest's, made by the agent): the jail's /proc then shows the
//! VMM and the exec stand-ins, which join it, and no other process of the host. That is what
//! `podman top` reads (it lists the processes of the container init's /proc), and what a
//! jailed VMM can see. Firecracker's jailer does the same with `--new-pid-ns`.
//!
//! Being pid 1 changes one thing: a signal the VMM sends itself with the default action is
//! ignored, so a VMM whose workload died of signal N exits with 128 + N instead
//! ([`super::signals::die_of`]); containerd's shim and conmon report both as 128 + N.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use nix::fcntl::{open, OFlag};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::stat::Mode;

/// This process's own pid namespace, for [`restore`].
pub struct Own(OwnedFd);

/// Makes this process's next child pid 1 of a new pid namespace (this process stays where it
/// is); [`restore`] puts the children after it back in this process's namespace. The fallback
/// of `create.rs`, which makes the namespace at the fork (clone3) where it can.
pub fn next_child_in_new() -> Result<Own, String> {
    let own = open("/proc/self/ns/pid", OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| format!("open /proc/self/ns/pid: {e}"))?;
    unshare(CloneFlags::CLONE_NEWPID).map_err(|e| format!("a pid namespace for the VMM: {e}"))?;
    Ok(Own(own))
}

/// Children made from now on are in this process's own pid namespace again (the hooks that
/// `create` runs belong to the runtime's).
pub fn restore(own: &Own) -> Result<(), String> {
    setns(own.0.as_fd(), CloneFlags::CLONE_NEWPID).map_err(|e| format!("back to hull's pid namespace: {e}"))
}

/// Makes this process's next child a member of the pid namespace of `vmm` (the exec
/// stand-in, so that the VMM's /proc lists it). Nothing to do when that is this process's own
/// (a spec without a pid namespace).
pub fn next_child_in_vmms(vmm: i32) -> Result<(), String> {
    let path = format!("/proc/{vmm}/ns/pid");
    let theirs = std::fs::metadata(&path).map_err(|e| format!("{path}: {e}"))?;
    let ours = std::fs::metadata("/proc/self/ns/pid").map_err(|e| format!("/proc/self/ns/pid: {e}"))?;
    if (theirs.dev(), theirs.ino()) == (ours.dev(), ours.ino()) {
        return Ok(());
    }
    let fd = open(path.as_str(), OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| format!("open {path}: {e}"))?;
    setns(fd.as_fd(), CloneFlags::CLONE_NEWPID).map_err(|e| format!("join the VMM's pid namespace: {e}"))
}
