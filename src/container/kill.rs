//! `kill`: signal the init, or every process of the container.

use anyhow::{bail, Context};
use nix::sys::signal::{kill as send, Signal};
use nix::unistd::Pid;

use crate::cli::GlobalOpts;
use crate::state::{State, Status, Store};

pub fn kill(g: &GlobalOpts, id: &str, sig: Signal, all: bool) -> anyhow::Result<()> {
    let st = Store::existing(&g.root).read(id).with_context(|| format!("kill {id}"))?;
    match st.status() {
        Status::Created | Status::Running => {}
        _ => bail!("kill {id}: container not running"),
    }
    if all {
        signal_all(&st, sig);
    }
    send(Pid::from_raw(st.pid), sig).with_context(|| format!("kill {id}: signal {sig}"))?;
    Ok(())
}

/// Signals every process in the init's pid namespace when the container has its own.
/// (With cgroups, the container's cgroup is the authority; see the cgroups issue.)
pub fn signal_all(st: &State, sig: Signal) {
    for pid in container_pids(st) {
        let _ = send(Pid::from_raw(pid), sig);
    }
}

/// Host pids of the processes in the container's own pid namespace, the init included.
pub fn container_pids(st: &State) -> Vec<i32> {
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
