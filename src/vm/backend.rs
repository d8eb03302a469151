//! The vm backend's arms of [`crate::container::Backend`]. The VMM as the container's init
//! (issue 13) is not built yet: every operation says so plainly, and `prepare` refuses
//! before anything of the container exists, so a `create` leaves nothing behind.

use nix::sys::signal::Signal;
use oci_spec::runtime::{LinuxResources, User};

use crate::container::backend::{InitSpec, Monitor, PrepareRequest, ProcessSpec};
use crate::container::{Backend, Error, Result};
use crate::state::State;

/// What `prepare` will work out for a VM (its size, kernel, the sandbox around the VMM).
/// None can be made yet.
pub enum Plan {}

fn not_yet<T>(op: &'static str) -> Result<T> {
    Err(Error::NotImplemented { backend: Backend::Vm, op })
}

pub fn prepare(_req: &PrepareRequest) -> Result<Plan> {
    not_yet("create")
}

pub fn create(plan: Plan, _spec: InitSpec, _state: &mut State) -> Result<i32> {
    match plan {}
}

pub fn exec(_st: &State, _spec: ProcessSpec) -> Result<i32> {
    not_yet("exec")
}

pub fn resolve_user(_st: &State, _user: &str) -> Result<User> {
    not_yet("exec --user")
}

pub fn signal(_st: &State, _sig: Signal, _all: bool) -> Result<()> {
    not_yet("kill")
}

pub fn stop(_st: &State) -> Result<()> {
    not_yet("delete")
}

pub fn release(_st: &State) -> Result<()> {
    not_yet("delete")
}

pub fn pids(_st: &State) -> Result<Vec<i32>> {
    not_yet("ps")
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
