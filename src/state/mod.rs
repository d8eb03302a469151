//! The state store: `<root>/<id>/state.json`, one directory per container.
//!
//! What is stored is what hull learned when it made the container (init pid and its start
//! time, bundle, annotations). The status is never stored: it is derived every time from the
//! live process, so a crash or a recycled pid cannot make a container look other than it is.

mod proc;
mod store;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::container::Backend;

pub use proc::ProcStat;
pub use store::{make_exec_fifo, ContainerDir, Store, StoreError, EXEC_FIFO};

/// How far `create`/`start` got. Together with the live process this gives the status.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// `create` has started but the init is not set up yet.
    Creating,
    /// The init waits on the exec fifo.
    Created,
    /// `start` has released the init.
    Started,
}

/// The OCI status, as `state` reports it.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What hull keeps about one container. (PartialEq: the state fuzz target checks that what is
/// read is what is written.)
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct State {
    pub id: String,
    /// Where the container runs, chosen at create; every later command acts through it.
    /// State files from before hull had backends have none: native.
    #[serde(default)]
    pub backend: Backend,
    pub phase: Phase,
    /// Host pid of the container's init; 0 before it exists.
    pub pid: i32,
    /// The init's start time (clock ticks since boot, /proc/<pid>/stat field 22): a pid whose
    /// start time differs is another process.
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339 creation time.
    pub created: String,
    pub owner: String,
    /// The config the container was created from: poststart/poststop hooks and `exec` need
    /// it after create, when the bundle may have changed or be gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<oci_spec::runtime::Spec>,
    /// The container's cgroup, below each hierarchy's root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// The topmost cgroup directory hull created for it, removed with it when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_created_from: Option<String>,
    /// The transient scope systemd made for the container (`--systemd-cgroup` with systemd as
    /// init), stopped with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd_unit: Option<String>,
    /// Whose systemd that scope is: the system's, or (rootless) the user's own.
    #[serde(default, skip_serializing_if = "crate::cgroups::systemd::Manager::is_system")]
    pub systemd_manager: crate::cgroups::systemd::Manager,
    /// A VM container's: the VMM's vsock socket, through which `exec` reaches the guest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_socket: Option<PathBuf>,
    /// For a container without a mount namespace of its own: the bind of its rootfs that
    /// `create` made in the host's mount table, removed with everything below it at delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_root: Option<HostMount>,
}

/// A mount hull made in the host's mount namespace, identified as /proc/self/mountinfo shows
/// it: ids are reused once a mount is gone, so the parent and the mount point must match too.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct HostMount {
    pub mount_id: u64,
    pub parent_id: u64,
    pub path: PathBuf,
}

/// The annotation `state` shows the container's backend in (the one that chooses it in
/// config.json).
pub const BACKEND_ANNOTATION: &str = "hull.backend";

/// The OCI state document that `state` prints.
#[derive(Serialize, Debug)]
pub struct OciState {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub status: Status,
    pub pid: i32,
    pub bundle: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl State {
    /// The status, derived from the init process as it is now.
    pub fn status(&self) -> Status {
        if self.pid <= 0 {
            return match self.phase {
                Phase::Creating => Status::Creating,
                _ => Status::Stopped,
            };
        }
        if !self.init_alive() {
            return Status::Stopped;
        }
        // A frozen cgroup is "paused" whether or not `start` has run (runc's view too): a
        // created container can be paused, and `resume` brings it back to "created".
        match self.phase {
            Phase::Creating => Status::Creating,
            Phase::Created | Phase::Started if self.frozen() => Status::Paused,
            Phase::Created => Status::Created,
            Phase::Started => Status::Running,
        }
    }

    /// True when the stored pid is still the same, living (not zombie) process.
    pub fn init_alive(&self) -> bool {
        match ProcStat::read(self.pid) {
            Ok(st) => st.start_time == self.pid_start && !st.is_dead(),
            Err(_) => false,
        }
    }

    /// True when the container's cgroup is frozen (`pause`).
    pub fn frozen(&self) -> bool {
        match &self.cgroup {
            Some(p) => crate::cgroups::Cgroup::open(p).map(|c| c.is_frozen()).unwrap_or(false),
            None => false,
        }
    }

    pub fn hooks(&self) -> Option<&oci_spec::runtime::Hooks> {
        self.config.as_ref().and_then(|c| c.hooks().as_ref())
    }

    pub fn oci(&self) -> OciState {
        self.oci_with(self.status())
    }

    /// The state document as hooks get it, with the status the lifecycle point implies.
    pub fn oci_as(&self, status: Status) -> serde_json::Value {
        serde_json::to_value(self.oci_with(status)).unwrap_or(serde_json::Value::Null)
    }

    fn oci_with(&self, status: Status) -> OciState {
        OciState {
            oci_version: crate::spec::OCI_VERSION.to_string(),
            id: self.id.clone(),
            status,
            pid: if status == Status::Stopped { 0 } else { self.pid },
            bundle: self.bundle.display().to_string(),
            annotations: self.annotations_with_backend(),
        }
    }

    /// The config's annotations, with `hull.backend` saying which backend the container
    /// really has (whatever chose it: a flag, the program name, the config file).
    fn annotations_with_backend(&self) -> BTreeMap<String, String> {
        let mut a = self.annotations.clone();
        a.insert(BACKEND_ANNOTATION.to_string(), self.backend.name().to_string());
        a
    }
}
