//! What the guest cannot find out or make for itself, done on the host before the VM boots:
//!
//! - A read-only rootfs is shared read-only, so the guest cannot make a mount's missing
//!   target in it (containerd's CRI binds /etc/hostname into every container, and an image
//!   rarely has that file): the targets are made here, in the rootfs, resolved inside it,
//!   as runc makes them on the host. Only those the guest would make in the rootfs itself:
//!   a target under another mount (/dev/shm under /dev's tmpfs) is that mount's.
//! - A container that joins a UTS namespace by path (a pod's, the sandbox's) takes that
//!   namespace's hostname; the guest has no such namespace to join, so the name is read here
//!   and given to the guest's spec.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::binds::Bind;
use crate::native::paths::{open_in_root, Create};

/// Makes, inside `rootfs`, each missing mount target of `spec` that is not under another
/// mount's destination: an empty file for a bind of a file, else a directory.
pub fn make_mount_targets(spec: &Spec, rootfs: &Path, binds: &[Bind]) -> Result<(), String> {
    let mounts = spec.mounts().clone().unwrap_or_default();
    let dests: Vec<&Path> = mounts.iter().map(|m| m.destination().as_path()).collect();
    let root = File::open(rootfs).map_err(|e| format!("rootfs {}: {e}", rootfs.display()))?;
    for dest in &dests {
        let under_another = dests.iter().any(|other| other != dest && dest.starts_with(other));
        if under_another || dest.parent().is_none() {
            continue;
        }
        let is_file = binds.iter().any(|b| Path::new(&b.dest) == *dest && !b.is_dir);
        let create = if is_file { Create::File } else { Create::Dir };
        open_in_root(&root.as_fd(), dest, create)
            .map_err(|e| format!("the read-only rootfs: mount target {}: {e}", dest.display()))?;
    }
    Ok(())
}

/// The hostname of the UTS namespace the spec joins by path, when it sets none itself.
pub fn joined_hostname(spec: &Spec) -> Result<Option<String>, String> {
    if spec.hostname().is_some() {
        return Ok(None);
    }
    let Some(path) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .and_then(|n| n.iter().find(|ns| ns.typ() == LinuxNamespaceType::Uts))
        .and_then(|ns| ns.path().clone())
    else {
        return Ok(None);
    };
    let what = |e: &dyn std::fmt::Display| format!("the uts namespace {}: {e}", path.display());
    let ns = File::open(&path).map_err(|e| what(&e))?;
    // setns(CLONE_NEWUTS) moves the calling thread only: a thread of its own reads the name
    // and ends, and hull's other threads never leave their namespace.
    let name = std::thread::spawn(move || -> nix::Result<String> {
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWUTS)?;
        Ok(nix::unistd::gethostname()?.to_string_lossy().into_owned())
    })
    .join()
    .map_err(|_| what(&"reading its hostname panicked"))?
    .map_err(|e| what(&e))?;
    Ok(Some(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> Spec {
        serde_json::from_value(json).unwrap()
    }

    /// A fresh directory of the test's own, removed when dropped.
    struct TempDir(std::path::PathBuf);
    impl TempDir {
        fn new(name: &str) -> TempDir {
            let p = std::env::temp_dir().join(format!("hull-host-side-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn targets_under_another_mount_are_left_to_it() {
        let dir = TempDir::new("targets");
        let s = spec(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs", "readonly": true},
            "mounts": [
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs"},
                {"destination": "/dev/shm", "type": "tmpfs", "source": "shm"},
                {"destination": "/etc/hostname", "type": "bind", "source": "/etc/hostname", "options": ["rbind"]},
                {"destination": "/data/cache", "type": "tmpfs", "source": "tmpfs"}
            ]
        }));
        let binds = vec![Bind {
            source: "/etc/hostname".into(),
            dest: "/etc/hostname".into(),
            read_only: false,
            is_dir: false,
            recursive: true,
        }];
        make_mount_targets(&s, dir.path(), &binds).unwrap();
        assert!(dir.path().join("dev").is_dir());
        assert!(!dir.path().join("dev/shm").exists());
        assert!(dir.path().join("etc/hostname").is_file());
        assert!(dir.path().join("data/cache").is_dir());
    }

    #[test]
    fn a_symlinked_target_stays_inside_the_rootfs() {
        let dir = TempDir::new("inside");
        let outside = TempDir::new("outside");
        std::os::unix::fs::symlink(outside.path(), dir.path().join("escape")).unwrap();
        let s = spec(serde_json::json!({
            "ociVersion": "1.0.2",
            "mounts": [{"destination": "/escape/x", "type": "tmpfs", "source": "tmpfs"}]
        }));
        make_mount_targets(&s, dir.path(), &[]).unwrap();
        assert!(!outside.path().join("x").exists());
    }

    #[test]
    fn no_uts_path_or_a_hostname_of_its_own_reads_nothing() {
        let own = spec(serde_json::json!({"ociVersion": "1.0.2", "hostname": "mine",
            "linux": {"namespaces": [{"type": "uts", "path": "/proc/self/ns/uts"}]}}));
        assert_eq!(joined_hostname(&own).unwrap(), None);
        let new =
            spec(serde_json::json!({"ociVersion": "1.0.2", "linux": {"namespaces": [{"type": "uts"}]}}));
        assert_eq!(joined_hostname(&new).unwrap(), None);
    }

    #[test]
    fn a_joined_uts_namespace_gives_its_hostname() {
        let joined = spec(serde_json::json!({"ociVersion": "1.0.2",
            "linux": {"namespaces": [{"type": "uts", "path": "/proc/self/ns/uts"}]}}));
        let ours = nix::unistd::gethostname().unwrap().to_string_lossy().into_owned();
        assert_eq!(joined_hostname(&joined).unwrap(), Some(ours));
        let missing = spec(serde_json::json!({"ociVersion": "1.0.2",
            "linux": {"namespaces": [{"type": "uts", "path": "/nonexistent/uts"}]}}));
        assert!(joined_hostname(&missing).unwrap_err().contains("/nonexistent/uts"));
    }
}
