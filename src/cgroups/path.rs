//! Where a container's cgroup goes: linux.cgroupsPath, absolute, relative (under hull's own
//! parent) or systemd's slice:prefix:name form, or a default.

/// The resolved path below each hierarchy's root, e.g. "/hull/c1".
pub type CgroupPath = String;

/// The parent of relative and default paths.
const HULL_PARENT: &str = "/hull";

/// Resolves the spec's cgroupsPath for container `id`.
pub fn resolve(spec_path: Option<&str>, id: &str, systemd: bool) -> Result<CgroupPath, String> {
    let p = spec_path.unwrap_or("").trim();
    if systemd || is_systemd_form(p) {
        return systemd_to_fs(p, id);
    }
    if p.is_empty() {
        return Ok(format!("{HULL_PARENT}/{id}"));
    }
    if p.split('/').any(|c| c == "..") {
        return Err(format!("linux.cgroupsPath {p:?}: \"..\" is not allowed"));
    }
    if p.starts_with('/') {
        Ok(clean(p))
    } else {
        Ok(clean(&format!("{HULL_PARENT}/{p}")))
    }
}

/// Why `exec --cgroup SUB` must be refused, or None: SUB (`PATH` or `CONTROLLERS:PATH`) is
/// joined below the container's cgroup, and a `..` anywhere in it would climb out. Both the
/// host (`hull exec`) and the guest's agent ask this.
pub fn sub_cgroup_refusal(sub: &str) -> Option<String> {
    sub.split(['/', ':'])
        .any(|c| c == "..")
        .then(|| format!("--cgroup {sub}: a sub-cgroup must stay below the container's cgroup (no '..')"))
}

fn clean(p: &str) -> String {
    let parts: Vec<&str> = p.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    format!("/{}", parts.join("/"))
}

fn is_systemd_form(p: &str) -> bool {
    let parts: Vec<&str> = p.split(':').collect();
    parts.len() == 3 && (parts[0].is_empty() || parts[0].ends_with(".slice"))
}

/// A container's systemd unit, from "slice:prefix:name" (or the default for `id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemdName {
    /// The slice the unit goes in, e.g. "system.slice" or "machine-pod1.slice".
    pub slice: String,
    /// "<prefix>-<name>.scope", "<name>.scope", or a slice when the name is one.
    pub unit: String,
}

/// Parses the systemd form; `p` empty gives the default `system.slice:hull:<id>`.
pub fn systemd_name(p: &str, id: &str) -> Result<SystemdName, String> {
    let (slice, prefix, name) = if p.is_empty() {
        ("system.slice", "hull", id)
    } else {
        let parts: Vec<&str> = p.split(':').collect();
        if parts.len() != 3 {
            return Err(format!("linux.cgroupsPath {p:?}: expected slice:prefix:name with --systemd-cgroup"));
        }
        (if parts[0].is_empty() { "system.slice" } else { parts[0] }, parts[1], parts[2])
    };
    if !slice.ends_with(".slice") || slice.contains('/') {
        return Err(format!("linux.cgroupsPath {p:?}: {slice:?} is not a slice"));
    }
    let unit = if name.ends_with(".slice") {
        name.to_string()
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    Ok(SystemdName { slice: slice.to_string(), unit })
}

/// The cgroupfs path systemd would give "slice:prefix:name": the slice expands by its dashes
/// ("a-b.slice" lives in "a.slice/a-b.slice"), the unit is "<prefix>-<name>.scope".
fn systemd_to_fs(p: &str, id: &str) -> Result<CgroupPath, String> {
    let SystemdName { slice, unit } = systemd_name(p, id)?;
    let mut dirs = Vec::new();
    if slice != "-.slice" {
        let stem = slice.trim_end_matches(".slice");
        let mut acc = String::new();
        for part in stem.split('-') {
            if part.is_empty() {
                return Err(format!("linux.cgroupsPath {p:?}: bad slice name {slice:?}"));
            }
            if !acc.is_empty() {
                acc.push('-');
            }
            acc.push_str(part);
            dirs.push(format!("{acc}.slice"));
        }
    }
    dirs.push(unit);
    Ok(format!("/{}", dirs.join("/")))
}

#[cfg(test)]
mod tests {
    use super::{resolve, sub_cgroup_refusal};
    #[test]
    fn forms() {
        assert_eq!(resolve(None, "c1", false).unwrap(), "/hull/c1");
        assert_eq!(resolve(Some("/a/b"), "c1", false).unwrap(), "/a/b");
        assert_eq!(resolve(Some("x/y"), "c1", false).unwrap(), "/hull/x/y");
        assert!(resolve(Some("/a/../b"), "c1", false).is_err());
        assert_eq!(
            resolve(Some("machine-pod1.slice:libpod:abc"), "c1", true).unwrap(),
            "/machine.slice/machine-pod1.slice/libpod-abc.scope"
        );
        assert_eq!(
            resolve(Some("system.slice:hull:c1"), "c1", false).unwrap(),
            "/system.slice/hull-c1.scope"
        );
        assert_eq!(resolve(None, "c1", true).unwrap(), "/system.slice/hull-c1.scope");
        assert_eq!(resolve(Some("-.slice:p:c"), "c1", true).unwrap(), "/p-c.scope");
        assert_eq!(resolve(Some("a-b.slice::c"), "c1", true).unwrap(), "/a.slice/a-b.slice/c.scope");
        assert!(resolve(Some("a--b.slice:p:c"), "c1", true).is_err());
        assert!(resolve(Some("a/b.slice:p:c"), "c1", true).is_err());
        assert!(resolve(Some("a:b"), "c1", true).is_err());
    }

    #[test]
    fn systemd_names() {
        use super::{systemd_name, SystemdName};
        let n = |slice: &str, unit: &str| SystemdName { slice: slice.into(), unit: unit.into() };
        assert_eq!(systemd_name("", "c1").unwrap(), n("system.slice", "hull-c1.scope"));
        assert_eq!(systemd_name(":crio:x", "c1").unwrap(), n("system.slice", "crio-x.scope"));
        assert_eq!(systemd_name("k.slice:p:pod.slice", "c1").unwrap(), n("k.slice", "pod.slice"));
    }

    #[test]
    fn a_sub_cgroup_cannot_climb_out() {
        for bad in ["..", "../escape", "a/../../b", "cpu:..", "cpu,memory:x/..", "..:x"] {
            assert!(sub_cgroup_refusal(bad).is_some_and(|m| m.contains(bad)), "{bad}");
        }
        for good in ["x", "a/b", "cpu:x", "memory,pids:a/b", "a..b", "..x"] {
            assert_eq!(sub_cgroup_refusal(good), None, "{good}");
        }
    }
}
