//! The vm backend's arms of [`crate::container::Backend`]: the container's init is a VMM
//! (issue 13). `create` makes the container's cgroup and namespaces on the host as the native
//! backend does, forks the init into them, and the init boots a microVM whose agent runs the
//! workload once `start` releases the exec fifo. The init's pid is the VMM's: a signal to it
//! is relayed to the workload, and it exits with the workload's status.
//!
//! `exec` runs the process in the guest, with a host process standing for it ([`standin`]),
//! in the container's cgroup with the VMM: so `ps`, `kill --all`, `pause`, `update`, `events`
//! and `delete --force` work on the cgroup as for a native container.

mod binds;
mod control;
mod create;
mod error;
mod exec;
mod guest_spec;
mod host_side;
mod init;
mod jail;
mod monitor;
mod network;
pub mod oom_relay;
mod pidns;
mod prepare;
mod signals;
pub mod sizing;
mod socket_dir;
mod standin;
mod userns;

use nix::sys::signal::Signal;
use oci_spec::runtime::{LinuxResources, User};

use crate::container::backend::Monitor;
use crate::container::Result;
use crate::state::State;

pub use create::create;
pub use exec::exec;
pub use prepare::{prepare, Plan};

/// `exec --user NAME[:GROUP]`: names from the container's own /etc/passwd and /etc/group, in
/// its rootfs on the host (the guest's root is that same tree).
pub fn resolve_user(st: &State, user: &str) -> Result<User> {
    crate::native::backend::resolve_user_in(&st.rootfs, user)
}

/// `kill`: the VMM is the init, and relays every catchable signal to the workload; SIGKILL
/// ends the VMM and so the VM. With `all`, the agent signals every process of the container
/// in the guest ([`control`]); SIGKILL, a paused VM (which cannot answer) or an agent that
/// does not answer get the native way: every process in the host cgroup, the VMM and the exec
/// stand-ins, each of which passes it to its guest process.
pub fn signal(st: &State, sig: Signal, all: bool) -> Result<()> {
    if all && sig != Signal::SIGKILL && !st.frozen() {
        if let Some(socket) = &st.vm_socket {
            match control::signal_all(socket, sig) {
                Ok(()) => return Ok(()),
                Err(e) => crate::logging::debug(&format!("kill --all {}: through the guest: {e}", st.id)),
            }
        }
    }
    crate::native::backend::signal(st, sig, all)
}

/// `delete --force`, a failed create: SIGKILL everything in the cgroup (the VMM) and wait.
pub fn stop(st: &State) -> Result<()> {
    crate::native::backend::stop(st)
}

/// `delete`: the cgroup (or systemd scope), made as for a native container, and the tc
/// plumbing on the interfaces of a network namespace that outlives the container
/// ([`network`]).
pub fn release(st: &State) -> Result<()> {
    if let (Some(dir), Some(spec)) = (st.vm_socket.as_ref().and_then(|s| s.parent()), st.config.as_ref()) {
        release_network(&format!("delete {}", st.id), dir, spec);
    }
    crate::native::backend::release(st)
}

/// Removes the tc plumbing the VMM left on the interfaces of a network namespace the spec
/// names by path (which outlives the container): `delete`'s, and a failed `create`'s (a VMM
/// that died or was killed after plumbing left its ingress qdiscs, and the next container on
/// that interface could not add its own). A namespace `create` made went with the VMM.
pub(super) fn release_network(what: &str, dir: &std::path::Path, spec: &oci_spec::runtime::Spec) {
    let netns = spec.linux().as_ref().and_then(|l| l.namespaces().as_ref()).and_then(|nss| {
        nss.iter().find_map(|ns| {
            (ns.typ() == oci_spec::runtime::LinuxNamespaceType::Network).then(|| ns.path().clone()).flatten()
        })
    });
    if let Some(netns) = netns {
        if let Err(e) = network::release(dir, &netns) {
            crate::logging::warn(&format!("{what}: the container's network: {e}"));
        }
    }
}

/// `start`, before the workload is released: interfaces the container's network namespace
/// gained since `create` go to the guest's spare NIC ([`network::at_start`]).
pub fn before_start(st: &State) -> Result<()> {
    let Some(socket) = &st.vm_socket else { return Ok(()) };
    let Some(dir) = socket.parent() else { return Ok(()) };
    network::at_start(dir, st.pid, socket).map_err(crate::container::Error::backend)
}

/// `ps`: the VMM and the stand-ins of exec'd processes, all in the container's cgroup.
/// Rootless without a cgroup: the VMM alone while it lives (the native way reads the init's
/// /proc/PID/ns, which a non-dumpable VMM keeps from an ordinary user).
pub fn pids(st: &State) -> Result<Vec<i32>> {
    if st.cgroup.is_none() {
        return Ok(if st.init_alive() { vec![st.pid] } else { Vec::new() });
    }
    crate::native::backend::pids(st)
}

/// `events`: the host cgroup's statistics (cpu, blkio: the whole VM's cost on the host) with
/// the memory and pids of the container's cgroup in the guest (what the workload uses, what
/// its limits apply to) when the agent answers; OOM counters of both, so an OOM in the guest
/// is an event too.
pub fn monitor(st: &State) -> Result<Box<dyn Monitor>> {
    let host = crate::native::backend::monitor(st)?;
    Ok(Box::new(monitor::VmMonitor::new(host, st.vm_socket.clone())))
}

/// `pause` / `resume`: the host cgroup's freezer stops the VMM's vcpu and device threads, and
/// with them the whole guest.
pub fn freeze(st: &State, frozen: bool) -> Result<()> {
    crate::native::backend::freeze(st, frozen)
}

/// `update`: the host cgroup, which holds the VM, then the container's cgroup in the guest
/// (memory, cpu and pids, the limits it repeats). The guest's RAM and vcpu count are fixed at
/// boot: a new memory limit bounds the VM as a whole and the workload's cgroup in the guest,
/// and says so. A paused VM cannot take the guest's part: it is skipped, with a warning.
pub fn update(st: &State, resources: &LinuxResources) -> Result<()> {
    if resources.memory().as_ref().and_then(|m| m.limit()).is_some() {
        crate::logging::warn(&format!(
            "update {}: the VM's guest RAM was sized at boot and stays as it is; the new memory limit \
             applies to the VM as a whole and to the container's cgroup in the guest",
            st.id
        ));
    }
    crate::native::backend::update(st, resources)?;
    let Some(socket) = &st.vm_socket else { return Ok(()) };
    if st.frozen() {
        crate::logging::warn(&format!(
            "update {}: the VM is paused; the container's cgroup in the guest keeps its old limits",
            st.id
        ));
        return Ok(());
    }
    control::update(socket, resources).map_err(|e| {
        crate::container::Error::backend(format!(
            "the host cgroup was updated, the container's cgroup in the guest was not: {e}"
        ))
    })
}
