//! The agent's connection to the host: a vsock stream it opens to the host (CID 2).
//!
//! The VMM's vsock device turns a guest connection to host port P into a connection to the
//! unix socket `<uds_path>_P`, on which vm-run is already listening when the guest boots; so
//! the agent connects once, with no retry, and the host's accept is "agent ready".
//!
//! A VM container's agent also listens on an exec port: the host connects to `<uds_path>`,
//! says `CONNECT <port>`, and the device hands the agent a stream per exec'd process.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use anyhow::Context;
use nix::sys::socket::{
    accept4, bind, connect as sock_connect, listen as sock_listen, socket, AddressFamily, Backlog, SockFlag,
    SockType, VsockAddr,
};

/// The host's context id.
pub const HOST_CID: u32 = libc::VMADDR_CID_HOST;

/// A connected vsock stream. Blocking: the agent reads only after poll says there is data.
pub struct VsockStream(OwnedFd);

/// SO_VM_SOCKETS_CONNECT_TIMEOUT (linux/vm_sockets.h, the struct timeval form), at level
/// AF_VSOCK.
const SO_VM_SOCKETS_CONNECT_TIMEOUT: libc::c_int = 6;
/// How long one connect may take. The kernel's default is 2 s, which a slow host (an emulated
/// machine, a VMM busy with a byte-a-time serial console) can miss.
const CONNECT_TIMEOUT: libc::timeval = libc::timeval { tv_sec: 20, tv_usec: 0 };
/// How many times a connect that timed out is tried again.
const CONNECT_TRIES: u32 = 3;

pub fn connect(port: u32) -> anyhow::Result<VsockStream> {
    let what = || format!("connecting to the host over vsock (CID {HOST_CID}, port {port})");
    let mut tries = 0;
    loop {
        tries += 1;
        let fd = socket(AddressFamily::Vsock, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)
            .with_context(what)?;
        // SAFETY: setsockopt reads a timeval from the pointer, which outlives the call; a
        // kernel without the option says so and the default stays.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::AF_VSOCK,
                SO_VM_SOCKETS_CONNECT_TIMEOUT,
                (&CONNECT_TIMEOUT as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        match sock_connect(fd.as_raw_fd(), &VsockAddr::new(HOST_CID, port)) {
            Ok(()) => {
                super::console::debug(&format!("connected to the host on vsock port {port}"));
                return Ok(VsockStream(fd));
            }
            Err(nix::errno::Errno::ETIMEDOUT | nix::errno::Errno::EINTR) if tries < CONNECT_TRIES => {
                super::console::warn(&format!("{}: timed out; trying again", what()));
            }
            Err(e) => return Err(e).with_context(what),
        }
    }
}

/// A listening vsock socket in the guest (any CID, one port).
pub struct VsockListener(OwnedFd);

pub fn listen(port: u32) -> anyhow::Result<VsockListener> {
    let what = || format!("listening on vsock port {port}");
    let fd =
        socket(AddressFamily::Vsock, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).with_context(what)?;
    bind(fd.as_raw_fd(), &VsockAddr::new(libc::VMADDR_CID_ANY, port)).with_context(what)?;
    sock_listen(&fd, Backlog::new(16).with_context(what)?).with_context(what)?;
    Ok(VsockListener(fd))
}

impl VsockListener {
    /// The port it listens on (the kernel's pick, for VMADDR_PORT_ANY).
    pub fn port(&self) -> anyhow::Result<u32> {
        let addr: VsockAddr = nix::sys::socket::getsockname(self.0.as_raw_fd()).context("getsockname")?;
        Ok(addr.port())
    }

    /// The next connection (poll says when there is one).
    pub fn accept(&self) -> io::Result<VsockStream> {
        let fd = accept4(self.0.as_raw_fd(), SockFlag::SOCK_CLOEXEC).map_err(io::Error::from)?;
        // SAFETY: accept4 returned a new descriptor that nothing else owns.
        Ok(VsockStream(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }))
    }
}

impl AsFd for VsockListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl AsFd for VsockStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl Read for VsockStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        nix::unistd::read(&self.0, buf).map_err(io::Error::from)
    }
}

impl Write for VsockStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        nix::unistd::write(&self.0, buf).map_err(io::Error::from)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl From<VsockStream> for OwnedFd {
    fn from(s: VsockStream) -> OwnedFd {
        s.0
    }
}

impl From<VsockListener> for OwnedFd {
    fn from(l: VsockListener) -> OwnedFd {
        l.0
    }
}
