//! Signals and processes of a native container: its init, its cgroup's processes, and those
//! in its own pid namespace.

use std::time::{Duration, Instant};

use nix::sys::signal::{kill as send, Signal};
use nix::unistd::Pid;

use crate::container::{Error, Result};
use crate::state::State;

/// `kill`: the init, or with `all` every process of the container.
pub fn signal(st: &State, sig: Signal, all: bool) -> Result<()> {
    if all {
        // Every process, the init included; one that exits meanwhile is no error.
        signal_all(st, sig);
        return Ok(());
    }
    send(Pid::from_raw(st.pid), sig).map_err(|e| Error::backend(format!("signal {sig}: {e}")))
}

/// SIGKILLs every process of the container and waits for the init to be gone.
pub fn stop(st: &State) -> Result<()> {
    if st.pid <= 0 {
        // Never signal pid 0 or -1: that would hit hull's own process group or everything.
        // A create that died before it recorded the init may have left its processes (stage 1,
        // the init) in the cgroup it made for the container: those go, and only from a cgroup
        // hull made (one the caller made may hold others').
        if st.cgroup_created_from.is_some() {
            if let Some(cg) = st.cgroup.as_deref().and_then(|p| crate::cgroups::Cgroup::open(p).ok()) {
                return kill_cgroup(&cg);
            }
        }
        return Ok(());
    }
    signal_all(st, Signal::SIGKILL);
    let _ = send(Pid::from_raw(st.pid), Signal::SIGKILL);
    // A frozen cgroup holds the SIGKILL pending: thaw it so the processes can die.
    if let Some(cg) = st.cgroup.as_deref().and_then(|p| crate::cgroups::Cgroup::open(p).ok()) {
        let _ = cg.freeze(false);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while st.init_alive() {
        if Instant::now() > deadline {
            return Err(Error::backend(format!("container init {} did not die after SIGKILL", st.pid)));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// SIGKILLs everything in `cg` (thawed first) and waits until it is empty.
pub(super) fn kill_cgroup(cg: &crate::cgroups::Cgroup) -> Result<()> {
    let _ = cg.freeze(false);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = cg.pids();
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::backend(format!(
                "processes {left:?} of the container's cgroup did not die after SIGKILL"
            )));
        }
        cg.kill_all();
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Host pids of every process in the container's cgroup (or, without one, in its pid
/// namespace while the init lives).
pub fn pids(st: &State) -> Result<Vec<i32>> {
    Ok(match st.cgroup.as_deref().and_then(|p| crate::cgroups::Cgroup::open(p).ok()) {
        Some(cg) => cg.pids(),
        None if st.init_alive() => container_pids(st),
        None => vec![],
    })
}

/// Signals every process of the container: those in its cgroup, and (for a container that
/// shares a cgroup with others it does not own) those in its own pid namespace.
fn signal_all(st: &State, sig: Signal) {
    let cg = st.cgroup.as_deref().and_then(|p| crate::cgroups::Cgroup::open(p).ok());
    if sig == Signal::SIGKILL {
        if let Some(cg) = &cg {
            cg.kill_all();
        }
    }
    let mut pids = cg.map(|c| c.pids()).unwrap_or_default();
    pids.extend(container_pids(st));
    pids.sort_unstable();
    pids.dedup();
    for pid in pids {
        if pid > 0 {
            let _ = send(Pid::from_raw(pid), sig);
        }
    }
}

/// Host pids of the processes in the container's own pid namespace, the init included.
fn container_pids(st: &State) -> Vec<i32> {
    if st.pid <= 0 {
        return vec![];
    }
    let ns_of = |pid: i32| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let Some(ns) = ns_of(st.pid) else { return vec![] };
    if Some(&ns) == ns_of(std::process::id() as i32).as_ref() {
        return vec![st.pid];
    }
    let Ok(entries) = std::fs::read_dir("/proc") else { return vec![st.pid] };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|pid| ns_of(*pid).as_ref() == Some(&ns))
        .collect()
}
