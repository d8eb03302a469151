//! The native backend's `create`: the container's cgroup (cgroupfs, or a systemd scope with
//! `--systemd-cgroup` where systemd is init), then the init forked into it.

use std::cell::Cell;

use crate::cgroups::systemd as systemd_cgroups;
use crate::cgroups::Cgroup;
use crate::container::backend::{InitSpec, PrepareRequest};
use crate::container::{Error, Result};
use crate::native::{CreateConfig, PlaceError, Placement, StateFor};
use crate::spec::Bundle;
use crate::state::{ContainerDir, State, Status};

/// Where the container's cgroup goes, worked out from the spec before anything exists.
pub struct Plan {
    /// The cgroup path below each hierarchy's root.
    cgroup_path: String,
    /// The systemd scope that makes the cgroup, with `--systemd-cgroup` and systemd as init.
    scope: Option<systemd_cgroups::Scope>,
    /// Rootless: a cgroup hull may not make is done without (see [`without_cgroup`]).
    rootless: bool,
}

/// Checks linux.cgroupsPath (and the scope it names) before the id is claimed.
pub fn prepare(req: &PrepareRequest) -> Result<Plan> {
    let bundle = req.bundle;
    let linux = bundle.spec.linux().as_ref();
    let spec_cgroups_path = linux.and_then(|l| l.cgroups_path().as_ref()).and_then(|p| p.to_str());
    let bad_config = |m: &dyn std::fmt::Display| {
        Error::Invalid(format!("bundle {}: config.json: {m}", bundle.dir.display()))
    };
    let cgroup_path =
        crate::cgroups::resolve(spec_cgroups_path, req.id, req.systemd_cgroup).map_err(|m| bad_config(&m))?;
    // With systemd as init, --systemd-cgroup makes the cgroup a transient scope of systemd's;
    // without it the same name maps to the path systemd would use (cgroupfs, as before).
    let scope = if req.systemd_cgroup && systemd_cgroups::booted() {
        // A rootless hull's scope is the user's own systemd's, on its session bus.
        let manager =
            if req.rootless { systemd_cgroups::Manager::User } else { systemd_cgroups::Manager::System };
        Some(systemd_cgroups::Scope::new(spec_cgroups_path, req.id, manager).map_err(|e| bad_config(&e))?)
    } else {
        None
    };
    Ok(Plan { cgroup_path, scope, rootless: req.rootless })
}

/// Makes the cgroup and the init in it. What it made is recorded in `state` (saved before
/// the init exists, so `delete` of a create that died finds it); on error it is removed.
pub fn create(plan: Plan, spec: InitSpec, state: &mut State) -> Result<i32> {
    let InitSpec { bundle, dir, no_pivot, preserve_fds, console } = spec;
    // Without a mount namespace the container's mounts land in the host's mount table: under
    // one bind of the rootfs that delete removes (native/hostroot.rs). in_cgroup saves the
    // state, with it, before it makes anything else.
    let namespaces = crate::native::namespaces::Plan::from_spec(&bundle.spec);
    if !namespaces.has(nix::sched::CloneFlags::CLONE_NEWNS) {
        state.host_root = Some(crate::native::hostroot::bind(&bundle.rootfs).map_err(Error::backend)?);
    }
    let made = in_cgroup(plan, bundle, dir, state, |placement, state_for, bundle, dir| {
        crate::native::create(CreateConfig {
            bundle,
            state_dir: &dir.path,
            no_pivot,
            preserve_fds,
            console,
            cgroup: placement,
            state_for,
        })
        .map_err(Error::backend)
    });
    if let (Err(_), Some(m)) = (&made, &state.host_root) {
        // The first error is what the user sees; this cleanup is best effort.
        if let Err(e) = crate::native::hostroot::remove(m) {
            crate::logging::warn(&format!("create {}: cleanup: {e}", state.id));
        }
    }
    made
}

/// Makes the container's cgroup (or systemd scope) as `plan` says, then has `make_init` make
/// the init and place it there (it gets `bundle` and `dir` back, for the borrow checker);
/// returns the init's pid. The vm backend makes its VMM init in
/// the same cgroup through this. What it made is recorded in `state` (saved before the init
/// exists, so `delete` of a create that died finds it); on error it is removed again.
/// Rootless, a cgroup hull may not make means none: `make_init` gets no placement.
pub fn in_cgroup(
    plan: Plan,
    bundle: &Bundle,
    dir: &ContainerDir,
    state: &mut State,
    make_init: impl for<'p> FnOnce(
        Option<Placement<'p>>,
        StateFor<'p>,
        &'p Bundle,
        &'p ContainerDir,
    ) -> Result<i32>,
) -> Result<i32> {
    let Plan { cgroup_path, scope, rootless } = plan;
    state.cgroup = Some(cgroup_path.clone());
    state.systemd_unit = scope.as_ref().map(|s| s.unit.clone());
    state.systemd_manager = scope.as_ref().map(|s| s.manager).unwrap_or_default();
    let mut cgroup: Option<Cgroup> = None;
    // Set once systemd has started the scope: only then is stopping it ours to do.
    let scope_started = Cell::new(false);
    let result = (|| -> Result<i32> {
        dir.save(state)?;
        let resources = crate::cgroups::with_default_devices(&bundle.spec);
        let cg = match &scope {
            None => match Cgroup::create(&cgroup_path, resources.as_ref()) {
                Ok((cg, created_from)) => {
                    state.cgroup_created_from = created_from;
                    cgroup.insert(cg)
                }
                Err(e) if rootless && not_permitted(&e) => {
                    without_cgroup(bundle, &cgroup_path, &e);
                    state.cgroup = None;
                    dir.save(state)?;
                    return make_init(None, &creating_state(state), bundle, dir);
                }
                Err(e) => return Err(Error::backend(e)),
            },
            // systemd makes the scope once stage 1 exists (`place`); the slices above it are
            // systemd's, so cgroup_created_from stays None and delete removes none of them.
            Some(_) => {
                let cg = Cgroup::open(&cgroup_path).map_err(Error::backend)?;
                cg.check_unused().map_err(Error::backend)?;
                cgroup.insert(cg)
            }
        };
        dir.save(state)?;
        let mut place = scope.as_ref().map(|scope| {
            let (resources, expected, started) = (resources.as_ref(), cgroup_path.as_str(), &scope_started);
            move |pid: i32| -> std::result::Result<String, PlaceError> {
                let pid = u32::try_from(pid).map_err(|_| PlaceError::Pid(pid))?;
                let path = systemd_cgroups::start(scope, pid, resources, expected)?;
                started.set(true);
                Cgroup::open(&path)?.populate(resources)?;
                Ok(path)
            }
        });
        let for_hooks = creating_state(state);
        let placement = match place.as_mut() {
            None => Some(Placement::Join(cg)),
            Some(f) => Some(Placement::AfterFork(cg, f)),
        };
        make_init(placement, &for_hooks, bundle, dir)
    })();
    // systemd may have put the scope elsewhere than path.rs computed.
    if let Some(cg) = &cgroup {
        state.cgroup = Some(cg.path.clone());
    }
    if result.is_err() {
        // The first error is what the user sees; cleanup is best effort. The scope first:
        // systemd kills what is left in it and removes its cgroup.
        if let (true, Some(unit)) = (scope_started.get(), &state.systemd_unit) {
            if let Err(se) = systemd_cgroups::stop(unit, state.systemd_manager) {
                crate::logging::warn(&format!("create {}: cleanup: {se}", state.id));
            }
        }
        if let Some(cg) = cgroup {
            // An init that was made but never announced (the error came first) is still in
            // the cgroup, and an rmdir of a busy cgroup fails: empty the cgroup hull made
            // first. One the caller made may hold others' processes: it is left alone.
            if state.cgroup_created_from.is_some() {
                if let Err(ke) = super::signal::kill_cgroup(&cg) {
                    crate::logging::warn(&format!("create {}: cleanup: {ke}", state.id));
                }
            }
            if let Err(de) = cg.destroy(state.cgroup_created_from.as_deref()) {
                crate::logging::warn(&format!("create {}: cleanup: {de}", state.id));
            }
        }
    }
    result
}

/// The OCI state the createRuntime and prestart hooks get, for the init with this host pid.
fn creating_state(state: &State) -> impl Fn(i32) -> serde_json::Value {
    let snapshot = state.clone();
    move |pid| {
        let mut st = snapshot.clone();
        st.pid = pid;
        st.oci_as(Status::Creating)
    }
}

/// True when the kernel refused hull the cgroup for want of privilege: an ordinary user's
/// mkdir in a hierarchy they do not own (EACCES), a read-only cgroupfs (EROFS), EPERM.
fn not_permitted(e: &crate::cgroups::CgroupError) -> bool {
    let denied = [libc::EACCES, libc::EPERM, libc::EROFS];
    e.io_error().and_then(|io| io.raw_os_error()).is_some_and(|n| denied.contains(&n))
}

/// A rootless container without a cgroup: nothing to say unless the spec asked for limits,
/// which then are not applied (a warning names them and the missing privilege, as crun and
/// runc do for a rootless container they cannot put in a cgroup).
fn without_cgroup(bundle: &Bundle, cgroup_path: &str, e: &crate::cgroups::CgroupError) {
    let asked = bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .map(limits_asked)
        .unwrap_or_default();
    let why = crate::container::Chain(e);
    crate::logging::debug(&format!("rootless: no cgroup {cgroup_path}: {why}"));
    if !asked.is_empty() {
        crate::logging::warn(&format!(
            "rootless: {} not applied: setting them needs a cgroup this user may write (a delegated cgroup v2 \
             subtree, named by linux.cgroupsPath): {why}",
            asked.join(", ")
        ));
    }
}

/// The limits linux.resources asks for, by the spec's names (device rules are not limits: a
/// user namespace cannot make device nodes anyway).
fn limits_asked(r: &oci_spec::runtime::LinuxResources) -> Vec<&'static str> {
    let mut asked = Vec::new();
    let mut note = |set: bool, name: &'static str| {
        if set {
            asked.push(name);
        }
    };
    note(
        r.memory()
            .as_ref()
            .is_some_and(|m| m.limit().is_some() || m.reservation().is_some() || m.swap().is_some()),
        "memory limit",
    );
    note(
        r.cpu().as_ref().is_some_and(|c| {
            c.quota().is_some() || c.shares().is_some() || c.cpus().is_some() || c.mems().is_some()
        }),
        "cpu limit",
    );
    note(r.pids().as_ref().is_some_and(|p| p.limit() > 0), "pids limit");
    note(r.block_io().is_some(), "blockIO");
    note(r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()), "hugepage limits");
    note(r.unified().as_ref().is_some_and(|u| !u.is_empty()), "unified settings");
    note(r.network().is_some(), "network priorities");
    note(r.rdma().as_ref().is_some_and(|m| !m.is_empty()), "rdma limits");
    asked
}
