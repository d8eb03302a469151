//! Passing an fd over a unix socket with SCM_RIGHTS (console sockets, seccomp listeners).

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

/// Sends `fd` with `payload` (runc sends the pty's name) as one message.
pub fn send_fd(sock: BorrowedFd, payload: &[u8], fd: RawFd) -> std::io::Result<()> {
    let iov = [IoSlice::new(payload)];
    let fds = [fd];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None)?;
    Ok(())
}

/// Receives one fd and its payload.
pub fn recv_fd(sock: BorrowedFd) -> std::io::Result<(OwnedFd, Vec<u8>)> {
    let mut buf = vec![0u8; 4096];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let (fd, n) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
        let mut got = None;
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                got = fds.first().copied();
            }
        }
        (got, msg.bytes)
    };
    let Some(fd) = fd else {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "no fd in message"));
    };
    buf.truncate(n);
    // SAFETY: the kernel just installed this fd in our table for us; nothing else owns it.
    Ok((unsafe { OwnedFd::from_raw_fd(fd) }, buf))
}

/// Keeps hull's own fds out of the range that `--preserve-fds N` hands to the container
/// (3 .. 3+N): every free fd number there is taken by /dev/null, close-on-exec so that the
/// program never sees it, until the returned fds are dropped. Without this, a caller with
/// no fd 3 open got hull's container lock at fd 3, the init kept it until `start`, and `start`
/// waited for that lock for ever.
pub fn reserve_preserved(n: u32) -> std::io::Result<Vec<OwnedFd>> {
    let end = 3 + i64::from(n);
    let mut held = Vec::new();
    if n == 0 {
        return Ok(held);
    }
    loop {
        // open(2) returns the lowest free number: the gaps fill in order.
        let f = std::fs::File::open("/dev/null")?;
        if i64::from(f.as_raw_fd()) >= end {
            return Ok(held);
        }
        held.push(OwnedFd::from(f));
    }
}
