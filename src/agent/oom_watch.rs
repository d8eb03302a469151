//! The guest's side of the OOM relay: the agent watches the memory.events file of the
//! container's cgroup in the guest (inotify: the kernel notifies a change of that file) and,
//! each time its `oom_kill` count rises, tells the host in an `Oom` frame. The host makes the
//! OOM seen where containerd's shim and conmon look for it, the host cgroup
//! (`vm::backend::oom_relay`).

use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

pub(super) struct OomWatch {
    inotify: Inotify,
    events: PathBuf,
    /// The count last told to the host.
    told: u64,
}

impl OomWatch {
    /// Watches the container's cgroup at `cgroup_path` (the spec's cgroupsPath in the guest).
    /// None where there is nothing to watch: no memory controller (a v1 guest) or no cgroup.
    pub(super) fn new(cgroup_path: &str) -> Option<OomWatch> {
        let dir = crate::cgroups::Cgroup::open(cgroup_path).ok()?.dir_of("memory")?;
        let events = dir.join("memory.events");
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
        inotify.add_watch(&events, AddWatchFlags::IN_MODIFY).ok()?;
        let told = oom_kills(&events).unwrap_or(0);
        Some(OomWatch { inotify, events, told })
    }

    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        self.inotify.as_fd()
    }

    /// After the fd was readable, or once more at the end: the new oom_kill count when it
    /// rose since last told.
    pub(super) fn check(&mut self) -> Option<u64> {
        // Drain the notifications; the file says what they were about.
        while matches!(self.inotify.read_events(), Ok(ev) if !ev.is_empty()) {}
        let now = oom_kills(&self.events)?;
        (now > self.told).then(|| {
            self.told = now;
            now
        })
    }
}

/// The `oom_kill` line of a memory.events file.
fn oom_kills(events: &std::path::Path) -> Option<u64> {
    parse_oom_kill(&std::fs::read_to_string(events).ok()?)
}

fn parse_oom_kill(text: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix("oom_kill ")).and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oom_kill_count_is_read_from_memory_events() {
        let text = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(parse_oom_kill(text), Some(1));
        assert_eq!(parse_oom_kill("low 0\n"), None);
        assert_eq!(parse_oom_kill("oom_kill x\n"), None);
    }
}
