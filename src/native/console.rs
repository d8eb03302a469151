//! process.terminal: a pty from the container's own devpts instance, its master handed to
//! the console socket, its slave made the program's stdio, controlling tty and /dev/console.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::Mode;

use super::error::{msg, Context, Result};

/// Makes the pty, sends its master over `socket`, and returns the slave (for the init, which
/// also gets it as /dev/console).
pub fn setup(socket: &OwnedFd, size: Option<(u16, u16)>, uid: u32, gid: u32) -> Result<OwnedFd> {
    let (master, slave) = open_pty(size, uid, gid)?;
    // Before the master goes out: a refused /dev/console fails create with no terminal given.
    bind_console(&slave)?;
    send_master(socket.as_fd(), &master)?;
    Ok(slave)
}

/// The same for an exec'd process, which leaves /dev/console to the init.
pub fn setup_exec(socket: BorrowedFd, size: Option<(u16, u16)>, uid: u32, gid: u32) -> Result<OwnedFd> {
    let (master, slave) = open_pty(size, uid, gid)?;
    send_master(socket, &master)?;
    Ok(slave)
}

fn send_master(socket: BorrowedFd, master: &OwnedFd) -> Result<()> {
    crate::fdpass::send_fd(socket, b"/dev/ptmx", master.as_raw_fd())
        .ctx(|| "send the pty master to the console socket".to_string())
}

/// A new pty of the container's devpts: (master, slave).
fn open_pty(size: Option<(u16, u16)>, uid: u32, gid: u32) -> Result<(OwnedFd, OwnedFd)> {
    let master = open("/dev/ptmx", OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC, Mode::empty())
        .ctx(|| "open /dev/ptmx in the container".to_string())?;
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads an int from the pointer, which outlives the call.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } != 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "unlock pty".to_string());
    }
    // TIOCGPTPEER opens the slave through the master, with no path lookup to race.
    // SAFETY: TIOCGPTPEER takes open flags by value and returns a new fd or -1.
    let raw = unsafe {
        libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC)
    };
    if raw < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "open pty slave".to_string());
    }
    // SAFETY: the ioctl returned a new fd that nothing else owns.
    let slave = unsafe { OwnedFd::from_raw_fd(raw) };
    if let Some((rows, cols)) = size {
        let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCSWINSZ reads a winsize from the pointer, which outlives the call.
        if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
            return Err(std::io::Error::last_os_error()).ctx(|| "process.consoleSize".to_string());
        }
    }
    // The program's user must own its terminal (it may reopen /dev/tty).
    nix::unistd::fchown(&slave, Some(nix::unistd::Uid::from_raw(uid)), Some(nix::unistd::Gid::from_raw(gid)))
        .ctx(|| "chown pty".to_string())?;
    Ok((master, slave))
}

/// /dev/console in the container is the pty slave. The mount's target is an fd of the
/// container's /dev/console opened without following a symlink, and its source the slave's own
/// fd, so that no path can be swapped in between (runc's CVE-2025-52565: a /dev/console
/// redirected by a symlink, or raced, turned the bind onto a procfs file). Only a regular file
/// or a character device there is bound over; anything else is refused.
fn bind_console(slave: &OwnedFd) -> Result<()> {
    let root = open("/", OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        .ctx(|| "open the container's root".to_string())?;
    let dev = super::paths::open_in_root(&root, Path::new("/dev"), super::paths::Create::Dir)?;
    let target = open_console(&dev)?;
    let st = nix::sys::stat::fstat(&target).ctx(|| "stat /dev/console".to_string())?;
    let kind = st.st_mode & libc::S_IFMT;
    if kind != libc::S_IFREG && kind != libc::S_IFCHR {
        let what = match kind {
            libc::S_IFLNK => "a symlink",
            libc::S_IFDIR => "a directory",
            _ => "neither a file nor a character device",
        };
        return msg(format!("/dev/console in the container is {what}: refused as the pty's mount point"));
    }
    let src = super::paths::proc_fd_path(slave);
    let dst = super::paths::proc_fd_path(&target);
    mount(Some(src.as_str()), dst.as_str(), None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .ctx(|| "bind the pty on /dev/console".to_string())
}

/// /dev/console as an O_PATH fd that refers to the entry itself (a symlink stays a symlink),
/// made as an empty file when missing.
fn open_console(dev: &OwnedFd) -> Result<OwnedFd> {
    let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    match nix::fcntl::openat(dev, "console", flags, Mode::empty()) {
        Err(nix::errno::Errno::ENOENT) => {
            let made = nix::fcntl::openat(
                dev,
                "console",
                OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            );
            match made {
                Ok(_) | Err(nix::errno::Errno::EEXIST) => {}
                Err(e) => return Err(e).ctx(|| "create /dev/console".to_string()),
            }
            nix::fcntl::openat(dev, "console", flags, Mode::empty()).ctx(|| "open /dev/console".to_string())
        }
        r => r.ctx(|| "open /dev/console".to_string()),
    }
}

/// In the init, right before exec: the slave becomes the controlling tty and stdio.
pub fn make_stdio(slave: &OwnedFd) -> Result<()> {
    // SAFETY: TIOCSCTTY takes an int by value; the init leads its own session (setsid).
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } != 0 {
        return Err(std::io::Error::last_os_error())
            .ctx(|| "make the pty the controlling terminal".to_string());
    }
    for fd in 0..3 {
        // SAFETY: dup2 onto stdio numbers; the old stdio fds are replaced on purpose.
        if unsafe { libc::dup2(slave.as_raw_fd(), fd) } < 0 {
            return msg(format!("dup2 pty onto fd {fd}: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}
