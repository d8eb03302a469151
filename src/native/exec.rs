//! `exec`: a new process inside a running container.
//!
//! Like create, two forks: the first joins the init's namespaces (user first) and cgroups,
//! the second is born inside the container's pid namespace, enters its root and execs with
//! the same process setup as the init (user, capabilities, rlimits, seccomp last). The
//! parent learns of success when the sync socket closes on exec with nothing sent.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use nix::fcntl::{open, OFlag};
use nix::sched::{setns, CloneFlags};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::{chroot, fchdir, fork, setsid, ForkResult};
use oci_spec::runtime::{Linux, Process};

use super::error::{msg, Context, Error, Result};
use super::sync::{self, Msg, SyncSocket};
use super::{console, process, seccomp};

/// What to run, and where.
pub struct ExecConfig<'a> {
    /// Host pid of the container's init.
    pub init_pid: i32,
    pub process: &'a Process,
    /// The container's linux section: its seccomp filter and personality apply to exec'd
    /// processes too.
    pub linux: Option<&'a Linux>,
    pub preserve_fds: u32,
    /// Connected console socket when process.terminal is set.
    pub console: Option<OwnedFd>,
    /// The cgroup.procs files the process joins (the container's cgroup, or a sub-cgroup).
    pub cgroup_procs: Vec<std::path::PathBuf>,
    /// The cgroup is frozen (exec --ignore-paused): a process joining it now would freeze
    /// before it could exec, so it joins right after exec instead, and freezes there.
    pub join_after_exec: bool,
}

const KINDS: [(&str, CloneFlags); 8] = [
    ("user", CloneFlags::CLONE_NEWUSER),
    ("mnt", CloneFlags::CLONE_NEWNS),
    ("pid", CloneFlags::CLONE_NEWPID),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("time", CloneFlags::from_bits_retain(libc::CLONE_NEWTIME)),
];

/// The init's namespaces that differ from ours, opened, user namespace first.
fn open_namespaces(pid: i32) -> Result<Vec<(CloneFlags, OwnedFd)>> {
    let mut out = Vec::new();
    for (name, flag) in KINDS {
        let theirs = format!("/proc/{pid}/ns/{name}");
        let Ok(t) = std::fs::metadata(&theirs) else { continue };
        let same = std::fs::metadata(format!("/proc/self/ns/{name}"))
            .map(|o| o.ino() == t.ino() && o.dev() == t.dev())
            .unwrap_or(false);
        if !same {
            let fd = open(theirs.as_str(), OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
                .ctx(|| format!("open {theirs}"))?;
            out.push((flag, fd));
        }
    }
    Ok(out)
}

/// Starts the process; returns its host pid once it has exec'd.
pub fn exec(cfg: ExecConfig) -> Result<i32> {
    let pid = cfg.init_pid;
    let nss = open_namespaces(pid)?;
    let in_userns = nss.iter().any(|(f, _)| *f == CloneFlags::CLONE_NEWUSER);
    let root = open(
        format!("/proc/{pid}/root").as_str(),
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open the root of container init {pid}"))?;
    let mut cgroups: &[std::path::PathBuf] = if cfg.join_after_exec { &[] } else { &cfg.cgroup_procs };
    let (parent, child) = sync::pair().ctx(|| "create sync socket".to_string())?;
    // One cgroup.procs to join (cgroup v2): the process is born in its directory instead
    // (clone_into.rs says why); on v1, or where the kernel refuses, fork and join.
    let into = match cgroups {
        [one] => one.parent().and_then(super::clone_into::open_dir),
        _ => None,
    };
    // SAFETY: hull is single-threaded here.
    let forked = unsafe { super::clone_into::fork_in(into.as_ref().map(|fd| fd.as_fd())) };
    drop(into);
    let forked = forked.map(|(r, born)| {
        if born {
            cgroups = &[];
        }
        r
    });
    match forked.ctx(|| "fork".to_string())? {
        ForkResult::Child => {
            drop(parent);
            let r = middle(&cfg, &nss, &root, cgroups, in_userns, &child);
            if let Err(e) = r {
                let _ = child.send(&Msg::Error { msg: e.to_string() });
            }
            // SAFETY: _exit leaves the forked child without running the parent's exit code.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child: mid } => {
            drop(child);
            let mut new_pid = None;
            let r = loop {
                match parent.recv() {
                    Ok(Some(Msg::InitPid { pid })) => new_pid = Some(pid),
                    Ok(Some(Msg::Error { msg })) => break Err(Error::Msg(msg)),
                    Ok(Some(other)) => break Err(Error::Msg(format!("unexpected message {other:?}"))),
                    Ok(None) => break new_pid.ok_or_else(|| Error::Msg("exec'd process vanished".into())),
                    Err(e) => break Err(e).ctx(|| "read from exec'd process".to_string()),
                }
            };
            let _ = waitpid(mid, None);
            if let (Ok(pid), true) = (&r, cfg.join_after_exec) {
                for f in &cfg.cgroup_procs {
                    match std::fs::write(f, pid.to_string()) {
                        // Already gone (a short command): nothing left to place.
                        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => break,
                        r => r.ctx(|| format!("join cgroup {}", f.display()))?,
                    }
                }
            }
            r
        }
    }
}

fn middle(
    cfg: &ExecConfig,
    nss: &[(CloneFlags, OwnedFd)],
    root: &OwnedFd,
    cgroups: &[std::path::PathBuf],
    in_userns: bool,
    sock: &SyncSocket,
) -> Result<()> {
    for f in cgroups {
        // The init's cgroups hold the container's limits: the new process belongs there.
        std::fs::write(f, std::process::id().to_string()).ctx(|| format!("join cgroup {}", f.display()))?;
    }
    if !in_userns {
        // Visible to the container from here on: no /proc/<pid>/exe to the host binary.
        // The protection rests on this call: if it fails, so does exec.
        nix::sys::prctl::set_dumpable(false).ctx(|| "make the new process non-dumpable".to_string())?;
    }
    for (flag, fd) in nss {
        setns(fd, *flag).ctx(|| format!("join the container's {flag:?} namespace"))?;
    }
    // SAFETY: single-threaded, as above.
    match unsafe { fork() }.ctx(|| "fork".to_string())? {
        ForkResult::Child => {
            let e = match inner(cfg, root, sock) {
                Ok(prepared) => prepared.exec(),
                Err(e) => e,
            };
            let _ = sock.send(&Msg::Error { msg: e.to_string() });
            // SAFETY: as above.
            unsafe { libc::_exit(127) }
        }
        ForkResult::Parent { child } => {
            sock.send(&Msg::InitPid { pid: child.as_raw() }).ctx(|| "report pid".to_string())
        }
    }
}

/// In the container's pid namespace: enter its root, then set up like the init does.
fn inner(cfg: &ExecConfig, root: &OwnedFd, _sock: &SyncSocket) -> Result<process::Prepared> {
    fchdir(root).ctx(|| "enter the container's root".to_string())?;
    chroot(".").ctx(|| "chroot into the container's root".to_string())?;
    std::env::set_current_dir("/").ctx(|| "chdir /".to_string())?;
    let _ = setsid();
    if cfg.process.terminal().unwrap_or(false) {
        let Some(sock) = &cfg.console else {
            return msg("process.terminal is set but there is no console socket");
        };
        let size = cfg.process.console_size().map(|b| (b.height() as u16, b.width() as u16));
        let user = cfg.process.user();
        let slave = console::setup_exec(sock.as_fd(), size, user.uid(), user.gid())?;
        console::make_stdio(&slave)?;
    }
    let filter = match cfg.linux.and_then(|l| l.seccomp().as_ref()) {
        Some(s) => Some(seccomp::compile(s)?),
        None => None,
    };
    // The container's linux section gives the exec'd process its personality too (runc sets
    // it in its exec init): nothing inherits it, this process was forked by `hull exec`.
    process::prepare(cfg.process, cfg.linux, cfg.preserve_fds, filter)
}
