//! The child side of `create`: two forked stages that end as the container's init.
//!
//! stage 1 joins and creates namespaces (a pid or time namespace only applies to children),
//! then forks stage 2, reports its pid and exits. stage 2 is the init: pid 1 of a new pid
//! namespace. It sets up the rootfs, reports Ready, blocks on the exec fifo until `start`,
//! and execs the program.

use std::os::fd::{AsFd, AsRawFd};

use nix::fcntl::{openat, OFlag};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use nix::unistd::{fork, setresgid, setresuid, setsid, ForkResult, Gid, Uid};

use super::error::{msg, Context, Result};
use super::namespaces::{self, Plan};
use super::sync::{Msg, SyncSocket};
use super::{process, rootfs, InitConfig};
use crate::state::EXEC_FIFO;

/// Runs a stage with its errors sent to the parent, then leaves the process.
fn finish(sock: &SyncSocket, r: Result<()>) -> ! {
    let code = match r {
        Ok(()) => 0,
        Err(e) => {
            let _ = sock.send(&Msg::Error { msg: e.to_string() });
            1
        }
    };
    // SAFETY: _exit ends this forked child without running the parent's atexit handlers or
    // flushing stdio buffers it shares with the parent.
    unsafe { libc::_exit(code) }
}

/// stage 1: namespaces, then fork the init.
pub fn stage1(cfg: &InitConfig, plan: &Plan, sock: &SyncSocket) -> ! {
    let r = stage1_inner(cfg, plan, sock);
    finish(sock, r)
}

fn stage1_inner(cfg: &InitConfig, plan: &Plan, sock: &SyncSocket) -> Result<()> {
    let joins = plan.open_joins()?;
    namespaces::join(&joins)?;
    drop(joins);
    if plan.create.contains(CloneFlags::CLONE_NEWUSER) {
        nix::sched::unshare(CloneFlags::CLONE_NEWUSER).ctx(|| "create user namespace".to_string())?;
        sock.send(&Msg::WriteIdMaps { pid: nix::unistd::getpid().as_raw() })
            .ctx(|| "sync with parent".to_string())?;
        match sock.recv().ctx(|| "sync with parent".to_string())? {
            Some(Msg::IdMapsWritten) => {}
            Some(Msg::Error { msg: m }) => return msg(m),
            other => return msg(format!("unexpected message from parent: {other:?}")),
        }
        setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
            .ctx(|| "become root in the user namespace (setgid 0)".to_string())?;
        setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
            .ctx(|| "become root in the user namespace (setuid 0)".to_string())?;
        // Changing credentials made us non-dumpable, which hands /proc/self to the host's
        // root; we still write there (timens_offsets) before the real lock-down below.
        // SAFETY: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) };
    }
    namespaces::create(plan.create)?;
    if plan.create.contains(CloneFlags::from_bits_retain(libc::CLONE_NEWTIME)) {
        // Written while still dumpable: a non-dumpable process's /proc/self belongs to the
        // host's root, which a user namespace's root cannot write.
        namespaces::set_time_offsets(&cfg.bundle.spec)?;
    }
    // From here on the init is reachable from the container's pid namespace: while hull is
    // still in this process, /proc/<pid>/exe and /proc/<pid>/fd must not be open to it
    // (CVE-2019-5736). exec of the program makes it dumpable again. In a user namespace the
    // container's root is an unprivileged host user who cannot write the host binary anyway,
    // and a non-dumpable init could not reach its own /proc/self/fd (owned by host root).
    if !plan.in_userns() {
        // SAFETY: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    }
    // SAFETY: hull is single-threaded (no threads are ever started before create), so the
    // child may run arbitrary code after fork.
    match unsafe { fork() }.ctx(|| "fork container init".to_string())? {
        ForkResult::Child => stage2(cfg, plan, sock),
        ForkResult::Parent { child } => {
            sock.send(&Msg::InitPid { pid: child.as_raw() }).ctx(|| "sync with parent".to_string())
        }
    }
}

/// stage 2: the container's init.
fn stage2(cfg: &InitConfig, plan: &Plan, sock: &SyncSocket) -> ! {
    let prepared = match stage2_setup(cfg, plan, sock) {
        Ok(p) => p,
        Err(e) => finish(sock, Err(e)),
    };
    // `create` has returned: from here on errors can only go to the container's stderr.
    let e = match wait_for_start(cfg) {
        Ok(()) => prepared.exec(),
        Err(e) => e,
    };
    eprintln!("hull: container init: {e}");
    // SAFETY: as in `finish`.
    unsafe { libc::_exit(127) }
}

fn stage2_setup(cfg: &InitConfig, plan: &Plan, sock: &SyncSocket) -> Result<process::Prepared> {
    let _ = setsid();
    // Device nodes and directories get exactly the modes the spec asks for.
    nix::sys::stat::umask(Mode::empty());
    let spec = &cfg.bundle.spec;
    if !plan.has(CloneFlags::CLONE_NEWNS) {
        return msg("linux.namespaces: hull needs a mount namespace for the container");
    }
    rootfs::setup(spec, &cfg.bundle.rootfs, &cfg.bundle.dir, cfg.no_pivot, plan.in_userns())?;
    if let Some(h) = spec.hostname() {
        nix::unistd::sethostname(h).ctx(|| format!("set hostname {h:?}"))?;
    }
    if let Some(d) = spec.domainname() {
        set_domainname(d)?;
    }
    let Some(proc_spec) = spec.process() else { return msg("process: missing") };
    let prepared = process::prepare(proc_spec, cfg.preserve_fds)?;
    sock.send(&Msg::Ready).ctx(|| "report ready".to_string())?;
    Ok(prepared)
}

fn set_domainname(d: &str) -> Result<()> {
    // SAFETY: the pointer and length describe `d`, which outlives the call.
    let rc = unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| format!("set domainname {d:?}"));
    }
    Ok(())
}

/// Blocks until `start` opens the exec fifo for reading, then tells it we are going.
///
/// The fifo is reopened through the O_PATH fd taken before the init entered the container:
/// the state directory is not reachable from inside (mode 0700, maybe another user
/// namespace), the fifo itself is writable by all. Without a /proc in the container, the
/// directory fd is the way in (which works when no user namespace is in the way).
fn wait_for_start(cfg: &InitConfig) -> Result<()> {
    let via_proc = format!("/proc/self/fd/{}", cfg.fifo.as_raw_fd());
    let fifo = match nix::fcntl::open(via_proc.as_str(), OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty()) {
        Ok(f) => f,
        Err(_) => openat(cfg.state_dir.as_fd(), EXEC_FIFO, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty())
            .ctx(|| "open exec fifo".to_string())?,
    };
    nix::unistd::write(&fifo, b"0").ctx(|| "write exec fifo".to_string())?;
    Ok(())
}
