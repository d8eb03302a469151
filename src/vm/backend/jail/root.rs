//! The VMM's root: a small tmpfs, read-only once made, holding each path the VMM still opens
//! after the jail, each at its own path (the passthrough file system reopens a share's root by
//! the path it was built with; the vsock reaches the agent's listener by path), bound from the
//! host; and /proc, a procfs mounted read-only (of the VMM's own pid namespace when the spec
//! asks for one: `super::super::pidns`): the passthrough file system reopens the files
//! it serves and reads their xattrs through `/proc/self/fd` (the reopened files are on the
//! shares' mounts, so they stay writable), and podman's `top` reads the container's processes,
//! and /proc/stat, through the init's (the VMM's) mount namespace. Read-only, so no sysctl,
//! /proc/sysrq-trigger or other process's /proc/PID/mem can be written from the jail (a
//! `subset=pid` procfs would hide more, but psgo needs /proc/stat). Nothing else of the host:
//! no /sys, /dev, no hull binary, no other container.
//!
//! Entered with pivot_root in the VMM's own mount namespace; the old root is detached, so
//! nothing outside these paths can be named again. The tmpfs is mounted on an empty directory
//! in the container's state directory, which is all the host sees of it.

use std::path::{Component, Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// The paths to keep, sorted, without those below another (a bind of a directory brings
/// everything below it).
fn outermost(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut sorted: Vec<PathBuf> = paths.to_vec();
    sorted.sort();
    sorted.dedup();
    let mut kept: Vec<PathBuf> = Vec::new();
    for p in sorted {
        if !kept.iter().any(|k| p.starts_with(k)) {
            kept.push(p);
        }
    }
    kept
}

/// `path` inside `root`: absolute, no `..` (a path to keep names what the VMM uses, never
/// something to climb out of).
fn inside(root: &Path, path: &Path) -> Result<PathBuf, String> {
    let mut out = root.to_path_buf();
    if !path.is_absolute() {
        return Err(format!("{}: not an absolute path", path.display()));
    }
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(format!("{}: a path with '..'", path.display()))
            }
        }
    }
    Ok(out)
}

/// Makes the root in `dir` (created here, empty on the host) with `paths` and enters it.
pub fn enter(dir: &Path, paths: &[PathBuf]) -> Result<(), String> {
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("making {}: {e}", dir.display())),
    }
    let nodev = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("tmpfs"), dir, Some("tmpfs"), nodev, Some("mode=0755,size=1m"))
        .map_err(|e| format!("mounting a tmpfs on {}: {e}", dir.display()))?;
    mount_proc(dir)?;
    for path in outermost(paths) {
        bind(&path, &inside(dir, &path)?)?;
    }
    let ro = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | nodev;
    mount(None::<&str>, dir, None::<&str>, ro, None::<&str>)
        .map_err(|e| format!("making the VMM's root read-only: {e}"))?;
    pivot(dir)
}

/// A read-only procfs at `dir`/proc.
fn mount_proc(dir: &Path) -> Result<(), String> {
    let target = dir.join("proc");
    std::fs::create_dir(&target).map_err(|e| format!("making {}: {e}", target.display()))?;
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("proc"), &target, Some("proc"), flags, None::<&str>)
        .map_err(|e| format!("mounting a read-only procfs in the VMM's root: {e}"))
}

/// Binds `source` (a directory with what is mounted below it, or a file, a socket or a fifo)
/// onto a mount point made for it at `target`.
fn bind(source: &Path, target: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(source).map_err(|e| format!("{}: {e}", source.display()))?;
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("making {}: {e}", parent.display()))?;
    }
    let made =
        if meta.is_dir() { std::fs::create_dir(target) } else { std::fs::File::create(target).map(drop) };
    made.map_err(|e| format!("making {}: {e}", target.display()))?;
    mount(Some(source), target, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
        .map_err(|e| format!("binding {} into the VMM's root: {e}", source.display()))
}

/// pivot_root into `dir` and detach the old root (runc's way, with no directory for it).
fn pivot(dir: &Path) -> Result<(), String> {
    use nix::fcntl::{open, OFlag};
    use nix::sys::stat::Mode;
    let flags = OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC;
    let old_root = open("/", flags, Mode::empty()).map_err(|e| format!("opening /: {e}"))?;
    let new_root = open(dir, flags, Mode::empty()).map_err(|e| format!("opening {}: {e}", dir.display()))?;
    nix::unistd::fchdir(&new_root).map_err(|e| format!("chdir {}: {e}", dir.display()))?;
    nix::unistd::pivot_root(".", ".").map_err(|e| format!("pivot_root into {}: {e}", dir.display()))?;
    // The old root is stacked on the new one; from inside it, detach it without telling any
    // other namespace.
    nix::unistd::fchdir(&old_root).map_err(|e| format!("chdir to the old root: {e}"))?;
    mount(None::<&str>, ".", None::<&str>, MsFlags::MS_SLAVE | MsFlags::MS_REC, None::<&str>)
        .map_err(|e| format!("making the old root a slave: {e}"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| format!("detaching the old root: {e}"))?;
    nix::unistd::chdir("/").map_err(|e| format!("chdir /: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_below_another_come_with_it() {
        let p = |s: &str| PathBuf::from(s);
        let kept = outermost(&[p("/run/hull/c/binds"), p("/srv/rootfs"), p("/run/hull/c"), p("/srv/rootfs")]);
        assert_eq!(kept, [p("/run/hull/c"), p("/srv/rootfs")]);
        // A sibling whose name starts the same is not below.
        assert_eq!(outermost(&[p("/a/b"), p("/a/bc")]), [p("/a/b"), p("/a/bc")]);
    }

    #[test]
    fn paths_land_inside_the_root_or_are_refused() {
        let root = Path::new("/j");
        assert_eq!(inside(root, Path::new("/run/./x")).unwrap(), PathBuf::from("/j/run/x"));
        assert!(inside(root, Path::new("/run/../etc")).unwrap_err().contains(".."));
        assert!(inside(root, Path::new("run")).unwrap_err().contains("absolute"));
    }
}
