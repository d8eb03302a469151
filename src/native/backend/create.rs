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
        Some(systemd_cgroups::Scope::new(spec_cgroups_path, req.id).map_err(|e| bad_config(&e))?)
    } else {
        None
    };
    Ok(Plan { cgroup_path, scope })
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
            cgroup: Some(placement),
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
pub fn in_cgroup(
    plan: Plan,
    bundle: &Bundle,
    dir: &ContainerDir,
    state: &mut State,
    make_init: impl for<'p> FnOnce(Placement<'p>, StateFor<'p>, &'p Bundle, &'p ContainerDir) -> Result<i32>,
) -> Result<i32> {
    let Plan { cgroup_path, scope } = plan;
    state.cgroup = Some(cgroup_path.clone());
    state.systemd_unit = scope.as_ref().map(|s| s.unit.clone());
    let mut cgroup: Option<Cgroup> = None;
    // Set once systemd has started the scope: only then is stopping it ours to do.
    let scope_started = Cell::new(false);
    let result = (|| -> Result<i32> {
        dir.save(state)?;
        let resources = crate::cgroups::with_default_devices(&bundle.spec);
        let cg = match &scope {
            None => {
                let (cg, created_from) =
                    Cgroup::create(&cgroup_path, resources.as_ref()).map_err(Error::backend)?;
                state.cgroup_created_from = created_from;
                cgroup.insert(cg)
            }
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
        let snapshot = state.clone();
        let for_hooks = |pid: i32| {
            let mut st = snapshot.clone();
            st.pid = pid;
            st.oci_as(Status::Creating)
        };
        let placement = match place.as_mut() {
            None => Placement::Join(cg),
            Some(f) => Placement::AfterFork(cg, f),
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
            if let Err(se) = systemd_cgroups::stop(unit) {
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
