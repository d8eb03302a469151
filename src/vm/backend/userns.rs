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
//!
//! A spec that maps subordinate ranges too (`/etc/subuid`, as natively: `hull spec
//! --rootless` plus a range) gets them in the VMM's namespace as well, each at its own host
//! ids ([`vmm_maps`]), written through newuidmap/newgidmap as natively: so the guest names
//! them by their host ids, its file server acts as them, and what the container's uid 1 writes
//! belongs on the host to the subordinate id the spec maps it to.

use oci_spec::runtime::{LinuxIdMapping, LinuxIdMappingBuilder, Mount, Spec};

/// True when hull runs as an ordinary user: the VMM then makes its own user namespace. Root
/// (of the host, or of a user namespace such as rootless podman's) keeps the privileged path.
pub fn unprivileged() -> bool {
    !nix::unistd::geteuid().is_root()
}

/// Writes the VMM's id maps ([`vmm_maps`]), from the parent, before the VMM does anything:
/// the one-line maps directly (an ordinary user may write a gid map only once setgroups is
/// denied in the namespace, else dropping a group that denies access could grant it),
/// subordinate ranges through newuidmap/newgidmap.
pub fn write_maps(pid: i32, spec: &Spec) -> Result<(), String> {
    let (uids, gids) = vmm_maps(spec)?;
    crate::native::idmap::write_maps(pid, &uids, &gids).map_err(|e| format!("the VMM's user namespace: {e}"))
}

/// The VMM's user namespace's maps: the caller's uid and gid are its 0, and each range of the
/// spec's maps that is not the caller's own id (a subordinate range) is mapped to the same ids
/// there. A range that holds the caller's id among others is refused: the caller's id is the
/// VMM's 0, not an id of its own.
pub fn vmm_maps(spec: &Spec) -> Result<(Vec<LinuxIdMapping>, Vec<LinuxIdMapping>), String> {
    let (uid, gid) = (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw());
    let linux = spec.linux().as_ref();
    let uids = linux.and_then(|l| l.uid_mappings().clone()).unwrap_or_default();
    let gids = linux.and_then(|l| l.gid_mappings().clone()).unwrap_or_default();
    Ok((vmm_map(&uids, uid, "linux.uidMappings", "uid")?, vmm_map(&gids, gid, "linux.gidMappings", "gid")?))
}

fn vmm_map(
    maps: &[LinuxIdMapping],
    own: u32,
    field: &str,
    word: &str,
) -> Result<Vec<LinuxIdMapping>, String> {
    let mut out = vec![mapping(0, own, 1, field)?];
    for m in maps {
        if is_own(m, own) {
            continue;
        }
        check_range(m, own, field, word)?;
        out.push(mapping(m.host_id(), m.host_id(), m.size(), field)?);
    }
    Ok(out)
}

fn is_own(m: &LinuxIdMapping, own: u32) -> bool {
    m.host_id() == own && m.size() == 1
}

/// A range other than the caller's own id: neither host id 0 (the VMM's namespace has its 0
/// already) nor a range that holds the caller's id.
fn check_range(m: &LinuxIdMapping, own: u32, field: &str, word: &str) -> Result<(), String> {
    let end = u64::from(m.host_id()) + u64::from(m.size());
    if m.host_id() == 0 || (u64::from(m.host_id()) <= u64::from(own) && u64::from(own) < end) {
        return Err(format!(
            "{field}: the range of host {word}s {}-{} holds {}: a rootless VM container's VMM is the caller's \
             {word} ({own}) as root of its own user namespace, so map the caller's {word} alone (size 1) and \
             subordinate ranges apart",
            m.host_id(),
            end.saturating_sub(1),
            if m.host_id() == 0 { format!("host {word} 0") } else { format!("the caller's own ({own})") }
        ));
    }
    Ok(())
}

fn mapping(container: u32, host: u32, size: u32, field: &str) -> Result<LinuxIdMapping, String> {
    LinuxIdMappingBuilder::default()
        .container_id(container)
        .host_id(host)
        .size(size)
        .build()
        .map_err(|e| format!("{field}: {e}"))
}

/// The spec the guest gets, its user namespace's maps seen from the guest, whose ids are the
/// VMM's ([`vmm_maps`]): the caller's host uid and gid are the guest's 0, a subordinate range
/// keeps its ids. What the VMM's namespace could not map is refused, saying why.
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
        if is_own(m, own) {
            *m = mapping(m.container_id(), 0, 1, field)?;
        } else {
            check_range(m, own, field, word)?;
        }
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
    fn a_subordinate_range_keeps_its_host_ids_in_the_vmm_and_the_guest() {
        let own = nix::unistd::geteuid().as_raw();
        let mut s = spec(own, 1);
        let linux = s.linux_mut().as_mut().unwrap();
        let mut uids = linux.uid_mappings().clone().unwrap();
        uids.push(mapping(1, 400000, 65536, "t").unwrap());
        linux.set_uid_mappings(Some(uids));
        let (vmm_uids, vmm_gids) = vmm_maps(&s).unwrap();
        let triples = |m: &[LinuxIdMapping]| {
            m.iter().map(|m| (m.container_id(), m.host_id(), m.size())).collect::<Vec<_>>()
        };
        assert_eq!(triples(&vmm_uids), [(0, own, 1), (400000, 400000, 65536)]);
        assert_eq!(triples(&vmm_gids), [(0, nix::unistd::getegid().as_raw(), 1)]);
        guest_ids(&mut s).unwrap();
        let linux = s.linux().as_ref().unwrap();
        assert_eq!(triples(linux.uid_mappings().as_ref().unwrap()), [(0, 0, 1), (1, 400000, 65536)]);
    }

    #[test]
    fn a_range_holding_the_callers_id_or_host_root_is_refused_naming_the_field() {
        let own = nix::unistd::geteuid().as_raw();
        let err = guest_ids(&mut spec(own, 65536)).unwrap_err();
        assert!(err.contains("linux.uidMappings: the range of host uids"), "{err}");
        // As root (the tests' usual user) the range starts at host 0, which is said first.
        assert!(err.contains(&format!("holds the caller's own ({own})")) || own == 0, "{err}");
        let err = vmm_maps(&spec(0, 10)).unwrap_err();
        assert!(err.contains("holds host uid 0") || own == 0, "{err}");
    }
}
