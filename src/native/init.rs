//! The child side of `create`: two forked stages that end as the container's init.
//!
//! stage 1 joins and creates namespaces (a pid or time namespace only applies to children),
//! then forks stage 2, reports its pid and exits. stage 2 is the init: pid 1 of a new pid
//! namespace. It sets up the rootfs, reports Ready, blocks on the exec fifo until `start`,
//! and execs the program.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::fcntl::{openat, OFlag};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use nix::unistd::{fork, setresgid, setresuid, setsid, ForkResult, Gid, Uid};

use super::error::{msg, Context, Result};
use super::namespaces::{self, Plan};
use super::sync::{Msg, SyncSocket};
use super::{process, rootfs, InitConfig};
use crate::hooks;
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
pub fn stage1(cfg: &mut InitConfig, plan: &Plan, sock: &SyncSocket) -> ! {
    // The cgroup first, before a cgroup namespace is made (it is rooted where we are) and
    // before anything runs that its limits should hold.
    if cfg.cgroup_after_fork {
        if let Err(e) = wait_for_cgroup(cfg, sock) {
            finish(sock, Err(e));
        }
    }
    if let (Some(cg), false) = (cfg.cgroup.as_mut(), cfg.born_in_cgroup) {
        if let Err(e) = cg.join(std::process::id()) {
            // A message to the parent: the cause's words go with it.
            finish(sock, Err(super::error::Error::Msg(crate::container::Chain(&e).to_string())));
        }
    }
    let r = stage1_inner(cfg, plan, sock);
    finish(sock, r)
}

/// Waits until the parent has made the cgroup around this process (a systemd scope) and
/// takes its path, which systemd may have chosen.
fn wait_for_cgroup(cfg: &mut InitConfig, sock: &SyncSocket) -> Result<()> {
    match sock.recv().ctx(|| "sync with parent".to_string())? {
        Some(Msg::CgroupReady { path }) => {
            if let Some(cg) = cfg.cgroup.as_mut() {
                cg.path = path;
            }
            Ok(())
        }
        Some(Msg::Error { msg: m }) => msg(m),
        other => msg(format!("unexpected message from parent: {other:?}")),
    }
}

fn stage1_inner(cfg: &InitConfig, plan: &Plan, sock: &SyncSocket) -> Result<()> {
    // hull create's other fds (the container's lock above all: an flock lives as long as any
    // copy of its fd) must not live on in the init while it waits for `start`.
    close_inherited(cfg, sock)?;
    if let Some(p) = cfg.bundle.spec.process() {
        if let Some(v) = p.oom_score_adj() {
            super::scheduling::set_oom_score_adj(v)?;
        }
        if let Some(list) = p.exec_cpu_affinity().as_ref().and_then(|a| a.initial().clone()) {
            super::scheduling::set_affinity(&list)?;
        }
    }
    let joins = plan.open_joins()?;
    namespaces::join(&joins)?;
    let joined_userns = joins.iter().any(|j| j.flag == CloneFlags::CLONE_NEWUSER);
    drop(joins);
    if joined_userns {
        // setns into a user namespace keeps the host ids, which that namespace may not map
        // (a pod's, whose root is host 100000): files made in the mounts it owns would fail
        // with EOVERFLOW. Its root is who the container's setup runs as, as in one made here.
        become_root_in_userns()?;
    }
    if plan.create.contains(CloneFlags::CLONE_NEWUSER) {
        nix::sched::unshare(CloneFlags::CLONE_NEWUSER).ctx(|| "create user namespace".to_string())?;
        sock.send(&Msg::WriteIdMaps { pid: nix::unistd::getpid().as_raw() })
            .ctx(|| "sync with parent".to_string())?;
        match sock.recv().ctx(|| "sync with parent".to_string())? {
            Some(Msg::IdMapsWritten) => {}
            Some(Msg::Error { msg: m }) => return msg(m),
            other => return msg(format!("unexpected message from parent: {other:?}")),
        }
        become_root_in_userns()?;
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
        // The protection rests on this call: if it fails, so does create.
        nix::sys::prctl::set_dumpable(false).ctx(|| "make the init non-dumpable".to_string())?;
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

/// Takes uid and gid 0 of the user namespace this process is in (one it made or joined).
fn become_root_in_userns() -> Result<()> {
    setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
        .ctx(|| "become root in the user namespace (setgid 0: does its gid map have 0?)".to_string())?;
    setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
        .ctx(|| "become root in the user namespace (setuid 0: does its uid map have 0?)".to_string())?;
    // Changing credentials made us non-dumpable, which hands /proc/self to the host's root; we
    // still write there (timens_offsets) before the real lock-down below.
    nix::sys::prctl::set_dumpable(true).ctx(|| "make the init dumpable again".to_string())
}

/// Closes every fd above stdio and the preserved ones, except those the init needs.
fn close_inherited(cfg: &InitConfig, sock: &SyncSocket) -> Result<()> {
    let console = cfg.console.as_ref().map(|c| c.as_raw_fd()).unwrap_or(-1);
    let log = crate::logging::log_fd().unwrap_or(-1);
    let mut keep =
        vec![sock.as_fd().as_raw_fd(), cfg.state_dir.as_raw_fd(), cfg.fifo.as_raw_fd(), console, log];
    keep.extend(cfg.idmapped.raw_fds());
    let first = 3 + cfg.preserve_fds as i32;
    let entries = std::fs::read_dir("/proc/self/fd").ctx(|| "list /proc/self/fd".to_string())?;
    let fds: Vec<i32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .filter(|fd| *fd >= first && !keep.contains(fd))
        .collect();
    for fd in fds {
        // SAFETY: closing an fd number this process inherited and never uses again; the
        // read_dir handle above is already dropped, so this cannot close it under us.
        unsafe { libc::close(fd) };
    }
    Ok(())
}

/// stage 2: the container's init.
fn stage2(cfg: &InitConfig, plan: &Plan, sock: &SyncSocket) -> ! {
    let (prepared, state) = match stage2_setup(cfg, plan, sock) {
        Ok(p) => p,
        Err(e) => finish(sock, Err(e)),
    };
    // `create` has returned: from here on errors can only go to the container's stderr.
    // The fifo's write end stays open (close-on-exec) until the program replaces this init:
    // `start` reads to its end, so its poststart hooks run after the program is executed, as
    // config.md asks, and not while the init is still on its way there.
    let e = match wait_for_start(cfg).and_then(|fifo| start_hooks(cfg, &state).map(|()| fifo)) {
        Ok(_fifo) => prepared.exec(),
        Err(e) => e,
    };
    eprintln!("hull: error: container init: {e}");
    // SAFETY: as in `finish`.
    unsafe { libc::_exit(127) }
}

/// startContainer hooks: in the container, after `start`, before the program.
fn start_hooks(cfg: &InitConfig, state: &Option<serde_json::Value>) -> Result<()> {
    let spec = &cfg.bundle.spec;
    let Some(state) = state else { return Ok(()) };
    let state = hooks::in_container(state, "created");
    hooks::run(spec, hooks::Kind::StartContainer, &state).map_err(|e| super::error::Error::Msg(e.to_string()))
}

/// Asks the parent to run prestart/createRuntime hooks, then runs createContainer here.
/// Returns the state JSON the parent sent, for the startContainer hooks.
fn create_hooks(spec: &oci_spec::runtime::Spec, sock: &SyncSocket) -> Result<serde_json::Value> {
    sock.send(&Msg::RunHooks).ctx(|| "ask parent for hooks".to_string())?;
    let state = match sock.recv().ctx(|| "wait for hooks".to_string())? {
        Some(Msg::HooksDone { state }) => state,
        Some(Msg::Error { msg: m }) => return msg(m),
        other => return msg(format!("unexpected message from parent: {other:?}")),
    };
    hooks::run(spec, hooks::Kind::CreateContainer, &hooks::in_container(&state, "creating"))
        .map_err(|e| super::error::Error::Msg(e.to_string()))?;
    Ok(state)
}

type Setup = (process::Prepared, Option<serde_json::Value>);

fn stage2_setup(cfg: &InitConfig, plan: &Plan, sock: &SyncSocket) -> Result<Setup> {
    let _ = setsid();
    // Device nodes and directories get exactly the modes the spec asks for.
    nix::sys::stat::umask(Mode::empty());
    let spec = &cfg.bundle.spec;
    // Hooks need the parent's state JSON; ask only when the spec has any, it costs a round trip.
    let wants_hooks = hooks::init_needs_state(spec.hooks().as_ref());
    let mut state = None;
    let mut before_pivot = || -> Result<()> {
        if wants_hooks {
            state = Some(create_hooks(spec, sock)?);
        }
        Ok(())
    };
    rootfs::setup(
        spec,
        &cfg.bundle.rootfs,
        &rootfs::Sources { bundle: &cfg.bundle.dir, idmapped: &cfg.idmapped },
        cfg.no_pivot,
        plan.in_userns(),
        plan.has(CloneFlags::CLONE_NEWNS),
        &mut before_pivot,
    )?;
    if let Some(h) = spec.hostname() {
        nix::unistd::sethostname(h).ctx(|| format!("set hostname {h:?}"))?;
    }
    if let Some(d) = spec.domainname() {
        set_domainname(d)?;
    }
    let Some(proc_spec) = spec.process() else { return msg("process: missing") };
    if proc_spec.terminal().unwrap_or(false) {
        let Some(sock) = &cfg.console else {
            return msg("process.terminal is set but there is no console socket");
        };
        let size = proc_spec.console_size().map(|b| (b.height() as u16, b.width() as u16));
        let user = proc_spec.user();
        let slave = super::console::setup(sock, size, user.uid(), user.gid())?;
        super::console::make_stdio(&slave)?;
    }
    let filter = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(s) => Some(super::seccomp::compile(s)?),
        None => None,
    };
    let (notify, filter) = match filter {
        Some(f) if f.needs_listener() => (Some(f), None),
        f => (None, f),
    };
    let prepared = process::prepare(proc_spec, spec.linux().as_ref(), cfg.preserve_fds, filter)?;
    if let Some(f) = notify {
        // SCMP_ACT_NOTIFY: the listener goes to the agent at listenerPath, a host path only
        // `hull create` can reach, and it is gone after Ready: install now, as runc does; the
        // filter then covers the rest of the init's steps.
        let listener = f.install_listener()?;
        sock.send_fd(&Msg::SeccompListener { fd: None }, listener.as_fd())
            .ctx(|| "send the seccomp listener to hull create".to_string())?;
    }
    sock.send(&Msg::Ready).ctx(|| "report ready".to_string())?;
    Ok((prepared, state))
}

fn set_domainname(d: &str) -> Result<()> {
    // SAFETY: the pointer and length describe `d`, which outlives the call.
    let rc = unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| format!("set domainname {d:?}"));
    }
    Ok(())
}

/// Blocks until `start` opens the exec fifo for reading, then tells it we are going; returns
/// the fifo, which the caller keeps open until exec.
///
/// The fifo is reopened through the O_PATH fd taken before the init entered the container:
/// the state directory is not reachable from inside (mode 0700, maybe another user
/// namespace), the fifo itself is writable by all. Without a /proc in the container, the
/// directory fd is the way in (which works when no user namespace is in the way).
fn wait_for_start(cfg: &InitConfig) -> Result<OwnedFd> {
    let via_proc = format!("/proc/self/fd/{}", cfg.fifo.as_raw_fd());
    let fifo = match nix::fcntl::open(via_proc.as_str(), OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty()) {
        Ok(f) => f,
        Err(_) => openat(cfg.state_dir.as_fd(), EXEC_FIFO, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty())
            .ctx(|| "open exec fifo".to_string())?,
    };
    nix::unistd::write(&fifo, b"0").ctx(|| "write exec fifo".to_string())?;
    Ok(fifo)
}
