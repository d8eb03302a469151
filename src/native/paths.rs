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
        Ok(fd) => Ok(fd),
        Err(Errno::ENOENT) if create != Create::No => create_in_root(root, path, create),
        Err(e) => Err(e).ctx(|| format!("resolve {} in rootfs", path.display())),
    }
}

/// Walks `path` one component at a time from `root`, following symlinks as if `root` were
/// "/" (an absolute target restarts at `root`, `..` stops there), and makes what is missing:
/// a symlink to a missing target gets its target created inside the rootfs, as runc does.
fn create_in_root<Fd: AsFd>(root: &Fd, path: &Path, create: Create) -> Result<OwnedFd> {
    let what = || format!("create {} in rootfs", path.display());
    let open_root = || openat2(root, ".", how(OFlag::O_PATH | OFlag::O_DIRECTORY)).ctx(what);
    // Components still to walk, last first (so pop() gives the next one).
    let mut todo: Vec<String> = relative(path).split('/').rev().map(String::from).collect();
    let mut stack: Vec<OwnedFd> = vec![open_root()?];
    let mut links = 0;
    while let Some(comp) = todo.pop() {
        let last = todo.is_empty();
        match comp.as_str() {
            "" | "." => continue,
            ".." => {
                if stack.len() > 1 {
                    stack.pop();
                }
                continue;
            }
            _ => {}
        }
        let cur = stack.last().ok_or_else(|| super::error::Error::Msg(what()))?;
        let st = nix::sys::stat::fstatat(cur, comp.as_str(), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW);
        match st {
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFLNK => {
                links += 1;
                if links > 40 {
                    return Err(Errno::ELOOP).ctx(what);
                }
                let target = nix::fcntl::readlinkat(cur, comp.as_str()).ctx(what)?;
                let target = target.to_string_lossy().to_string();
                if target.starts_with('/') {
                    stack.truncate(1);
                }
                todo.extend(target.split('/').rev().map(String::from));
                continue;
            }
            Ok(_) => {}
            Err(Errno::ENOENT) => {
                if last && create == Create::File {
                    let f = openat(
                        cur,
                        comp.as_str(),
                        OFlag::O_CREAT
                            | OFlag::O_EXCL
                            | OFlag::O_WRONLY
                            | OFlag::O_NOFOLLOW
                            | OFlag::O_CLOEXEC,
                        Mode::from_bits_truncate(0o644),
                    );
                    match f {
                        Ok(_) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(e).ctx(what),
                    }
                } else {
                    match mkdirat(cur, comp.as_str(), Mode::from_bits_truncate(0o755)) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(e).ctx(what),
                    }
                }
            }
            Err(e) => return Err(e).ctx(what),
        }
        let next =
            openat(cur, comp.as_str(), OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())
                .ctx(what)?;
        stack.push(next);
    }
    let fd = stack.pop().ok_or_else(|| super::error::Error::Msg(what()))?;
    if stack.is_empty() {
        // The path was the root itself.
        return open_root();
    }
    Ok(fd)
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
        // A dangling symlink gets its target made inside the root, never on the host.
        symlink("/nowhere", root.join("dangling")).unwrap();
        symlink("../../../../elsewhere", root.join("dangling2")).unwrap();
        open_in_root(&rootfd, Path::new("/dangling/z"), Create::Dir).unwrap();
        open_in_root(&rootfd, Path::new("/dangling2/f"), Create::File).unwrap();
        assert!(root.join("nowhere/z").is_dir() && !Path::new("/nowhere").exists());
        assert!(root.join("elsewhere/f").is_file() && !Path::new("/elsewhere").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
