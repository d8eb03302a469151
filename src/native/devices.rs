//! Device nodes in the container's /dev: the defaults every container gets, the spec's
//! `linux.devices`, and the usual symlinks.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{makedev, mknodat, Mode, SFlag};
use nix::unistd::{fchownat, symlinkat, Gid, Uid};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use super::error::{Context, Result};
use super::paths::{open_in_root, proc_fd_path, Create};

/// A device node to make.
#[derive(Debug, Clone)]
struct Node {
    path: PathBuf,
    kind: SFlag,
    major: u64,
    minor: u64,
    mode: u32,
    uid: u32,
    gid: u32,
}

/// The devices the runtime spec says every container has.
fn defaults() -> Vec<Node> {
    [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)]
        .iter()
        .map(|(n, ma, mi)| Node {
            path: PathBuf::from(format!("/dev/{n}")),
            kind: SFlag::S_IFCHR,
            major: *ma,
            minor: *mi,
            mode: 0o666,
            uid: 0,
            gid: 0,
        })
        .collect()
}

fn from_spec(d: &LinuxDevice) -> Option<Node> {
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        _ => return None,
    };
    Some(Node {
        path: d.path().clone(),
        kind,
        major: d.major() as u64,
        minor: d.minor() as u64,
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
    })
}

/// Makes the default and the spec's devices. Inside a user namespace mknod of a device is not
/// allowed, so each device node is a bind of the host's node at the same path, as runc does;
/// a FIFO needs no privilege to make (and the host has none to bind), so it is always made.
pub fn create_all(root: &OwnedFd, spec_devices: &[LinuxDevice], in_userns: bool) -> Result<()> {
    let mut nodes = defaults();
    for d in spec_devices {
        if let Some(n) = from_spec(d) {
            nodes.retain(|x| x.path != n.path);
            nodes.push(n);
        }
    }
    for n in &nodes {
        if in_userns && n.kind != SFlag::S_IFIFO {
            bind_host_node(root, n)?;
        } else {
            make_node(root, n)?;
        }
    }
    Ok(())
}

fn split(path: &Path) -> (PathBuf, String) {
    let parent = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    (parent, name)
}

fn make_node(root: &OwnedFd, n: &Node) -> Result<()> {
    let (parent, name) = split(&n.path);
    let dir = open_in_root(root, &parent, Create::Dir)?;
    let dirfd = nix::fcntl::open(
        proc_fd_path(&dir).as_str(),
        nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open {}", parent.display()))?;
    let _ = nix::unistd::unlinkat(&dirfd, name.as_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
    match mknodat(&dirfd, name.as_str(), n.kind, Mode::from_bits_truncate(n.mode), makedev(n.major, n.minor))
    {
        // Where the filesystem refuses device nodes (a VM container's rootfs is a virtio-fs
        // share, which makes none), the device is bound from /dev as in a user namespace;
        // runc falls back the same way.
        Err(nix::errno::Errno::EPERM) if n.kind != SFlag::S_IFIFO => return bind_host_node(root, n),
        r => r.ctx(|| format!("mknod {}", n.path.display()))?,
    }
    fchownat(
        &dirfd,
        name.as_str(),
        Some(Uid::from_raw(n.uid)),
        Some(Gid::from_raw(n.gid)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .ctx(|| format!("chown {}", n.path.display()))
}

fn bind_host_node(root: &OwnedFd, n: &Node) -> Result<()> {
    let target = open_in_root(root, &n.path, Create::File)?;
    mount(Some(&n.path), proc_fd_path(&target).as_str(), None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .ctx(|| format!("bind device {}", n.path.display()))
}

/// /dev/fd, /dev/std{in,out,err}, /dev/core and /dev/ptmx (to the devpts instance).
pub fn symlinks(root: &OwnedFd) -> Result<()> {
    let dev = open_in_root(root, Path::new("/dev"), Create::Dir)?;
    let devfd = nix::fcntl::open(
        proc_fd_path(&dev).as_str(),
        nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| "open /dev in rootfs".to_string())?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        match symlinkat(target, devfd.as_fd(), name) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(e).ctx(|| format!("symlink /dev/{name}")),
        }
    }
    // /dev/ptmx must be the container's own devpts instance.
    if nix::sys::stat::fstatat(&devfd, "pts/ptmx", nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW).is_ok() {
        let _ = nix::unistd::unlinkat(&devfd, "ptmx", nix::unistd::UnlinkatFlags::NoRemoveDir);
        symlinkat("pts/ptmx", devfd.as_fd(), "ptmx").ctx(|| "symlink /dev/ptmx".to_string())?;
    }
    Ok(())
}
