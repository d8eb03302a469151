//! Receiving a file descriptor over a unix socket (SCM_RIGHTS): what a console socket's or a
//! seccomp agent's listener gets from hull.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Receives one message and the fd passed with it; panics when there is none.
pub fn recv_fd(sock: impl AsFd) -> (Vec<u8>, OwnedFd) {
    // Big enough for the seccomp agent's state JSON; a console socket sends a short name.
    let mut buf = vec![0u8; 1 << 20];
    let mut cbuf = [0u64; 8];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: msghdr is plain data; zeroed is a valid empty header that the lines below fill.
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cbuf.as_mut_ptr().cast();
    mh.msg_controllen = std::mem::size_of_val(&cbuf) as _;
    // SAFETY: every pointer in `mh` points into `buf` and `cbuf`, which outlive the call.
    let n = unsafe { libc::recvmsg(sock.as_fd().as_raw_fd(), &mut mh, libc::MSG_CMSG_CLOEXEC) };
    assert!(n >= 0, "recvmsg: {}", std::io::Error::last_os_error());
    // SAFETY: the control buffer was filled by the kernel; CMSG_* walk it within its length.
    let fd = unsafe {
        let c = libc::CMSG_FIRSTHDR(&mh);
        assert!(!c.is_null(), "no control message");
        assert_eq!(((*c).cmsg_level, (*c).cmsg_type), (libc::SOL_SOCKET, libc::SCM_RIGHTS));
        std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const RawFd)
    };
    buf.truncate(n as usize);
    // SAFETY: the kernel just gave us this fd; nothing else owns it.
    (buf, unsafe { OwnedFd::from_raw_fd(fd) })
}
