//! `create`: validate the bundle, choose the backend, claim the id, have the backend make the
//! init, record the state.

use std::os::fd::OwnedFd;
use std::path::Path;

use super::backend::{InitSpec, PrepareRequest};
use super::error::{During, Error, IoContext, Result};
use super::{choose, systemd, CreateRequest, RuntimeContext};
use crate::state::{ContainerDir, Phase, ProcStat, State, Store, StoreError};

/// A created container: its directory (still locked) and state.
pub struct Created {
    pub dir: ContainerDir,
    pub state: State,
    /// For `run` on the caller's terminal: the socket the pty master arrives on.
    pub console: Option<OwnedFd>,
}

/// Creates the container. `interactive`: with process.terminal and no --console-socket, hand
/// the pty to the caller (`run`) instead of failing.
pub fn create(rt: &RuntimeContext, id: &str, req: &CreateRequest, interactive: bool) -> Result<Created> {
    create_inner(rt, id, req, interactive).during("create", id)
}

/// The console socket the init sends the pty master to, and the end `run` keeps, if any.
fn console_socket(
    terminal: bool,
    path: Option<&Path>,
    interactive: bool,
) -> Result<(Option<OwnedFd>, Option<OwnedFd>)> {
    if !terminal {
        return Ok((None, None));
    }
    match path {
        Some(p) => {
            let s = std::os::unix::net::UnixStream::connect(p)
                .doing(|| format!("connect to console socket {}", p.display()))?;
            Ok((Some(OwnedFd::from(s)), None))
        }
        None if interactive => {
            let (a, b) = std::os::unix::net::UnixStream::pair().doing(|| "console socketpair")?;
            Ok((Some(OwnedFd::from(a)), Some(OwnedFd::from(b))))
        }
        None => Err(Error::Invalid("process.terminal is true but no --console-socket was given".into())),
    }
}

fn create_inner(rt: &RuntimeContext, id: &str, req: &CreateRequest, interactive: bool) -> Result<Created> {
    // Everything the config can get wrong is found here, before anything exists.
    let mut bundle = crate::spec::load(&req.bundle)?;
    let mut preserve_fds = req.preserve_fds;
    systemd::pass_through(&mut bundle.spec, &mut preserve_fds);
    // Held until create returns: no fd of hull's own (the lock above all) lands in the range.
    let _reserved = crate::fdpass::reserve_preserved(preserve_fds).doing(|| "reserve the preserved fds")?;
    let backend = choose::choose(rt, bundle.spec.annotations().as_ref())?;
    let plan = backend.prepare(&PrepareRequest {
        id,
        bundle: &bundle,
        systemd_cgroup: rt.systemd_cgroup,
        preserve_fds,
        rootless: rt.rootless,
    })?;
    let terminal = bundle.spec.process().as_ref().and_then(|p| p.terminal()).unwrap_or(false);
    let (console, keep) = console_socket(terminal, req.console_socket.as_deref(), interactive)?;
    // A root the user may not write: /run/hull (made by root before, or not) without
    // XDG_RUNTIME_DIR. Said whether the root itself or the container's directory was refused.
    let hint = |e: StoreError| {
        match e {
        StoreError::Io { ref source, .. } if rt.rootless && source.kind() == std::io::ErrorKind::PermissionDenied => {
            Error::Invalid(format!(
                "{e} (rootless, hull keeps its state in $XDG_RUNTIME_DIR/hull: set XDG_RUNTIME_DIR, or --root)"
            ))
        }
        e => e.into(),
    }
    };
    let store = Store::open(&rt.root).map_err(hint)?;
    let dir = store.create(id).map_err(hint)?;
    let mut state = State {
        id: id.to_string(),
        backend,
        phase: Phase::Creating,
        pid: 0,
        pid_start: 0,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        annotations: bundle.spec.annotations().clone().unwrap_or_default().into_iter().collect(),
        created: crate::logging::rfc3339_now(),
        owner: owner_name(),
        config: Some(bundle.spec.clone()),
        cgroup: None,
        cgroup_created_from: None,
        systemd_unit: None,
        systemd_manager: Default::default(),
        vm_socket: None,
        host_root: None,
    };
    // Set once the backend has made the init: from then on a failure must stop it and
    // release what the backend made; before, the backend has cleaned up after itself.
    let mut made = false;
    let result = (|| -> Result<()> {
        dir.save(&state)?;
        crate::state::make_exec_fifo(&dir.fifo_path()).doing(|| "make exec fifo")?;
        let spec = InitSpec { bundle: &bundle, dir: &dir, no_pivot: req.no_pivot, preserve_fds, console };
        let pid = plan.create(spec, &mut state)?;
        made = true;
        crate::logging::debug(&format!("create {id}: init pid {pid} waits on the exec fifo"));
        state.pid = pid;
        state.phase = Phase::Created;
        state.pid_start = ProcStat::read(pid).doing(|| "read the init's start time")?.start_time;
        dir.save(&state)?;
        if let Some(p) = &req.pid_file {
            write_pid_file(p, pid)?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(Created { dir, state, console: keep }),
        Err(e) => {
            // The first error is what the user sees; cleanup is best effort.
            if made {
                if let Err(ce) = backend.stop(&state).and_then(|()| backend.release(&state)) {
                    crate::logging::warn(&format!("create {id}: cleanup: {ce}"));
                }
            }
            let _ = dir.remove();
            Err(e)
        }
    }
}

/// Writes the pid file atomically (runc writes the bare number, no newline).
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let abs = std::path::absolute(path).doing(|| format!("pid file {}", path.display()))?;
    let dir = abs.parent().unwrap_or(Path::new("/"));
    let tmp = dir.join(format!(
        ".{}.tmp",
        abs.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default()
    ));
    std::fs::write(&tmp, pid.to_string()).doing(|| format!("write pid file {}", tmp.display()))?;
    std::fs::rename(&tmp, &abs).doing(|| format!("write pid file {}", abs.display()))?;
    Ok(())
}

fn owner_name() -> String {
    let uid = nix::unistd::getuid();
    crate::host_user::name_of(uid.as_raw()).unwrap_or_else(|| uid.to_string())
}
