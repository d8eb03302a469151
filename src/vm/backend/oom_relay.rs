//! An OOM in the guest, seen on the host where clients look for it.
//!
//! containerd's shim and conmon learn that a container was OOM-killed from its cgroup on the
//! host: the `oom_kill` count of memory.events (cgroup v2, watched with inotify), the
//! memory.oom_control eventfd (v1). Kubernetes' "OOMKilled" comes from there. A VM
//! container's OOM kills happen in the guest's kernel, whose RAM is sized to fit under the host
//! cgroup's limit (`sizing`), so the host cgroup never reaches its limit and those counters
//! never move. Kata reports the guest's OOMs through its own shim; hull runs under the plain
//! runc shim, so the VMM makes the kernel count one:
//!
//! the agent tells the VMM each time the guest cgroup's `oom_kill` count rises (an `Oom`
//! frame, [`crate::agent::protocol`]); the VMM forks a process that takes an
//! oom_score_adj of 1000 and allocates memory until the host cgroup is at its limit and the
//! kernel's OOM killer of that cgroup kills it. That is one real OOM kill in the container's
//! cgroup, counted and notified by the kernel as for a native container, and the process it
//! kills is that one: the OOM killer picks the highest `rss + oom_score_adj × limit / 1000`,
//! and the VMM, whose oom_score_adj is kept at 0 or below, cannot outscore a process at 1000
//! in a cgroup whose whole usage is under the limit.
//!
//! The relay stays off (the guest's OOMs are still in `hull events`) where it could hurt:
//! no memory limit on the host cgroup (the allocation would have nothing to stop it but the
//! host), or a cgroup that may swap (the kernel would swap the guest's RAM out before it kills).
//!
//! The guest's RAM is madvise(MADV_DONTFORK) ([`vmm`]'s builder), so the fork copies none of
//! it; the child lives in the VMM's jail and under its seccomp filter, and makes only
//! mmap, memory writes and exit.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// At most this many relay processes at once: a burst of guest OOMs needs only one kill on
/// the host to be seen.
const MAX_PENDING: usize = 2;
/// What the relay's process allocates at a time.
const CHUNK: usize = 4 << 20;

pub struct OomRelay {
    /// The VMM's own /proc/self/oom_score_adj, opened before the jail (whose /proc is
    /// read-only): raised to 1000 around each fork, so that the child starts with it.
    adj: File,
    /// The VMM's own oom_score_adj, 0 or below, which it goes back to after each fork.
    own_adj: i32,
    /// The host cgroup's memory limit (memory.max; v1: memory.limit_in_bytes), read at each
    /// relay: `update` may have changed it.
    limit: File,
    pending: Vec<Pid>,
}

impl OomRelay {
    /// In the VMM, once it is in the container's cgroup and while it still has its
    /// capabilities (before the jail). Err: why the relay stays off.
    pub fn prepare() -> Result<OomRelay, String> {
        let layout = crate::cgroups::Layout::detect();
        let unified = matches!(layout, crate::cgroups::Layout::Unified);
        let own = crate::cgroups::own_cgroups();
        let path = own
            .iter()
            .find(|(key, _)| if unified { key.is_empty() } else { key.split(',').any(|c| c == "memory") })
            .map(|(_, p)| p.clone())
            .ok_or("the VMM is in no memory cgroup")?;
        let dir = layout.dir_of("memory", &path).ok_or("no memory controller")?;
        let (limit_file, swap_file) = if unified {
            ("memory.max", "memory.swap.max")
        } else {
            ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes")
        };
        if host_has_swap() && may_swap(&dir, limit_file, swap_file, unified) {
            return Err("the container's cgroup may swap".into());
        }
        let limit = File::open(dir.join(limit_file)).map_err(|e| format!("{limit_file}: {e}"))?;
        let mut adj = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/proc/self/oom_score_adj")
            .map_err(|e| format!("/proc/self/oom_score_adj: {e}"))?;
        let current: i32 = std::fs::read_to_string("/proc/self/oom_score_adj")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or("reading /proc/self/oom_score_adj")?;
        // Written with CAP_SYS_RESOURCE, the value is also the lowest the VMM may go back to
        // without it (the kernel's oom_score_adj_min): so the restore after each fork works
        // in the jail. Above 0 (a shim sets its own to its parent's plus one, and hull
        // inherits it) it becomes 0: see the module's doc.
        let own_adj = current.min(0);
        adj.write_all(own_adj.to_string().as_bytes()).map_err(|e| format!("setting oom_score_adj: {e}"))?;
        Ok(OomRelay { adj, own_adj, limit, pending: Vec::new() })
    }

    /// The fds the VMM must keep open (its init closes the others).
    pub fn fds(&self) -> [RawFd; 2] {
        [self.adj.as_raw_fd(), self.limit.as_raw_fd()]
    }

    /// The guest reported an OOM kill: make one in the host cgroup.
    pub fn relay(&mut self) {
        self.reap();
        if self.pending.len() >= MAX_PENDING {
            return;
        }
        let Some(limit) = self.read_limit() else { return };
        if let Err(e) = self.set_adj(1000) {
            crate::logging::debug(&format!("OOM relay: {e}"));
            return;
        }
        let forked = fork_allocator(limit);
        if let Err(e) = self.set_adj(self.own_adj) {
            // Not expected (the value is the one written with CAP_SYS_RESOURCE); said, since
            // the VMM now outscores its workload's host processes.
            crate::logging::error(&format!("OOM relay: restoring the VMM's oom_score_adj: {e}"));
        }
        match forked {
            Ok(pid) => self.pending.push(pid),
            Err(e) => crate::logging::debug(&format!("OOM relay: fork: {e}")),
        }
    }

    /// Reaps relay processes that ended.
    fn reap(&mut self) {
        self.pending
            .retain(|&pid| matches!(waitpid(pid, Some(WaitPidFlag::WNOHANG)), Ok(WaitStatus::StillAlive)));
    }

    /// Before the VMM exits: gives the relay processes until `within` to be killed, so that
    /// the kill is counted while the shim still watches (it stops at the container's exit).
    pub fn finish(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.pending.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            self.reap();
        }
    }

    fn set_adj(&mut self, value: i32) -> std::io::Result<()> {
        self.adj.write_all(value.to_string().as_bytes())
    }

    /// The limit in bytes; None without one.
    fn read_limit(&self) -> Option<u64> {
        let mut buf = [0u8; 32];
        let n = nix::sys::uio::pread(&self.limit, &mut buf, 0).ok()?;
        parse_limit(std::str::from_utf8(&buf[..n]).ok()?)
    }
}

/// A limit file's value: "max" (v2) and v1's page-rounded LONG_MAX mean none.
fn parse_limit(text: &str) -> Option<u64> {
    let v: u64 = text.trim().parse().ok()?;
    (v < 1 << 60).then_some(v)
}

fn host_has_swap() -> bool {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("SwapTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .is_none_or(|kib| kib > 0)
}

/// Whether the cgroup may use swap: v2's swap.max is not 0; v1's memory+swap limit is above
/// the memory limit. A file that cannot be read counts as yes.
fn may_swap(dir: &Path, limit_file: &str, swap_file: &str, unified: bool) -> bool {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok().map(|s| s.trim().to_string());
    match (unified, read(swap_file), read(limit_file)) {
        (true, Some(swap), _) => swap != "0",
        (false, Some(memsw), Some(mem)) => memsw != mem,
        _ => true,
    }
}

/// Forks the process that allocates until it is OOM-killed, or ends after `limit` bytes
/// (a limit raised since it was read).
fn fork_allocator(limit: u64) -> nix::Result<Pid> {
    // clone3 rather than fork: the session thread's seccomp filter has it (threads are made
    // with it), and libc's fork would run its atfork handlers in a multi-threaded VMM.
    // SAFETY: a plain fork (the child gets a copy of this thread's stack and of the address
    // space, minus the guest's RAM, which is MADV_DONTFORK). The child runs only
    // `allocate_until_killed`, which makes raw system calls and never returns, allocates on
    // the heap or takes a lock another thread might hold.
    match unsafe { crate::native::clone_into::fork3(None) }? {
        nix::unistd::ForkResult::Child => allocate_until_killed(limit),
        nix::unistd::ForkResult::Parent { child } => Ok(child),
    }
}

fn allocate_until_killed(limit: u64) -> ! {
    let mut total: u64 = 0;
    while total < limit {
        // SAFETY: a new private anonymous mapping, nobody else's memory.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                CHUNK,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            break;
        }
        for off in (0..CHUNK).step_by(4096) {
            // SAFETY: inside the CHUNK bytes just mapped read-write; the write makes the
            // kernel charge the page to the cgroup.
            unsafe { std::ptr::write_volatile(p.cast::<u8>().add(off), 1) };
        }
        total += CHUNK as u64;
    }
    // SAFETY: ends this child at once, without running anything of the parent's.
    unsafe { libc::_exit(0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_limit_means_no_relay() {
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(parse_limit("9223372036854771712\n"), None);
        assert_eq!(parse_limit("134217728\n"), Some(134_217_728));
    }

    #[test]
    fn a_cgroup_that_may_swap_is_seen() {
        let dir = std::env::temp_dir().join(format!("hull-oom-relay-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dir = Dir(dir);
        std::fs::write(dir.path().join("memory.max"), "134217728\n").unwrap();
        std::fs::write(dir.path().join("memory.swap.max"), "0\n").unwrap();
        assert!(!may_swap(dir.path(), "memory.max", "memory.swap.max", true));
        std::fs::write(dir.path().join("memory.swap.max"), "max\n").unwrap();
        assert!(may_swap(dir.path(), "memory.max", "memory.swap.max", true));
        // v1: memory+swap equal to memory is no swap.
        std::fs::write(dir.path().join("l"), "134217728\n").unwrap();
        std::fs::write(dir.path().join("s"), "134217728\n").unwrap();
        assert!(!may_swap(dir.path(), "l", "s", false));
        assert!(may_swap(dir.path(), "l", "missing", false));
    }

    /// A directory removed when the test ends.
    struct Dir(std::path::PathBuf);
    impl Dir {
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
