//! The vm backend's arms of [`crate::container::Backend`]: the container's init is a VMM
//! (issue 13). `create` makes the container's cgroup and namespaces on the host as the native
//! backend does, forks the init into them, and the init boots a microVM whose agent runs the
//! workload once `start` releases the exec fifo. The init's pid is the VMM's: a signal to it
//! is relayed to the workload, and it exits with the workload's status.
//!
//! What is not built yet says so plainly: exec, ps beyond the VMM, pause/resume, update,
//! events, a terminal.

mod binds;
mod create;
mod error;
mod init;
mod prepare;
mod signals;
pub mod sizing;

use nix::sys::signal::Signal;
use oci_spec::runtime::{LinuxResources, User};

use crate::container::backend::{Monitor, ProcessSpec};
use crate::container::{Backend, Error, Result};
use crate::state::State;

pub use create::create;
pub use prepare::{prepare, Plan};

fn not_yet<T>(op: &'static str) -> Result<T> {
    Err(Error::NotImplemented { backend: Backend::Vm, op })
}

pub fn exec(_st: &State, _spec: ProcessSpec) -> Result<i32> {
    not_yet("exec")
}

pub fn resolve_user(_st: &State, _user: &str) -> Result<User> {
    not_yet("exec --user")
}

/// `kill`: the VMM is the init, and relays every catchable signal to the workload; SIGKILL
/// ends the VMM and so the VM. With `all`, every process in the container's cgroup, which
/// holds the VMM alone: the native backend's code does exactly that.
pub fn signal(st: &State, sig: Signal, all: bool) -> Result<()> {
    crate::native::backend::signal(st, sig, all)
}

/// `delete --force`, a failed create: SIGKILL everything in the cgroup (the VMM) and wait.
pub fn stop(st: &State) -> Result<()> {
    crate::native::backend::stop(st)
}

/// `delete`: the cgroup (or systemd scope), made as for a native container.
pub fn release(st: &State) -> Result<()> {
    crate::native::backend::release(st)
}

/// `ps`: the VMM (the guest's processes are not listed yet).
pub fn pids(st: &State) -> Result<Vec<i32>> {
    crate::native::backend::pids(st)
}

pub fn monitor(_st: &State) -> Result<Box<dyn Monitor>> {
    not_yet("events")
}

pub fn freeze(_st: &State, frozen: bool) -> Result<()> {
    not_yet(if frozen { "pause" } else { "resume" })
}

pub fn update(_st: &State, _resources: &LinuxResources) -> Result<()> {
    not_yet("update")
}
