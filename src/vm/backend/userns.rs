//! The VMM of an ordinary user (rootless, issue 17): hull not root, with access to /dev/kvm and
//! nothing else. What the VMM does with privilege (its mount, ipc and uts namespaces, the
//! binds staged for their share, the jail's tmpfs, procfs and pivot_root, dropping
//! capabilities) it does as root of a user namespace of its own, born with it
//! ([`crate::native::clone_into::fork_into_namespaces`]), in which the caller's uid and gid
//! are 0: the one-line maps an ordinary user may write. The VMM's pid namespace is made by
//! that user namespace too, so its procfs may be mounted in the jail.
//!
//! The VMM is root there because the virtio-fs server (fuse-backend-rs's passthrough) acts as
//! the guest's users by switching its effective ids away from 0 and back: so the guest's ids
//! are the VMM's, and a file the caller owns on the host is root's in the guest. The spec's
//! own user namespace, which the guest makes, maps the caller's host ids: they are 0 in the
//! guest ([`guest_ids`]), and the container's root is the caller on the host as natively.
//! Other host ids cannot be named: the VMM's namespace maps no other.

use oci_spec::runtime::{LinuxIdMapping, LinuxIdMappingBuilder, Mount, Spec};

/// True when hull runs as an ordinary user: the VMM then makes its own user namespace. Root
/// (of the host, or of a user namespace such as rootless podman's) keeps the privileged path.
pub fn unprivileged() -> bool {
    !nix::unistd::geteuid().is_root()
}

/// Writes the VMM's id maps (caller's uid and gid → 0), from the parent, before the VMM
/// does anything. An ordinary user may write a gid map only once setgroups is denied in the
/// namespace (else dropping a group that denies access could grant it).
pub fn write_maps(pid: i32) -> Result<(), String> {
    let (uid, gid) = (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw());
    let write = |file: &str, text: String| {
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, text).map_err(|e| format!("the VMM's user namespace: write {path}: {e}"))
    };
    write("uid_map", format!("0 {uid} 1\n"))?;
    write("setgroups", "deny".to_string())?;
    write("gid_map", format!("0 {gid} 1\n"))
}

/// The spec the guest gets, its user namespace's maps seen from the guest: the caller's host
/// uid and gid are the guest's 0 (the VMM's user namespace maps them so). A map naming any
/// other host id is refused, saying why: the VMM could not act as that id on the host.
pub fn guest_ids(spec: &mut Spec) -> Result<(), String> {
    let (uid, gid) = (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw());
    let Some(linux) = spec.linux_mut().as_mut() else { return Ok(()) };
    if let Some(maps) = linux.uid_mappings_mut().as_mut() {
        to_guest(maps, uid, "linux.uidMappings", "uid")?;
    }
    if let Some(maps) = linux.gid_mappings_mut().as_mut() {
        to_guest(maps, gid, "linux.gidMappings", "gid")?;
    }
    Ok(())
}

/// The spec's bind of /sys (`hull spec --rootless` binds the host's, as runc's rootless spec
/// does: a user namespace without a network namespace of its own may not mount sysfs) is the
/// guest's own /sys in the guest; guest_spec leaves binds onto /sys out, and the cgroup mount
/// below it would then need /sys/fs/cgroup made in a rootfs the caller may not write. Put
/// before the first mount below /sys, so that those land on it.
pub fn guest_sys(spec: &Spec, guest: &mut Spec) {
    let is_sys_bind = |m: &Mount| {
        m.destination().to_str().map(|d| d.trim_end_matches('/')) == Some("/sys")
            && (m.typ().as_deref() == Some("bind")
                || m.options().iter().flatten().any(|o| o == "bind" || o == "rbind"))
    };
    let Some(sys) = spec.mounts().iter().flatten().find(|m| is_sys_bind(m)) else { return };
    let mut bind = sys.clone();
    bind.set_source(Some("/sys".into()));
    let mut mounts = guest.mounts().clone().unwrap_or_default();
    if mounts.iter().any(is_sys_bind) {
        return;
    }
    let at = mounts.iter().position(|m| m.destination().starts_with("/sys")).unwrap_or(mounts.len());
    mounts.insert(at, bind);
    guest.set_mounts(Some(mounts));
}

fn to_guest(maps: &mut [LinuxIdMapping], own: u32, field: &str, word: &str) -> Result<(), String> {
    for m in maps.iter_mut() {
        if m.host_id() != own || m.size() != 1 {
            return Err(format!(
                "{field} maps host {word}s other than the caller's own ({own}): a rootless VM container's VMM \
                 has only the caller's {word} (root of its user namespace) to serve the guest's files as, so \
                 the guest can map no other (a rootless VM container takes the map `hull spec --rootless` \
                 writes)"
            ));
        }
        *m = LinuxIdMappingBuilder::default()
            .container_id(m.container_id())
            .host_id(0u32)
            .size(1u32)
            .build()
            .map_err(|e| format!("{field}: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(uid_host: u32, size: u32) -> Spec {
        serde_json::from_value(json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "linux": {
                "namespaces": [{"type": "user"}],
                "uidMappings": [{"containerID": 0, "hostID": uid_host, "size": size}],
                "gidMappings": [{"containerID": 0, "hostID": nix::unistd::getegid().as_raw(), "size": 1}]
            }
        }))
        .unwrap()
    }

    #[test]
    fn the_callers_ids_are_the_guests_root() {
        let mut s = spec(nix::unistd::geteuid().as_raw(), 1);
        guest_ids(&mut s).unwrap();
        let linux = s.linux().as_ref().unwrap();
        assert_eq!(linux.uid_mappings().as_ref().unwrap()[0].host_id(), 0);
        assert_eq!(linux.gid_mappings().as_ref().unwrap()[0].host_id(), 0);
        assert_eq!(linux.uid_mappings().as_ref().unwrap()[0].container_id(), 0);
    }

    #[test]
    fn a_bind_of_sys_is_the_guests_sysfs_before_the_cgroup_mount() {
        let spec: Spec = serde_json::from_value(json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/sys", "type": "none", "source": "/sys", "options": ["rbind", "ro"]},
                {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup"}
            ]
        }))
        .unwrap();
        // What guest_spec makes of it: the bind of /sys left out.
        let mut guest = spec.clone();
        let mut kept = spec.mounts().clone().unwrap();
        kept.remove(1);
        guest.set_mounts(Some(kept));
        guest_sys(&spec, &mut guest);
        let dests: Vec<String> =
            guest.mounts().iter().flatten().map(|m| m.destination().display().to_string()).collect();
        assert_eq!(dests, ["/proc", "/sys", "/sys/fs/cgroup"]);
        assert_eq!(
            guest.mounts().as_ref().unwrap()[1].source().as_deref(),
            Some(std::path::Path::new("/sys"))
        );
    }

    #[test]
    fn other_host_ids_are_refused_naming_the_field() {
        let own = nix::unistd::geteuid().as_raw();
        let err = guest_ids(&mut spec(own.wrapping_add(100000), 1)).unwrap_err();
        assert!(err.contains("linux.uidMappings maps host uids other than the caller's own"), "{err}");
        let err = guest_ids(&mut spec(own, 65536)).unwrap_err();
        assert!(err.contains("linux.uidMappings"), "{err}");
    }
}
