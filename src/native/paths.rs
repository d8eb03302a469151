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

/// How many times a lookup is tried when the kernel answers EAGAIN.
const EAGAIN_TRIES: u32 = 128;

/// openat2 with RESOLVE_IN_ROOT, tried again on EAGAIN. The kernel answers EAGAIN when a
/// mount or a rename anywhere on the system raced with a lookup that goes through `..` or a
/// symlink (it cannot then prove the walk stayed inside the root); on a node starting many
/// containers that is frequent, and the answer is to look up again (libpathrs does the same).
fn openat2_in_root<Fd: AsFd>(root: &Fd, rel: &str, flags: OFlag) -> nix::Result<OwnedFd> {
    let mut tries = 0;
    loop {
        match openat2(root, rel, how(flags)) {
            Err(Errno::EAGAIN) if tries + 1 < EAGAIN_TRIES => tries += 1,
            r => return r,
        }
    }
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
    match openat2_in_root(root, rel.as_str(), OFlag::O_PATH) {
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
    let open_root = || openat2_in_root(root, ".", OFlag::O_PATH | OFlag::O_DIRECTORY).ctx(what);
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

    /// Lookups through `..` and symlinks while mounts come and go elsewhere on the system:
    /// openat2 answers EAGAIN then, and a lookup must retry rather than fail a create.
    #[test]
    fn lookups_survive_concurrent_mounts() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root (mount)");
            return;
        }
        let dir = std::env::temp_dir().join(format!("hull-paths-race-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::create_dir_all(dir.join("mnt")).unwrap();
        symlink("../a/./b/../b", root.join("a/link")).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mnt = dir.join("mnt");
        let churn = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                // A mount namespace of this thread's own, so the churn stays private.
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).unwrap();
                nix::mount::mount(
                    None::<&str>,
                    "/",
                    None::<&str>,
                    nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
                    None::<&str>,
                )
                .unwrap();
                let mut n = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    nix::mount::mount(
                        Some("t"),
                        &mnt,
                        Some("tmpfs"),
                        nix::mount::MsFlags::empty(),
                        None::<&str>,
                    )
                    .unwrap();
                    nix::mount::umount(&mnt).unwrap();
                    n += 1;
                }
                n
            })
        };
        let rootfd = open(&root, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        let mut result = Ok(());
        for _ in 0..20_000 {
            if let Err(e) = open_in_root(&rootfd, Path::new("/a/link/../../a/b/.."), Create::No) {
                result = Err(e);
                break;
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mounts = churn.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(mounts > 0, "the churn thread made no mounts");
        if let Err(e) = result {
            panic!("lookup failed while mounts changed: {e}");
        }
    }

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
