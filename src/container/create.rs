//! `create`: validate the bundle, claim the id, make the init, record the state.

use std::cell::Cell;
use std::os::fd::OwnedFd;
use std::path::Path;

use anyhow::Context;
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;
use nix::unistd::{mkfifo, Pid};

use super::systemd;
use crate::cgroups::systemd as systemd_cgroups;
use crate::cgroups::Cgroup;
use crate::cli::{CreateOpts, GlobalOpts};
use crate::native::Placement;
use crate::state::{ContainerDir, Phase, ProcStat, State, Status, Store};

/// A created container: its directory (still locked) and state.
pub struct Created {
    pub dir: ContainerDir,
    pub state: State,
    /// For `run` on the caller's terminal: the socket the pty master arrives on.
    pub console: Option<OwnedFd>,
}

/// Creates the container. `interactive`: with process.terminal and no --console-socket, hand
/// the pty to the caller (`run`) instead of failing.
pub fn create(g: &GlobalOpts, id: &str, opts: &CreateOpts, interactive: bool) -> anyhow::Result<Created> {
    create_inner(g, id, opts, interactive).with_context(|| format!("create {id}"))
}

/// The console socket the init sends the pty master to, and the end `run` keeps, if any.
fn console_socket(
    terminal: bool,
    path: Option<&Path>,
    interactive: bool,
) -> anyhow::Result<(Option<OwnedFd>, Option<OwnedFd>)> {
    if !terminal {
        return Ok((None, None));
    }
    match path {
        Some(p) => {
            let s = std::os::unix::net::UnixStream::connect(p)
                .with_context(|| format!("connect to console socket {}", p.display()))?;
            Ok((Some(OwnedFd::from(s)), None))
        }
        None if interactive => {
            let (a, b) = std::os::unix::net::UnixStream::pair().context("console socketpair")?;
            Ok((Some(OwnedFd::from(a)), Some(OwnedFd::from(b))))
        }
        None => anyhow::bail!("process.terminal is true but no --console-socket was given"),
    }
}

fn create_inner(g: &GlobalOpts, id: &str, opts: &CreateOpts, interactive: bool) -> anyhow::Result<Created> {
    // Everything the config can get wrong is found here, before anything exists.
    let mut bundle = crate::spec::load(&opts.bundle)?;
    let mut opts = opts.clone();
    systemd::pass_through(&mut bundle.spec, &mut opts.preserve_fds);
    let opts = &opts;
    let terminal = bundle.spec.process().as_ref().and_then(|p| p.terminal()).unwrap_or(false);
    let (console, keep) = console_socket(terminal, opts.console_socket.as_deref(), interactive)?;
    let linux = bundle.spec.linux().as_ref();
    let spec_cgroups_path = linux.and_then(|l| l.cgroups_path().as_ref()).and_then(|p| p.to_str());
    let bad_config =
        |m: &dyn std::fmt::Display| anyhow::anyhow!("bundle {}: config.json: {m}", bundle.dir.display());
    let cgroup_path =
        crate::cgroups::resolve(spec_cgroups_path, id, g.systemd_cgroup).map_err(|m| bad_config(&m))?;
    // With systemd as init, --systemd-cgroup makes the cgroup a transient scope of systemd's;
    // without it the same name maps to the path systemd would use (cgroupfs, as before).
    let scope = if g.systemd_cgroup && systemd_cgroups::booted() {
        Some(systemd_cgroups::Scope::new(spec_cgroups_path, id).map_err(|e| bad_config(&e))?)
    } else {
        None
    };
    let store = Store::open(&g.root)?;
    let dir = store.create(id)?;
    let mut state = State {
        id: id.to_string(),
        phase: Phase::Creating,
        pid: 0,
        pid_start: 0,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        annotations: bundle.spec.annotations().clone().unwrap_or_default().into_iter().collect(),
        created: crate::logging::rfc3339_now(),
        owner: owner_name(),
        config: Some(bundle.spec.clone()),
        cgroup: Some(cgroup_path.clone()),
        cgroup_created_from: None,
        systemd_unit: scope.as_ref().map(|s| s.unit.clone()),
    };
    let mut cgroup: Option<Cgroup> = None;
    // Set once systemd has started the scope: only then is stopping it ours to do.
    let scope_started = Cell::new(false);
    let result = (|| -> anyhow::Result<()> {
        dir.save(&state)?;
        mkfifo(&dir.fifo_path(), Mode::from_bits_truncate(0o622)).context("make exec fifo")?;
        // Writable by the container's root whatever user namespace it is in (umask took
        // the bits mkfifo asked for); only root can read it and so start the container.
        std::fs::set_permissions(dir.fifo_path(), std::os::unix::fs::PermissionsExt::from_mode(0o622))
            .context("chmod exec fifo")?;
        let resources = crate::cgroups::with_default_devices(&bundle.spec);
        let cg = match &scope {
            None => {
                let (cg, created_from) = Cgroup::create(&cgroup_path, resources.as_ref())?;
                state.cgroup_created_from = created_from;
                cgroup.insert(cg)
            }
            // systemd makes the scope once stage 1 exists (`place`); the slices above it are
            // systemd's, so cgroup_created_from stays None and delete removes none of them.
            Some(_) => {
                let cg = Cgroup::open(&cgroup_path)?;
                cg.check_unused()?;
                cgroup.insert(cg)
            }
        };
        dir.save(&state)?;
        let mut place = scope.as_ref().map(|scope| {
            let (resources, expected, started) = (resources.as_ref(), cgroup_path.as_str(), &scope_started);
            move |pid: i32| -> Result<String, String> {
                let pid = u32::try_from(pid).map_err(|_| format!("bad stage 1 pid {pid}"))?;
                let path =
                    systemd_cgroups::start(scope, pid, resources, expected).map_err(|e| e.to_string())?;
                started.set(true);
                let cg = Cgroup::open(&path).map_err(|e| e.to_string())?;
                cg.populate(resources).map_err(|e| e.to_string())?;
                Ok(path)
            }
        });
        let for_hooks = |pid: i32| {
            let mut st = state.clone();
            st.pid = pid;
            st.oci_as(Status::Creating)
        };
        let pid = crate::native::create(crate::native::CreateConfig {
            bundle: &bundle,
            state_dir: &dir.path,
            no_pivot: opts.no_pivot,
            preserve_fds: opts.preserve_fds,
            console,
            cgroup: Some(match place.as_mut() {
                None => Placement::Join(cg),
                Some(f) => Placement::AfterFork(cg, f),
            }),
            state_for: &for_hooks,
        })?;
        crate::logging::debug(&format!("create {id}: init pid {pid} waits on the exec fifo"));
        // systemd may have put the scope elsewhere than path.rs computed.
        state.cgroup = cgroup.as_ref().map(|c| c.path.clone());
        state.pid = pid;
        state.phase = Phase::Created;
        let started = ProcStat::read(pid).map(|s| s.start_time);
        let finish = started.context("read the init's start time").and_then(|t| {
            state.pid_start = t;
            dir.save(&state)?;
            if let Some(p) = &opts.pid_file {
                write_pid_file(p, pid)?;
            }
            Ok(())
        });
        if finish.is_err() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        finish
    })();
    match result {
        Ok(()) => Ok(Created { dir, state, console: keep }),
        Err(e) => {
            // The first error is what the user sees; cleanup is best effort. The scope first:
            // systemd kills what is left in it and removes its cgroup.
            if let (true, Some(unit)) = (scope_started.get(), &state.systemd_unit) {
                if let Err(se) = systemd_cgroups::stop(unit) {
                    crate::logging::warn(&format!("create {id}: cleanup: {se}"));
                }
            }
            if let Some(cg) = cgroup {
                let _ = cg.destroy(state.cgroup_created_from.as_deref());
            }
            let _ = dir.remove();
            Err(e)
        }
    }
}

/// Writes the pid file atomically (runc writes the bare number, no newline).
pub fn write_pid_file(path: &Path, pid: i32) -> anyhow::Result<()> {
    let abs = std::path::absolute(path).with_context(|| format!("pid file {}", path.display()))?;
    let dir = abs.parent().unwrap_or(Path::new("/"));
    let tmp = dir.join(format!(
        ".{}.tmp",
        abs.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default()
    ));
    std::fs::write(&tmp, pid.to_string()).with_context(|| format!("write pid file {}", tmp.display()))?;
    std::fs::rename(&tmp, &abs).with_context(|| format!("write pid file {}", abs.display()))?;
    Ok(())
}

fn owner_name() -> String {
    let uid = nix::unistd::getuid();
    nix::unistd::User::from_uid(uid).ok().flatten().map(|u| u.name).unwrap_or_else(|| uid.to_string())
}
