//! The systemd cgroup driver: with `--systemd-cgroup` on a host whose init is systemd, the
//! container's cgroup is a transient scope that systemd makes and owns (StartTransientUnit
//! over D-Bus, as runc and crun do), so that systemd knows the cgroup, accounts it in its
//! slice and does not trample it. hull then writes the resources into the scope through
//! cgroupfs like into any other cgroup.
//!
//! Without systemd as init, `slice:prefix:name` maps to the cgroupfs path systemd would use
//! (path.rs) and this module takes no part.

mod bus;
mod properties;
mod unit;

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

pub use unit::Scope;

/// Whose systemd makes and owns the scope: the system's, or for a rootless hull the user's own
/// manager (`systemd --user`, reached on the user's session bus), as runc and crun do for
/// rootless podman with its systemd cgroup manager. The user's manager owns a delegated
/// subtree (user@UID.service), so the scope and its files are the user's to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Manager {
    #[default]
    System,
    User,
}

impl Manager {
    pub fn is_system(&self) -> bool {
        *self == Manager::System
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    /// linux.cgroupsPath (or the resources) cannot make a unit systemd would take.
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Connect(String),
    #[error("systemd did not start unit {unit} for linux.cgroupsPath {cgroups_path:?}: {msg}")]
    Start { unit: String, cgroups_path: String, msg: String },
    #[error(
        "systemd unit {unit} (linux.cgroupsPath {cgroups_path:?}) already exists and is not a failed \
         leftover: another container has this cgroupsPath, or a deleted container's scope still has \
         processes; stop it (systemctl stop {unit}) or choose another name"
    )]
    Exists { unit: String, cgroups_path: String },
    #[error("stop systemd unit {unit}: {msg}")]
    Stop { unit: String, msg: String },
    #[error("set the resources of systemd unit {unit}: {msg}")]
    Update { unit: String, msg: String },
}

/// True when systemd is the running init, as sd_booted(3) checks.
pub fn booted() -> bool {
    std::fs::symlink_metadata("/run/systemd/system").is_ok_and(|m| m.is_dir())
}

/// Starts the container's scope with `pid` in it and the resources systemd has properties
/// for, and waits until systemd is done. Returns the scope's cgroup: `expected` (what path.rs
/// computes) unless systemd's ControlGroup differs. On error nothing is left started.
pub fn start(
    scope: &Scope,
    pid: u32,
    resources: Option<&LinuxResources>,
    expected: &str,
) -> Result<String, SystemdError> {
    let unified = matches!(super::Layout::detect(), super::Layout::Unified);
    let sd = bus::Systemd::connect(scope.manager).map_err(|e| SystemdError::Connect(e.to_string()))?;
    crate::logging::debug(&format!("systemd ({:?}): starting {} for pid {pid}", scope.manager, scope.unit));
    let props = properties::for_scope(scope, pid, resources, unified, sd.version())
        .map_err(|m| SystemdError::Config(format!("linux.resources: {m}")))?;
    let refused = |msg: String| SystemdError::Start {
        unit: scope.unit.clone(),
        cgroups_path: scope.cgroups_path.clone(),
        msg,
    };
    let mut result = sd.start_transient_unit(&scope.unit, &props);
    if result.as_ref().is_err_and(|e| e.is(bus::UNIT_EXISTS)) {
        // A scope of that name that failed is kept until reset: let systemd forget it and
        // try once more (runc does the same). One that is still active is someone's.
        let _ = sd.reset_failed_unit(&scope.unit);
        result = sd.start_transient_unit(&scope.unit, &props);
    }
    match result {
        Ok(r) if r == "done" => {}
        Ok(r) => {
            let _ = sd.reset_failed_unit(&scope.unit);
            return Err(refused(format!("its start job ended {r:?}")));
        }
        Err(e) if e.is(bus::UNIT_EXISTS) => {
            return Err(SystemdError::Exists {
                unit: scope.unit.clone(),
                cgroups_path: scope.cgroups_path.clone(),
            })
        }
        Err(e) => return Err(refused(e.to_string())),
    }
    match sd.control_group(&scope.unit) {
        Ok(cg) if !cg.is_empty() && cg != expected => {
            crate::logging::debug(&format!(
                "systemd put {} at {cg}, not {expected}: using systemd's path",
                scope.unit
            ));
            Ok(cg)
        }
        Ok(_) => Ok(expected.to_string()),
        Err(e) => {
            let _ = stop_with(&sd, &scope.unit);
            Err(refused(format!("read its ControlGroup: {e}")))
        }
    }
}

/// Gives systemd a running scope's new resources (`update`), as runc does: systemd writes
/// its properties into the cgroup again whenever it reloads, and would otherwise put the
/// create-time values back over what `update` wrote through cgroupfs.
pub fn set_resources(unit: &str, manager: Manager, r: &LinuxResources) -> Result<(), SystemdError> {
    let failed = |msg: String| SystemdError::Update { unit: unit.into(), msg };
    let sd = bus::Systemd::connect(manager).map_err(|e| failed(e.to_string()))?;
    let unified = matches!(super::Layout::detect(), super::Layout::Unified);
    let props = properties::for_update(r, unified, sd.version()).map_err(failed)?;
    if props.is_empty() {
        return Ok(());
    }
    sd.set_unit_properties(unit, &props).map_err(|e| failed(e.to_string()))
}

/// Stops the unit and waits for it; a unit systemd no longer has is already stopped.
pub fn stop(unit: &str, manager: Manager) -> Result<(), SystemdError> {
    let sd = bus::Systemd::connect(manager)
        .map_err(|e| SystemdError::Stop { unit: unit.into(), msg: e.to_string() })?;
    stop_with(&sd, unit)
}

fn stop_with(sd: &bus::Systemd, unit: &str) -> Result<(), SystemdError> {
    let r = match sd.stop_unit(unit) {
        Ok(r) if r == "done" => Ok(()),
        Ok(r) => Err(SystemdError::Stop { unit: unit.into(), msg: format!("its stop job ended {r:?}") }),
        Err(e) if e.is(bus::NO_SUCH_UNIT) => Ok(()),
        Err(e) => Err(SystemdError::Stop { unit: unit.into(), msg: e.to_string() }),
    };
    // A scope that failed stays loaded until reset, and its name taken.
    let _ = sd.reset_failed_unit(unit);
    r
}
