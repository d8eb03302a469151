//! The native backend's arms of [`crate::container::Backend`]: the container is a process
//! tree on this host, in its own namespaces and cgroup, and every operation works on host
//! pids, /proc and cgroup files.

mod create;
mod signal;
mod user;

use oci_spec::runtime::LinuxResources;

use crate::cgroups::stats::{OomCounters, Stats};
use crate::cgroups::Cgroup;
use crate::container::backend::{Monitor, ProcessSpec};
use crate::container::{Error, Result};
use crate::state::State;

pub use create::{create, in_cgroup, prepare, Plan};
pub use signal::{pids, signal, stop};
pub use user::{resolve_user, resolve_user_in};

/// The container's cgroup; every container hull made has one, but a rootless one it could
/// not make.
fn cgroup_of(st: &State) -> Result<Cgroup> {
    let Some(path) = st.cgroup.as_deref() else {
        return Err(Error::backend(
            "the container has no cgroup: it was created rootless, by a user who may not make one (a \
             delegated cgroup v2 subtree named by linux.cgroupsPath gives it one)",
        ));
    };
    Cgroup::open(path).map_err(Error::backend)
}

/// `exec`: a new process joins the init's namespaces and cgroup.
pub fn exec(st: &State, spec: ProcessSpec) -> Result<i32> {
    let cgroup_procs = match &st.cgroup {
        Some(p) => Cgroup::open(p).map_err(Error::backend)?.procs_files(spec.sub_cgroups),
        None => Vec::new(),
    };
    let linux = st.config.as_ref().and_then(|c| c.linux().as_ref());
    crate::native::exec(crate::native::ExecConfig {
        init_pid: st.pid,
        process: spec.process,
        linux,
        preserve_fds: spec.preserve_fds,
        console: spec.console,
        cgroup_procs,
        join_after_exec: spec.paused,
    })
    .map_err(Error::backend)
}

/// `delete`: the systemd scope, then the cgroup and the parents hull made for it, then the
/// mounts of a container without a mount namespace.
pub fn release(st: &State) -> Result<()> {
    // The scope first: systemd removes its cgroup. A scope that cannot be stopped now (systemd
    // unreachable) is not worth keeping the container for: with nothing left in it, systemd
    // stops it by itself.
    if let Some(unit) = &st.systemd_unit {
        if let Err(e) = crate::cgroups::systemd::stop(unit, st.systemd_manager) {
            crate::logging::warn(&format!("delete {}: {e}", st.id));
        }
    }
    if let Some(path) = &st.cgroup {
        if let Ok(cg) = Cgroup::open(path) {
            cg.destroy(st.cgroup_created_from.as_deref()).map_err(Error::backend)?;
        }
    }
    // No mount namespace: what the container mounted is in the host's table, under this.
    if let Some(m) = &st.host_root {
        crate::native::hostroot::remove(m).map_err(Error::backend)?;
    }
    Ok(())
}

/// `pause` / `resume` through the cgroup freezer (v1) or cgroup.freeze (v2).
pub fn freeze(st: &State, frozen: bool) -> Result<()> {
    let cg = cgroup_of(st)?;
    if let Err(e) = cg.freeze(frozen) {
        if frozen {
            // Half-frozen helps no one: leave it running, as runc does.
            let _ = cg.freeze(false);
        }
        return Err(Error::backend(e));
    }
    Ok(())
}

/// `update`: systemd's scope properties first (else a reload would put the old values back),
/// then the cgroup files.
pub fn update(st: &State, resources: &LinuxResources) -> Result<()> {
    let cg = cgroup_of(st)?;
    if let Some(unit) = &st.systemd_unit {
        crate::cgroups::systemd::set_resources(unit, st.systemd_manager, resources)
            .map_err(Error::backend)?;
    }
    cg.set(resources).map_err(Error::backend)
}

/// `events`: the cgroup's statistics and OOM counters.
pub fn monitor(st: &State) -> Result<Box<dyn Monitor>> {
    Ok(Box::new(CgroupMonitor(cgroup_of(st)?)))
}

struct CgroupMonitor(Cgroup);

impl Monitor for CgroupMonitor {
    fn stats(&self) -> Stats {
        self.0.stats()
    }

    fn oom_counters(&self) -> Option<OomCounters> {
        self.0.oom_counters()
    }
}
