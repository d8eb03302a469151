//! `delete`: remove a stopped container (or, with --force, stop it first).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::Signal;

use crate::cli::GlobalOpts;
use crate::hooks;
use crate::state::{State, Status, Store, StoreError};

pub fn delete(g: &GlobalOpts, id: &str, force: bool) -> anyhow::Result<()> {
    let dir = match Store::existing(&g.root).lock(id) {
        Ok(d) => d,
        // runc: deleting with --force what does not exist is not an error.
        Err(StoreError::NotFound(_)) if force => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("delete {id}")),
    };
    let st = match dir.load() {
        Ok(st) => st,
        // A create that died before writing its state: nothing runs, remove what is there.
        Err(StoreError::Corrupt { .. }) => return dir.remove().with_context(|| format!("delete {id}")),
        Err(e) => return Err(e).with_context(|| format!("delete {id}")),
    };
    match st.status() {
        Status::Stopped => {}
        // A created container has not run anything yet: runc deletes it without --force.
        Status::Created => stop(&st).with_context(|| format!("delete {id}"))?,
        s @ (Status::Running | Status::Creating | Status::Paused) => {
            if !force {
                bail!("delete {id}: cannot delete container that is not stopped: {s} (use --force)");
            }
            stop(&st).with_context(|| format!("delete {id}"))?;
        }
    }
    // The runtime spec: a failing poststop hook is a warning; delete goes on.
    let state = st.oci_as(Status::Stopped);
    if let Err(e) = hooks::run_in(st.hooks(), hooks::Kind::Poststop, &state) {
        crate::logging::warn(&e.to_string());
    }
    // The scope first: systemd removes its cgroup. A scope that cannot be stopped now (systemd
    // unreachable) is not worth keeping the container for: with nothing left in it, systemd
    // stops it by itself.
    if let Some(unit) = &st.systemd_unit {
        if let Err(e) = crate::cgroups::systemd::stop(unit) {
            crate::logging::warn(&format!("delete {id}: {e}"));
        }
    }
    if let Some(path) = &st.cgroup {
        if let Ok(cg) = crate::cgroups::Cgroup::open(path) {
            cg.destroy(st.cgroup_created_from.as_deref()).with_context(|| format!("delete {id}"))?;
        }
    }
    dir.remove().with_context(|| format!("delete {id}"))
}

/// SIGKILLs every process of the container and waits for the init to be gone.
fn stop(st: &State) -> anyhow::Result<()> {
    if st.pid <= 0 {
        // Never signal pid 0 or -1: that would hit hull's own process group or everything.
        return Ok(());
    }
    super::kill::signal_all(st, Signal::SIGKILL);
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(st.pid), Signal::SIGKILL);
    // A frozen cgroup holds the SIGKILL pending: thaw it so the processes can die.
    if let Some(cg) = st.cgroup.as_deref().and_then(|p| crate::cgroups::Cgroup::open(p).ok()) {
        let _ = cg.freeze(false);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while st.init_alive() {
        if Instant::now() > deadline {
            bail!("container init {} did not die after SIGKILL", st.pid);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}
