//! The scope a container gets under systemd: its unit name and slice, from linux.cgroupsPath
//! ("slice:prefix:name", see path.rs), checked as far as the characters and length systemd
//! allows, so that a name no systemd could take fails before anything is made. The finer
//! rules (a template name where a plain one is needed...) stay systemd's: its answer is
//! passed on with the cgroupsPath it came from.

use super::SystemdError;
use crate::cgroups::path::{systemd_name, SystemdName};

/// The longest unit name systemd accepts (UNIT_NAME_MAX in its sources).
const UNIT_NAME_MAX: usize = 255;

/// A container's transient scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// "<prefix>-<name>.scope".
    pub unit: String,
    /// The slice it goes in, e.g. "system.slice".
    pub slice: String,
    /// linux.cgroupsPath as the spec gives it (empty when absent), for messages.
    pub cgroups_path: String,
    /// The container's id, for the unit's description.
    pub id: String,
    /// The system's systemd, or (rootless) the user's.
    pub manager: super::Manager,
}

impl Scope {
    /// The scope for container `id` whose spec has `cgroups_path`.
    pub fn new(cgroups_path: Option<&str>, id: &str, manager: super::Manager) -> Result<Scope, SystemdError> {
        let p = cgroups_path.unwrap_or("").trim();
        let SystemdName { slice, unit } = systemd_name(p, id).map_err(SystemdError::Config)?;
        let bad = |msg: String| SystemdError::Config(format!("linux.cgroupsPath {p:?}: {msg}"));
        if !unit.ends_with(".scope") {
            // runc makes a slice unit for kubelet's pod cgroups; a container's processes can
            // only be put in a scope.
            return Err(bad(format!(
                "{unit:?} is a slice; a container's processes go in a scope (slice:prefix:name)"
            )));
        }
        check_name(&unit).map_err(bad)?;
        check_name(&slice).map_err(bad)?;
        Ok(Scope { unit, slice, cgroups_path: p.to_string(), id: id.to_string(), manager })
    }
}

/// The characters and length systemd allows in a unit name ('@' included: whether an
/// instance name fits where it is used is systemd's call).
fn check_name(name: &str) -> Result<(), String> {
    if name.len() > UNIT_NAME_MAX {
        return Err(format!("unit name {name:?} is longer than {UNIT_NAME_MAX} bytes"));
    }
    let stem = name.rsplit_once('.').map(|(s, _)| s).unwrap_or("");
    if stem.is_empty() {
        return Err(format!("unit name {name:?} has nothing before its suffix"));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || ":-_.\\@".contains(*c))) {
        return Err(format!("unit name {name:?}: {c:?} is not allowed in a systemd unit name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Manager;
    use super::Scope;

    #[test]
    fn default_and_forms() {
        let s = Scope::new(None, "c1", Manager::System).unwrap();
        assert_eq!((s.unit.as_str(), s.slice.as_str()), ("hull-c1.scope", "system.slice"));
        let s = Scope::new(Some("machine-pod1.slice:libpod:abc"), "c1", Manager::System).unwrap();
        assert_eq!((s.unit.as_str(), s.slice.as_str()), ("libpod-abc.scope", "machine-pod1.slice"));
        assert_eq!(s.cgroups_path, "machine-pod1.slice:libpod:abc");
        let s = Scope::new(Some(":crio:x"), "c1", Manager::System).unwrap();
        assert_eq!((s.unit.as_str(), s.slice.as_str()), ("crio-x.scope", "system.slice"));
        // '@' is left to systemd (it refuses a template instance as a slice, with its reason).
        assert!(Scope::new(Some("hull@x.slice:hull:c1"), "c1", Manager::System).is_ok());
    }

    #[test]
    fn refused() {
        let err = |p: &str| Scope::new(Some(p), "c1", Manager::System).unwrap_err().to_string();
        assert!(err("system.slice:hull:a b").contains("' ' is not allowed"));
        assert!(err("bad!.slice:hull:c1").contains("'!' is not allowed"));
        assert!(err("system.slice:k:pod.slice").contains("is a slice"));
        let long = format!("system.slice:hull:{}", "x".repeat(250));
        assert!(err(&long).contains("longer than 255"));
        assert!(err("nope:p:c").contains("not a slice"));
        assert!(err("system.slice::").contains("nothing before its suffix"));
        // Every message names the cgroupsPath it is about.
        assert!(err("bad!.slice:hull:c1").contains("linux.cgroupsPath \"bad!.slice:hull:c1\""));
    }
}
