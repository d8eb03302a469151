//! The Linux sandbox: one forked init per container, set up in its own namespaces.
//!
//! `create` runs in the `hull create` process: it forks the setup stages (see init.rs),
//! answers their requests over the sync socket and returns the init's pid once the init is
//! fully set up and waiting on the exec fifo. `backend` is what the lifecycle
//! (`crate::container`) calls: the native arms of its `Backend`.

pub mod backend;
mod capabilities;
mod cgroupfs;
pub(crate) mod clone_into;
pub(crate) mod console;
mod devices;
mod error;
mod exec;
pub(crate) mod hostroot;
pub(crate) mod idmap;
mod idmapmount;
mod init;
mod lsm;
mod mempolicy;
mod mountattr;
mod mountopts;
pub(crate) mod mounts;
pub(crate) mod namespaces;
pub(crate) mod paths;
mod process;
mod procfs;
mod rlimits;
mod rootfs;
mod scheduling;
pub mod seccomp;
pub(crate) mod sync;
mod sysctl;

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid};

pub use error::Error;
use error::{Context, Result};
pub use exec::{exec, ExecConfig};
use sync::Msg;

use crate::spec::Bundle;

/// What the init needs to know, beyond the spec.
pub struct InitConfig<'a> {
    pub bundle: &'a Bundle,
    /// The container's state directory (O_PATH): where the exec fifo is.
    pub state_dir: OwnedFd,
    /// The exec fifo (O_PATH), reopened for writing by the init.
    pub fifo: OwnedFd,
    pub no_pivot: bool,
    pub preserve_fds: u32,
    /// Connected console socket, when process.terminal is set.
    pub console: Option<OwnedFd>,
    /// The container's cgroup, joined by stage 1 before anything else happens.
    pub cgroup: Option<&'a mut crate::cgroups::Cgroup>,
    /// Stage 1 waits for the parent's CgroupReady before joining (see `Place`).
    pub cgroup_after_fork: bool,
    /// Stage 1 was forked straight into the cgroup (cgroup v2): nothing to join.
    pub born_in_cgroup: bool,
    /// The idmapped mounts, made by `hull create` before the fork (idmapmount.rs): inherited
    /// by stage 1 and stage 2, which attaches them.
    pub idmapped: idmapmount::Prepared,
}

/// Makes the container's cgroup once stage 1 exists, for a cgroup that needs a live process
/// to be made (a systemd scope starts with its first pid in it). Called in the parent with
/// stage 1's pid; returns the cgroup's path. Stage 1 waits for it before joining, so the init
/// is in the cgroup before anything of the container runs.
pub type Place<'a> = &'a mut dyn FnMut(i32) -> std::result::Result<String, PlaceError>;

/// Why `Place` could not make the cgroup; the cause stays typed (and its errno with it).
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error("bad stage 1 pid {0}")]
    Pid(i32),
    #[error(transparent)]
    Systemd(#[from] crate::cgroups::systemd::SystemdError),
    #[error(transparent)]
    Cgroup(#[from] crate::cgroups::CgroupError),
}

/// The container's cgroup and when it comes to be.
pub enum Placement<'a> {
    /// It exists: stage 1 joins it first thing.
    Join(&'a mut crate::cgroups::Cgroup),
    /// `Place` makes it once stage 1 exists; stage 1 joins it then.
    AfterFork(&'a mut crate::cgroups::Cgroup, Place<'a>),
}

/// Builds the OCI state JSON that hooks get on stdin, for the init with this host pid.
pub type StateFor<'a> = &'a dyn Fn(i32) -> serde_json::Value;

/// What `create` needs: the bundle, where the exec fifo is, and how the init is placed.
pub struct CreateConfig<'a> {
    pub bundle: &'a Bundle,
    /// The container's state directory, holding the exec fifo.
    pub state_dir: &'a Path,
    /// Move the root with MS_MOVE and chroot instead of pivot_root.
    pub no_pivot: bool,
    /// Fds after stdio (3, 4, ...) that the init keeps.
    pub preserve_fds: u32,
    /// Connected console socket, when process.terminal is set.
    pub console: Option<OwnedFd>,
    /// The container's cgroup and when it comes to be; None: the init stays in ours.
    pub cgroup: Option<Placement<'a>>,
    /// The OCI state the createRuntime and prestart hooks get.
    pub state_for: StateFor<'a>,
}

/// Creates the container's init. On error nothing of it is left running.
pub fn create(config: CreateConfig) -> Result<i32> {
    let CreateConfig { bundle, state_dir, no_pivot, preserve_fds, console, cgroup, state_for } = config;
    let dirfd = open(state_dir, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        .ctx(|| format!("open state directory {}", state_dir.display()))?;
    let fifo_path = state_dir.join(crate::state::EXEC_FIFO);
    let fifo = open(&fifo_path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .ctx(|| format!("open {}", fifo_path.display()))?;
    let (cgroup, place) = match cgroup {
        None => (None, None),
        Some(Placement::Join(cg)) => (Some(cg), None),
        Some(Placement::AfterFork(cg, place)) => (Some(cg), Some(place)),
    };
    let cgroup_after_fork = place.is_some();
    let mut cfg = InitConfig {
        bundle,
        state_dir: dirfd,
        fifo,
        no_pivot,
        preserve_fds,
        console,
        cgroup,
        cgroup_after_fork,
        born_in_cgroup: false,
        idmapped: idmapmount::Prepared::default(),
    };
    if let Some(p) = bundle.spec.process() {
        lsm::check(p)?;
    }
    let plan = namespaces::Plan::from_spec(&bundle.spec);
    // With the host's privilege, before anything of the container exists (idmapmount.rs).
    cfg.idmapped = idmapmount::prepare(&bundle.spec, &bundle.dir, &plan)?;
    let (parent, child) = sync::pair().ctx(|| "create sync socket".to_string())?;
    // On cgroup v2 stage 1 is born in the cgroup (where the cgroup is made before the fork);
    // where the kernel refuses, it forks and joins as on v1.
    let into = match (&cfg.cgroup, cgroup_after_fork) {
        (Some(cg), false) => cg.unified_dir().and_then(|d| clone_into::open_dir(&d)),
        _ => None,
    };
    // SAFETY: hull is single-threaded here (no thread is ever started before create).
    let forked = unsafe { clone_into::fork_in(into.as_ref().map(|fd| fd.as_fd())) };
    drop(into);
    let forked = forked.map(|(r, born)| {
        cfg.born_in_cgroup = born;
        r
    });
    match forked.ctx(|| "fork".to_string())? {
        ForkResult::Child => {
            drop(parent);
            init::stage1(&mut cfg, &plan, &child)
        }
        ForkResult::Parent { child: stage1 } => {
            drop(child);
            // Stage 1 has its copies; the detached trees go with the last of them.
            drop(std::mem::take(&mut cfg.idmapped));
            if cfg.born_in_cgroup {
                crate::logging::debug(&format!("stage 1 ({stage1}) was born in its cgroup (clone3)"));
            }
            if let Some(place) = place {
                if let Err(e) = place_cgroup(&parent, &mut cfg, place, stage1) {
                    // Stage 1 has done nothing yet but wait for this answer.
                    let _ = kill(stage1, Signal::SIGKILL);
                    let _ = waitpid(stage1, None);
                    return Err(e);
                }
            }
            let mut init_pid: Option<i32> = None;
            let r = talk(&parent, &bundle.spec, &mut init_pid, state_for);
            let _ = waitpid(stage1, None);
            if r.is_err() {
                if let Some(p) = init_pid {
                    let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
                }
            }
            r
        }
    }
}

/// Makes the cgroup for stage 1 (see `Place`) and tells stage 1 where it is.
fn place_cgroup(sock: &sync::SyncSocket, cfg: &mut InitConfig, place: Place, stage1: Pid) -> Result<()> {
    let path = place(stage1.as_raw())?;
    if let Some(cg) = cfg.cgroup.as_mut() {
        cg.path = path.clone();
    }
    sock.send(&Msg::CgroupReady { path }).ctx(|| "write to container init".to_string())
}

/// The parent's side of the setup conversation.
fn talk(
    sock: &sync::SyncSocket,
    spec: &oci_spec::runtime::Spec,
    init_pid: &mut Option<i32>,
    state_for: StateFor,
) -> Result<i32> {
    // The init may ask for hooks, or even report ready, before stage 1's InitPid message has
    // been read: both processes write to this socket.
    let mut hooks_wanted = false;
    let mut ready = false;
    // A seccomp listener that came before the pid its agent must be told.
    let mut listener = None;
    loop {
        if let (true, Some(pid)) = (hooks_wanted, *init_pid) {
            hooks_wanted = false;
            let state = state_for(pid);
            let ran = crate::hooks::run(spec, crate::hooks::Kind::Prestart, &state)
                .and_then(|()| crate::hooks::run(spec, crate::hooks::Kind::CreateRuntime, &state));
            if let Err(e) = ran {
                let _ = sock.send(&Msg::Error { msg: e.to_string() });
                return Err(Error::Msg(e.to_string()));
            }
            sock.send(&Msg::HooksDone { state }).ctx(|| "write to container init".to_string())?;
        }
        match sock.recv().ctx(|| "read from container init".to_string())? {
            Some(Msg::WriteIdMaps { pid }) => {
                if let Err(e) = idmap::write(pid, spec) {
                    let _ = sock.send(&Msg::Error { msg: e.to_string() });
                    return Err(e);
                }
                sock.send(&Msg::IdMapsWritten).ctx(|| "write to container init".to_string())?;
            }
            Some(Msg::InitPid { pid }) => {
                *init_pid = Some(pid);
                if let Some(fd) = listener.take() {
                    seccomp::hand_over(spec, &fd, pid, state_for)?;
                }
                if ready {
                    return Ok(pid);
                }
            }
            Some(Msg::RunHooks) => hooks_wanted = true,
            Some(Msg::SeccompListener { fd }) => {
                let fd = fd.ok_or_else(|| Error::Msg("seccomp listener message without its fd".into()))?;
                match *init_pid {
                    Some(pid) => seccomp::hand_over(spec, &fd, pid, state_for)?,
                    None => listener = Some(fd),
                }
            }
            Some(Msg::Ready) => match *init_pid {
                Some(pid) => return Ok(pid),
                None => ready = true,
            },
            Some(Msg::Error { msg }) => return Err(Error::Msg(msg)),
            Some(other) => return Err(Error::Msg(format!("unexpected message {other:?}"))),
            None => return Err(Error::Msg("container init exited before it was set up".into())),
        }
    }
}
