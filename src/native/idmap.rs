//! uid/gid maps for a new user namespace, written by the parent (which holds the privilege).

use oci_spec::runtime::{LinuxIdMapping, Spec};

use super::error::{Context, Result};

fn render(maps: &[LinuxIdMapping]) -> String {
    maps.iter().map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size())).collect()
}

/// Writes /proc/<pid>/uid_map and gid_map from the spec's mappings.
pub fn write(pid: i32, spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    let uids = linux.and_then(|l| l.uid_mappings().clone()).unwrap_or_default();
    let gids = linux.and_then(|l| l.gid_mappings().clone()).unwrap_or_default();
    let uid_path = format!("/proc/{pid}/uid_map");
    std::fs::write(&uid_path, render(&uids)).ctx(|| format!("write {uid_path}"))?;
    let gid_path = format!("/proc/{pid}/gid_map");
    std::fs::write(&gid_path, render(&gids)).ctx(|| format!("write {gid_path}"))?;
    Ok(())
}
