//! A VM container's unix sockets live in its state directory, `<root>/<id>/vsock*`, and a
//! unix socket's address holds at most 107 bytes of path: Docker 20.10's runtime root and a
//! 64-character id come to 109 bytes for `vsock_1024`. Where a path does not fit, the socket is
//! named through `/proc/self/fd/N/NAME`, N an O_PATH descriptor of the directory: the kernel
//! finds the directory by the descriptor, and only that short path goes in the address.
//!
//! The VMM binds its sockets before the jail and the vsock device connects to the agent's and
//! the relay's after it, where the same path names the directory inside the jail (the sockets
//! it keeps are bound there at their own paths): [`SocketDir::reopen_in_jail`] puts a
//! descriptor of that directory in N's place, so nothing of the host's tree stays open.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;

/// The longest path a unix socket address holds (sun_path, with its NUL).
pub const SUN_PATH_MAX: usize = 107;

/// The directory of a VM container's sockets, by path or, when its paths are too long, by
/// descriptor.
pub struct SocketDir {
    dir: PathBuf,
    /// Open only when some socket's path in `dir` does not fit in an address.
    fd: Option<OwnedFd>,
}

impl SocketDir {
    /// `longest` is the longest file name a socket in `dir` gets.
    pub fn open(dir: &Path, longest: &str) -> Result<SocketDir, String> {
        if fits(&dir.join(longest)) {
            return Ok(SocketDir { dir: dir.to_path_buf(), fd: None });
        }
        let fd = open_dir(dir)?;
        Ok(SocketDir { dir: dir.to_path_buf(), fd: Some(fd) })
    }

    /// The address to bind or connect to for the socket `path` (a file in this directory).
    pub fn address(&self, path: &Path) -> PathBuf {
        match (&self.fd, path.file_name()) {
            (Some(fd), Some(name)) => Path::new(&format!("/proc/self/fd/{}", fd.as_raw_fd())).join(name),
            _ => path.to_path_buf(),
        }
    }

    /// Once jailed: the descriptor names the directory at the same path inside the jail.
    pub fn reopen_in_jail(&mut self) -> Result<(), String> {
        let Some(fd) = &mut self.fd else { return Ok(()) };
        let again = open_dir(&self.dir)?;
        // dup3 onto the old number: the addresses handed out keep naming the directory, now
        // the jail's, and the host's closes with the old descriptor.
        nix::unistd::dup3(again.as_fd(), fd, OFlag::O_CLOEXEC)
            .map_err(|e| format!("{} in the VMM's root: {e}", self.dir.display()))
    }
}

fn fits(path: &Path) -> bool {
    path.as_os_str().len() <= SUN_PATH_MAX
}

fn open_dir(dir: &Path) -> Result<OwnedFd, String> {
    open(dir, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| format!("opening {}: {e}", dir.display()))
}

/// Connects to the unix socket at `path`, through its directory's descriptor when the path
/// does not fit in an address.
pub fn connect(path: &Path) -> io::Result<UnixStream> {
    if fits(path) {
        return UnixStream::connect(path);
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return UnixStream::connect(path);
    };
    let fd = open_dir(dir).map_err(io::Error::other)?;
    UnixStream::connect(Path::new(&format!("/proc/self/fd/{}", fd.as_raw_fd())).join(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A directory whose path is longer than an address holds (`.1`, under `.0`), removed
    /// when dropped.
    struct LongDir(PathBuf, PathBuf);
    impl LongDir {
        fn new() -> LongDir {
            let top = std::env::temp_dir().join(format!("hull-socket-dir-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&top);
            let mut p = top.clone();
            while p.as_os_str().len() <= SUN_PATH_MAX {
                p.push("0123456789abcdef0123456789abcdef");
            }
            std::fs::create_dir_all(&p).unwrap();
            LongDir(top, p)
        }
    }
    impl Drop for LongDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_short_directory_is_named_by_path() {
        let d = SocketDir::open(Path::new("/run/hull/c1"), "vsock_1024").unwrap();
        assert!(d.fd.is_none());
        assert_eq!(d.address(Path::new("/run/hull/c1/vsock")), PathBuf::from("/run/hull/c1/vsock"));
    }

    #[test]
    fn a_long_directory_serves_and_is_reached_through_its_descriptor() {
        let long = LongDir::new();
        let d = SocketDir::open(&long.1, "vsock_1024").unwrap();
        let path = long.1.join("vsock_1024");
        let address = d.address(&path);
        assert!(address.as_os_str().len() <= SUN_PATH_MAX, "{}", address.display());
        assert!(UnixListener::bind(&path).is_err(), "the long path itself binds");
        let listener = UnixListener::bind(&address).unwrap();
        // The socket is in the directory, by its real path.
        assert!(path.exists());
        let _client = connect(&path).unwrap();
        let (_server, _) = listener.accept().unwrap();
    }
}
