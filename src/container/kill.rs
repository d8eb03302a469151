//! `kill`: signal the init, or every process of the container.

use anyhow::{bail, Context};
use nix::sys::signal::{kill as send, Signal};
use nix::unistd::Pid;

use crate::cli::GlobalOpts;
use crate::state::{State, Status, Store};

pub fn kill(g: &GlobalOpts, id: &str, sig: Signal, all: bool) -> anyhow::Result<()> {
    let st = Store::existing(&g.root).read(id).with_context(|| format!("kill {id}"))?;
    match st.status() {
        Status::Created | Status::Running | Status::Paused => {}
        _ => bail!("kill {id}: container not running"),
    }
    if all {
        // Every process, the init included; one that exits meanwhile is no error.
        signal_all(&st, sig);
        return Ok(());
    }
    send(Pid::from_raw(st.pid), sig).with_context(|| format!("kill {id}: signal {sig}"))?;
    Ok(())
}

/// Signals every process of the container: those in its cgroup, and (for a container that
/// shares a cgroup with others it does not own) those in its own pid namespace.
pub fn signal_all(st: &State, sig: Signal) {
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
pub fn container_pids(st: &State) -> Vec<i32> {
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
