//! Writes to files of the container's procfs (sysctls, LSM labels) that cannot be redirected.
//!
//! A path such as /proc/sys/net/ipv4/ip_forward is only what it says when nothing is mounted
//! over it or over any directory on the way. A hostile image that can race a mount (through a
//! shared mount, or a second container) could put another procfs file there, and the write
//! would change that one instead: a host-wide sysctl, or a label that never applies (runc's
//! CVE-2025-52881). Every write here starts at /proc checked to be a procfs root and resolves
//! the rest with openat2(RESOLVE_BENEATH | RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS): a lookup that
//! would cross into another mount fails (EXDEV) instead of following it.

use std::os::fd::OwnedFd;

use nix::errno::Errno;
use nix::fcntl::{open, openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use nix::sys::statfs::{fstatfs, PROC_SUPER_MAGIC};

use super::error::{msg, Context, Result};

/// The inode number of every procfs instance's root directory.
const PROC_ROOT_INO: u64 = 1;

/// The container's /proc, checked to be the root of a procfs (CVE-2019-16884: a rootfs can
/// put a directory of its own there).
pub fn root() -> Result<OwnedFd> {
    let fd = open("/proc", OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        .ctx(|| "open /proc".to_string())?;
    let is_proc = fstatfs(&fd).map(|s| s.filesystem_type() == PROC_SUPER_MAGIC).unwrap_or(false);
    let ino = nix::sys::stat::fstat(&fd).map(|s| s.st_ino).unwrap_or(0);
    if !is_proc || ino != PROC_ROOT_INO {
        return msg("/proc in the container is not procfs (or not its root): refusing to write there");
    }
    Ok(fd)
}

/// Writes `data` to `rel` (e.g. "sys/net/ipv4/ip_forward", "thread-self/attr/exec") under the
/// procfs `root`, in one write(2) as procfs wants.
pub fn write(root: &OwnedFd, rel: &str, data: &[u8]) -> std::result::Result<(), WriteError> {
    let how = OpenHow::new().flags(OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).resolve(
        ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_XDEV | ResolveFlag::RESOLVE_NO_MAGICLINKS,
    );
    let fd = openat2(root, rel, how).map_err(|e| match e {
        Errno::EXDEV => WriteError::Overmounted,
        e => WriteError::Sys(e),
    })?;
    match nix::unistd::write(&fd, data) {
        Ok(n) if n == data.len() => Ok(()),
        Ok(n) => Err(WriteError::Short(n)),
        Err(e) => Err(WriteError::Sys(e)),
    }
}

/// Why a procfs write failed.
#[derive(Debug)]
pub enum WriteError {
    /// Something is mounted over the file or a directory on its path.
    Overmounted,
    /// The kernel took fewer bytes than given.
    Short(usize),
    Sys(Errno),
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::Overmounted => f.write_str(
                "something is mounted over it in the container: refused (the write would reach another file)",
            ),
            WriteError::Short(n) => write!(f, "the kernel took only {n} bytes"),
            WriteError::Sys(e) => write!(f, "{}", std::io::Error::from(*e)),
        }
    }
}
