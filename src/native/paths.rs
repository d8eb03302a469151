//! Resolving paths inside the container's rootfs without ever leaving it.
//!
//! A mount destination such as `/data` may be a symlink in the image pointing at `/etc` or
//! `../../../host`. Every lookup here goes through openat2(RESOLVE_IN_ROOT), which treats the
//! rootfs fd as "/" for absolute symlinks and `..`, so a hostile image cannot make hull mount
//! on the host (CVE-2021-30465 and friends). Callers mount on the returned O_PATH fd through
//! /proc/self/fd, so nothing can be swapped between the check and the use.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Component, Path};

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{mkdirat, Mode};

use super::error::{Context, Result};

/// What to do when the path does not exist yet.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Create {
    No,
    /// mkdir -p.
    Dir,
    /// mkdir -p of the parent, then an empty file.
    File,
}

fn how(flags: OFlag) -> OpenHow {
    OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

/// The path relative to the root, as openat2 wants it ("." for the root itself).
fn relative(path: &Path) -> String {
    let parts: Vec<&str> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => s.to_str(),
            Component::ParentDir => Some(".."),
            _ => None,
        })
        .collect();
    if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    }
}

/// Opens `path` inside `root` as an O_PATH fd, creating it first when asked.
pub fn open_in_root<Fd: AsFd>(root: &Fd, path: &Path, create: Create) -> Result<OwnedFd> {
    let rel = relative(path);
    match openat2(root, rel.as_str(), how(OFlag::O_PATH)) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) if create != Create::No => {}
        Err(e) => return Err(e).ctx(|| format!("resolve {} in rootfs", path.display())),
    }
    let comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    let mut parent: Option<OwnedFd> = None;
    for i in 0..comps.len() {
        let prefix = comps[..=i].join("/");
        let last = i + 1 == comps.len();
        let opened = openat2(root, prefix.as_str(), how(OFlag::O_PATH));
        let fd = match opened {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                let name = comps[i];
                let dir_fd = match &parent {
                    Some(p) => p.as_raw_fd(),
                    None => root.as_fd().as_raw_fd(),
                };
                // SAFETY: dir_fd is a live fd owned by `parent` or `root` for this whole call.
                let dir = unsafe { std::os::fd::BorrowedFd::borrow_raw(dir_fd) };
                if last && create == Create::File {
                    let f = openat(
                        dir,
                        name,
                        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                        Mode::from_bits_truncate(0o644),
                    );
                    match f {
                        Ok(_) | Err(Errno::EEXIST) => {}
                        Err(e) => {
                            return Err(e).ctx(|| format!("create {} in rootfs", path.display()))
                        }
                    }
                } else {
                    match mkdirat(dir, name, Mode::from_bits_truncate(0o755)) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => {
                            return Err(e).ctx(|| format!("mkdir {} in rootfs", path.display()))
                        }
                    }
                }
                openat2(root, prefix.as_str(), how(OFlag::O_PATH))
                    .ctx(|| format!("resolve {} in rootfs (after creating it)", path.display()))?
            }
            Err(e) => return Err(e).ctx(|| format!("resolve {} in rootfs", path.display())),
        };
        parent = Some(fd);
    }
    match parent {
        Some(fd) => Ok(fd),
        None => openat2(root, ".", how(OFlag::O_PATH)).ctx(|| "open rootfs".to_string()),
    }
}

/// The path through which the kernel reaches what `fd` refers to, for mount(2) and friends.
pub fn proc_fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::fcntl::open;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_stay_inside_root() {
        let dir = std::env::temp_dir().join(format!("hull-paths-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("outside")).unwrap();
        std::fs::create_dir_all(dir.join("outside")).unwrap();
        symlink("/outside", root.join("abs")).unwrap();
        symlink("../../outside", root.join("rel")).unwrap();
        let rootfd = open(&root, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        open_in_root(&rootfd, Path::new("/abs/x"), Create::Dir).unwrap();
        open_in_root(&rootfd, Path::new("/rel/y"), Create::Dir).unwrap();
        // Both were made inside the root, never next to it.
        assert!(root.join("outside/x").is_dir());
        assert!(root.join("outside/y").is_dir());
        assert!(!dir.join("outside/x").exists() && !dir.join("outside/y").exists());
        open_in_root(&rootfd, Path::new("/etc/f"), Create::File).unwrap();
        assert!(root.join("etc/f").is_file());
        // A dangling symlink is refused, not followed out of the root.
        symlink("/nowhere", root.join("dangling")).unwrap();
        assert!(open_in_root(&rootfd, Path::new("/dangling/z"), Create::Dir).is_err());
        assert!(!Path::new("/nowhere").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
