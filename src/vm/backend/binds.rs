//! A VM container's bind mounts of host paths (podman `-v`, containerd's mounts, the
//! single-file mounts of /etc/hosts, /etc/resolv.conf and /etc/hostname): all served to the
//! guest through one virtio-fs share, so that a single file is shared without its directory.
//!
//! The share is a staging directory in the container's state directory with a directory per
//! bind (`0`, `1`, ..., in the spec's order) holding one entry named after the source's last
//! component (`0/hosts`, `1/data`; [`entry_name`]). Each entry is a bind mount of its source
//! (recursive for `rbind`: a plain `bind` leaves the source's submounts out, as natively),
//! made in the VMM init's own mount namespace (the host never sees them), read-only ones
//! remounted read-only, so the VMM's file server gets EROFS for a write whatever the guest
//! asks. The agent binds each entry onto its destination in the container's root
//! ([`crate::agent::GuestBind`]).
//!
//! The entry keeps the source's name because the guest sees all binds through the one share:
//! in the guest's mountinfo a bind's root is its entry's path in the share (`/0/hosts`), and
//! tools that match a bind to its mount do so by the source's base name, as runc's roots (the
//! source's path within its filesystem) allow. The index directory keeps two sources with the
//! same name apart.
//!
//! Destinations under /proc, /sys and /dev are the guest's own and are not shared: the host's
//! never reach the guest.

use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use oci_spec::runtime::Spec;

use crate::agent::GuestBind;

/// One bind mount, as the host serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub source: PathBuf,
    pub dest: String,
    pub read_only: bool,
    pub is_dir: bool,
    /// `rbind`: the source's submounts come along; a plain `bind` shows what is under the
    /// source's own mount only, as natively.
    pub recursive: bool,
}

/// The name of an entry whose source has no usable last component (`/`, a path ending in
/// `..`, a name that is not UTF-8).
const UNNAMED: &str = "root";

/// The path of the `index`th staged bind, from `source`, in the binds share: `<index>/<name>`,
/// the name being the source's last component. The staging, the agent's list and the guest
/// spec all take it from here, so that they name the same entry.
pub fn entry_name(index: usize, source: &Path) -> String {
    let name = source
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty() && *n != "." && *n != ".." && !n.contains('/'))
        .unwrap_or(UNNAMED);
    format!("{index}/{name}")
}

/// What becomes of a mount: None, not a bind (the guest makes it); Some(true), a bind of a
/// host path, staged in the binds share; Some(false), a bind left out (onto the guest's own
/// /proc, /sys or /dev, or without a source).
pub fn staged(m: &oci_spec::runtime::Mount) -> Option<bool> {
    let options = m.options().clone().unwrap_or_default();
    let is_bind = m.typ().as_deref() == Some("bind") || options.iter().any(|o| o == "bind" || o == "rbind");
    if !is_bind {
        return None;
    }
    Some(!guest_owned(&m.destination().display().to_string()) && m.source().is_some())
}

/// Refuses an idmapped mount (`idmap`, `ridmap`, or a mount's own uidMappings/gidMappings),
/// naming it: the binds share serves the host's owners as they are, and nothing idmaps a bind
/// on its way into the guest yet. Taken as a plain bind, the mount would show the container
/// other owners than the config asked for, and let it write files as other host ids.
pub fn refuse_idmapped(spec: &Spec) -> Result<(), String> {
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let options = m.options().as_deref().unwrap_or_default();
        let idmap = options.iter().find(|o| *o == "idmap" || *o == "ridmap");
        let maps = m.uid_mappings().as_ref().is_some_and(|v| !v.is_empty())
            || m.gid_mappings().as_ref().is_some_and(|v| !v.is_empty());
        let what = match (idmap, maps) {
            (Some(o), _) => format!("option {o}"),
            (None, true) => "uidMappings/gidMappings".to_string(),
            (None, false) => continue,
        };
        return Err(format!(
            "mounts[{i}] (on {}): {what}: idmapped mounts are not supported by the vm backend yet (the native \
             backend makes them)",
            m.destination().display()
        ));
    }
    Ok(())
}

/// The spec's bind mounts of host paths; an error names a source that is not there.
pub fn from_spec(spec: &Spec, bundle_dir: &Path) -> Result<Vec<Bind>, String> {
    let mut binds = Vec::new();
    for m in spec.mounts().iter().flatten() {
        if staged(m) != Some(true) {
            continue;
        }
        let options = m.options().clone().unwrap_or_default();
        let dest = m.destination().display().to_string();
        let Some(source) = m.source() else { continue };
        // runc resolves a relative source against the bundle.
        let source = if source.is_absolute() { source.clone() } else { bundle_dir.join(source) };
        let meta = std::fs::metadata(&source)
            .map_err(|e| format!("bind mount {dest}: source {}: {e}", source.display()))?;
        binds.push(Bind {
            source,
            dest,
            read_only: options.iter().any(|o| o == "ro"),
            is_dir: meta.is_dir(),
            recursive: options.iter().any(|o| o == "rbind"),
        });
    }
    Ok(binds)
}

/// /proc, /sys, /dev and below: the guest's kernel provides them.
fn guest_owned(dest: &str) -> bool {
    let dest = dest.trim_end_matches('/');
    ["/proc", "/sys", "/dev"].iter().any(|g| dest == *g || dest.starts_with(&format!("{g}/")))
}

/// What the agent is told about them.
pub fn for_guest(binds: &[Bind]) -> Vec<GuestBind> {
    binds
        .iter()
        .enumerate()
        .map(|(i, b)| GuestBind {
            name: entry_name(i, &b.source),
            dest: b.dest.clone(),
            read_only: b.read_only,
        })
        .collect()
}

/// Makes the staging directory `dir` with an entry per bind mount ([`entry_name`]), bound
/// onto its source. Runs in the VMM init's own mount namespace.
/// In a user namespace (`in_userns`: the rootless VMM's) a read-only remount must keep the
/// flags the source's mount has that the namespace cannot clear (nosuid, nodev, noexec...:
/// the kernel locks them, and refuses a remount without them with EPERM), as runc does.
pub fn stage(binds: &[Bind], dir: &Path, in_userns: bool) -> Result<(), String> {
    std::fs::create_dir(dir).map_err(|e| format!("making {}: {e}", dir.display()))?;
    for (i, b) in binds.iter().enumerate() {
        let entry = dir.join(entry_name(i, &b.source));
        if let Some(index_dir) = entry.parent() {
            std::fs::create_dir(index_dir).map_err(|e| format!("making {}: {e}", index_dir.display()))?;
        }
        let made =
            if b.is_dir { std::fs::create_dir(&entry) } else { std::fs::File::create(&entry).map(drop) };
        made.map_err(|e| format!("making {}: {e}", entry.display()))?;
        let bind = if b.recursive { MsFlags::MS_BIND | MsFlags::MS_REC } else { MsFlags::MS_BIND };
        mount(Some(&b.source), &entry, None::<&str>, bind, None::<&str>)
            .map_err(|e| format!("bind mount {}: {}: {e}", b.dest, b.source.display()))?;
        if b.read_only {
            // The native backend's list (nosuid, nodev, noexec, the atime flags; ro too, which
            // this remount sets anyway).
            let locked = match (in_userns, entry.to_str()) {
                (true, Some(p)) => crate::native::mounts::locked_flags(p),
                _ => MsFlags::empty(),
            };
            let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | locked;
            mount(None::<&str>, &entry, None::<&str>, flags, None::<&str>)
                .map_err(|e| format!("bind mount {}: read-only: {e}", b.dest))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn binds_of_host_paths_but_not_the_guests_own() {
        let dir = std::env::temp_dir().join(format!("hull-vm-binds-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("hosts"), "127.0.0.1 localhost\n").unwrap();
        let spec: Spec = serde_json::from_value(json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev/shm", "type": "bind", "source": "/dev/shm", "options": ["rbind"]},
                {"destination": "/sys/fs/cgroup", "type": "bind", "source": "/sys/fs/cgroup"},
                {"destination": "/data", "type": "none", "source": "data", "options": ["rbind", "ro"]},
                {"destination": "/etc/hosts", "type": "bind", "source": dir.join("hosts")}
            ]
        }))
        .unwrap();
        let binds = from_spec(&spec, &dir).unwrap();
        assert_eq!(
            binds,
            [
                Bind {
                    source: dir.join("data"),
                    dest: "/data".into(),
                    read_only: true,
                    is_dir: true,
                    recursive: true
                },
                Bind {
                    source: dir.join("hosts"),
                    dest: "/etc/hosts".into(),
                    read_only: false,
                    is_dir: false,
                    recursive: false
                },
            ]
        );
        let guest = for_guest(&binds);
        let names: Vec<(&str, &str)> = guest.iter().map(|g| (g.name.as_str(), g.dest.as_str())).collect();
        assert_eq!(names, [("0/data", "/data"), ("1/hosts", "/etc/hosts")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_entry_is_its_index_then_the_sources_name() {
        assert_eq!(entry_name(9, Path::new("/etc/hosts")), "9/hosts");
        assert_eq!(entry_name(0, Path::new("/srv/data/")), "0/data");
        assert_eq!(entry_name(1, Path::new("/srv/data/.")), "1/data");
        assert_eq!(entry_name(2, Path::new("/bundle/vol")), "2/vol");
        // No usable last component: a fixed name, never `/`, `.` or `..`.
        assert_eq!(entry_name(3, Path::new("/")), "3/root");
        assert_eq!(entry_name(4, Path::new("/srv/..")), "4/root");
        assert_eq!(entry_name(5, Path::new("")), "5/root");
        use std::os::unix::ffi::OsStrExt;
        let not_utf8 = Path::new(std::ffi::OsStr::from_bytes(b"/srv/\xff"));
        assert_eq!(entry_name(6, not_utf8), "6/root");
    }

    #[test]
    fn idmapped_mounts_are_refused_by_name() {
        let spec = |m: serde_json::Value| -> Spec {
            serde_json::from_value(json!({"ociVersion": "1.2.0", "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"}, m
            ]}))
            .unwrap()
        };
        let maps = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        for (m, needle) in [
            (
                json!({"destination": "/d", "type": "bind", "source": "/srv", "options": ["rbind", "idmap"]}),
                "idmap",
            ),
            (json!({"destination": "/d", "type": "bind", "source": "/srv", "options": ["ridmap"]}), "ridmap"),
            (
                json!({"destination": "/d", "type": "bind", "source": "/srv", "uidMappings": maps, "gidMappings": maps}),
                "uidMappings",
            ),
        ] {
            let err = refuse_idmapped(&spec(m)).unwrap_err();
            for n in ["mounts[1]", "/d", needle, "not supported by the vm backend"] {
                assert!(err.contains(n), "{n} missing from {err}");
            }
        }
        let plain = json!({"destination": "/d", "type": "bind", "source": "/srv", "options": ["rbind"]});
        assert_eq!(refuse_idmapped(&spec(plain)), Ok(()));
    }

    #[test]
    fn a_missing_source_is_named() {
        let spec: Spec = serde_json::from_value(json!({
            "ociVersion": "1.0.2",
            "mounts": [{"destination": "/x", "type": "bind", "source": "/nonexistent/src"}]
        }))
        .unwrap();
        let err = from_spec(&spec, Path::new("/")).unwrap_err();
        assert!(err.contains("/x") && err.contains("/nonexistent/src"), "{err}");
    }
}
