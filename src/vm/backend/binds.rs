//! A VM container's bind mounts of host paths (podman `-v`, containerd's mounts, the
//! single-file mounts of /etc/hosts, /etc/resolv.conf and /etc/hostname): all served to the
//! guest through one virtio-fs share, so that a single file is shared without its directory.
//!
//! The share is a staging directory in the container's state directory whose entries (`0`,
//! `1`, ...) are bind mounts of the sources (recursive for `rbind`: a plain `bind` leaves the
//! source's submounts out, as natively), made in the VMM init's own mount namespace (the
//! host never sees them), read-only ones remounted read-only, so the VMM's file server gets
//! EROFS for a write whatever the guest asks. The agent binds each entry onto its destination
//! in the container's root ([`crate::agent::GuestBind`]).
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

impl Bind {
    /// Its entry in the staging directory (and the guest's name for it).
    fn name(index: usize) -> String {
        entry_name(index)
    }
}

/// The name of the `index`th staged bind in the binds share.
pub fn entry_name(index: usize) -> String {
    index.to_string()
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
        .map(|(i, b)| GuestBind { name: Bind::name(i), dest: b.dest.clone(), read_only: b.read_only })
        .collect()
}

/// Makes the staging directory `dir` with an entry per bind mount, bound onto its source.
/// Runs in the VMM init's own mount namespace.
pub fn stage(binds: &[Bind], dir: &Path) -> Result<(), String> {
    std::fs::create_dir(dir).map_err(|e| format!("making {}: {e}", dir.display()))?;
    for (i, b) in binds.iter().enumerate() {
        let entry = dir.join(Bind::name(i));
        let made =
            if b.is_dir { std::fs::create_dir(&entry) } else { std::fs::File::create(&entry).map(drop) };
        made.map_err(|e| format!("making {}: {e}", entry.display()))?;
        let bind = if b.recursive { MsFlags::MS_BIND | MsFlags::MS_REC } else { MsFlags::MS_BIND };
        mount(Some(&b.source), &entry, None::<&str>, bind, None::<&str>)
            .map_err(|e| format!("bind mount {}: {}: {e}", b.dest, b.source.display()))?;
        if b.read_only {
            let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
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
        assert_eq!((guest[1].name.as_str(), guest[1].dest.as_str()), ("1", "/etc/hosts"));
        std::fs::remove_dir_all(&dir).unwrap();
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
