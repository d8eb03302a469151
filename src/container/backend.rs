//! The seam between the lifecycle and the two backends. The lifecycle (this module's
//! siblings) owns the state store, the status checks, hooks it runs itself, the exec fifo and
//! the pid file; everything that touches the container's processes, cgroup or VM goes through
//! a [`Backend`]. Each arm lives with its backend: `crate::native::backend` and
//! `crate::vm::backend`.

use std::os::fd::OwnedFd;

use nix::sys::signal::Signal;
use oci_spec::runtime::{LinuxResources, Process, User};
use serde::{Deserialize, Serialize};

use super::error::Result;
use crate::cgroups::stats::{OomCounters, Stats};
use crate::spec::Bundle;
use crate::state::{ContainerDir, State};

/// Where a container runs. Recorded in its state at create; every later command reads it
/// from there. State files written before hull had backends have no field: native.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// A namespaced, cgrouped Linux process.
    #[default]
    Native,
    /// A KVM microVM whose VMM is the container's init.
    Vm,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Native => "native",
            Backend::Vm => "vm",
        }
    }

    /// The backend a word names ("native" or "vm"); the error says what the words are.
    pub fn parse(word: &str) -> std::result::Result<Backend, String> {
        match word {
            "native" => Ok(Backend::Native),
            "vm" => Ok(Backend::Vm),
            other => Err(format!("unknown backend {other:?} (native or vm)")),
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What `create` asks a backend to check before anything of the container exists.
pub struct PrepareRequest<'a> {
    pub id: &'a str,
    pub bundle: &'a Bundle,
    /// `--systemd-cgroup`: the cgroup is a systemd scope where systemd is init.
    pub systemd_cgroup: bool,
    /// The fds past stdio that go to the container (`--preserve-fds`, LISTEN_FDS).
    pub preserve_fds: u32,
    /// Rootless mode: a cgroup hull may not make is done without.
    pub rootless: bool,
}

/// What a backend worked out in [`Backend::prepare`]; [`Plan::create`] carries it out.
pub enum Plan {
    Native(crate::native::backend::Plan),
    /// Boxed: it carries the opened kernel, the workload and the binds, and the native plan
    /// (the hot path) stays small.
    Vm(Box<crate::vm::backend::Plan>),
}

/// What the backend needs to make the container's init, once its state directory exists.
pub struct InitSpec<'a> {
    pub bundle: &'a Bundle,
    /// The container's directory (locked): the exec fifo is there.
    pub dir: &'a ContainerDir,
    /// Move the root and chroot instead of pivot_root.
    pub no_pivot: bool,
    /// Fds after stdio that the init keeps.
    pub preserve_fds: u32,
    /// Connected console socket, when process.terminal is set.
    pub console: Option<OwnedFd>,
}

/// A new process in a running container (`exec`).
pub struct ProcessSpec<'a> {
    pub process: &'a Process,
    pub preserve_fds: u32,
    /// Connected console socket, when process.terminal is set.
    pub console: Option<OwnedFd>,
    /// `--cgroup`: sub-cgroups of the container's to run in ("path" or "controller:path").
    pub sub_cgroups: &'a [String],
    /// The container is paused (`--ignore-paused`).
    pub paused: bool,
}

/// The container's statistics and OOM counters, read as often as `events` polls.
pub trait Monitor {
    fn stats(&self) -> Stats;
    /// None when there is nothing that counts OOMs (no memory controller).
    fn oom_counters(&self) -> Option<OomCounters>;
}

impl Backend {
    /// Checks what can be checked before the container's id is claimed, so a request the
    /// backend cannot serve leaves nothing behind.
    pub fn prepare(self, req: &PrepareRequest) -> Result<Plan> {
        match self {
            Backend::Native => crate::native::backend::prepare(req).map(Plan::Native),
            Backend::Vm => crate::vm::backend::prepare(req).map(|p| Plan::Vm(Box::new(p))),
        }
    }

    /// The host pid `exec` made, once the process runs.
    pub fn exec(self, st: &State, spec: ProcessSpec) -> Result<i32> {
        match self {
            Backend::Native => crate::native::backend::exec(st, spec),
            Backend::Vm => crate::vm::backend::exec(st, spec),
        }
    }

    /// `exec --user NAME[:GROUP]`: names looked up in the container's own files.
    pub fn resolve_user(self, st: &State, user: &str) -> Result<User> {
        match self {
            Backend::Native => crate::native::backend::resolve_user(st, user),
            Backend::Vm => crate::vm::backend::resolve_user(st, user),
        }
    }

    /// Sends `sig` to the container's init, or with `all` to every process of it.
    pub fn signal(self, st: &State, sig: Signal, all: bool) -> Result<()> {
        match self {
            Backend::Native => crate::native::backend::signal(st, sig, all),
            Backend::Vm => crate::vm::backend::signal(st, sig, all),
        }
    }

    /// What `start` does before it releases the init (the vm backend: interfaces that came
    /// after `create`).
    pub fn before_start(self, st: &State) -> Result<()> {
        match self {
            Backend::Native => Ok(()),
            Backend::Vm => crate::vm::backend::before_start(st),
        }
    }

    /// Kills every process of the container and returns once its init is gone.
    pub fn stop(self, st: &State) -> Result<()> {
        match self {
            Backend::Native => crate::native::backend::stop(st),
            Backend::Vm => crate::vm::backend::stop(st),
        }
    }

    /// Removes what the backend made for a stopped container (cgroup, systemd scope).
    pub fn release(self, st: &State) -> Result<()> {
        match self {
            Backend::Native => crate::native::backend::release(st),
            Backend::Vm => crate::vm::backend::release(st),
        }
    }

    /// Host pids of the container's processes (what `ps` lists).
    pub fn pids(self, st: &State) -> Result<Vec<i32>> {
        match self {
            Backend::Native => crate::native::backend::pids(st),
            Backend::Vm => crate::vm::backend::pids(st),
        }
    }

    /// What `events` reads the container's statistics from.
    pub fn monitor(self, st: &State) -> Result<Box<dyn Monitor>> {
        match self {
            Backend::Native => crate::native::backend::monitor(st),
            Backend::Vm => crate::vm::backend::monitor(st),
        }
    }

    /// Freezes (`pause`) or thaws (`resume`) every process of the container.
    pub fn freeze(self, st: &State, frozen: bool) -> Result<()> {
        match self {
            Backend::Native => crate::native::backend::freeze(st, frozen),
            Backend::Vm => crate::vm::backend::freeze(st, frozen),
        }
    }

    /// Applies changed resource limits to the live container (`update`).
    pub fn update(self, st: &State, resources: &LinuxResources) -> Result<()> {
        match self {
            Backend::Native => crate::native::backend::update(st, resources),
            Backend::Vm => crate::vm::backend::update(st, resources),
        }
    }
}

impl Plan {
    /// Makes the container's init, recording in `state` (and saving to its directory) what
    /// the backend made for it, so that `delete` can release it. Returns the init's host pid
    /// once it waits on the exec fifo. On error, what the backend made is gone again.
    pub fn create(self, spec: InitSpec, state: &mut State) -> Result<i32> {
        match self {
            Plan::Native(plan) => crate::native::backend::create(plan, spec, state),
            Plan::Vm(plan) => crate::vm::backend::create(*plan, spec, state),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_words() {
        for b in [Backend::Native, Backend::Vm] {
            assert_eq!(Backend::parse(b.name()), Ok(b));
        }
        assert_eq!(Backend::parse("foo").unwrap_err(), "unknown backend \"foo\" (native or vm)");
        assert_eq!(Backend::default(), Backend::Native);
    }
}
