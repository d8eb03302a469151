//! The socket between `hull create` (parent) and the container's setup processes.
//!
//! A SOCK_SEQPACKET socketpair: each message is one packet of JSON, so framing is free and a
//! closed peer reads as end-of-file. The children report every stage or the error that
//! stopped them; the parent answers the one request that needs it (user-namespace maps).

use std::io;
use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    recv, recvmsg, send, socketpair, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType,
};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug)]
pub enum Msg {
    /// Child: I have unshared a user namespace; write the id maps for this pid.
    WriteIdMaps { pid: i32 },
    /// Parent: the maps are written.
    IdMapsWritten,
    /// Parent: the cgroup stage 1 waited for is there (a systemd scope, started with stage
    /// 1 in it); this is its path.
    CgroupReady { path: String },
    /// Child: the container's init exists with this host pid.
    InitPid { pid: i32 },
    /// Init: mounts are made, run the prestart and createRuntime hooks, then answer.
    RunHooks,
    /// Parent: hooks done; the state JSON for the init's own hooks.
    HooksDone { state: serde_json::Value },
    /// Init: set up and about to block on the exec fifo.
    Ready,
    /// Init: its seccomp filter's listener fd (sent with SCM_RIGHTS, put here by `recv`), for
    /// the agent at linux.seccomp.listenerPath.
    SeccompListener {
        #[serde(skip)]
        fd: Option<OwnedFd>,
    },
    /// Any child: setup failed.
    Error { msg: String },
}

pub struct SyncSocket {
    fd: OwnedFd,
}

/// Makes the pair: (parent end, child end). Both are close-on-exec.
pub fn pair() -> io::Result<(SyncSocket, SyncSocket)> {
    let (a, b) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)?;
    Ok((SyncSocket { fd: a }, SyncSocket { fd: b }))
}

impl SyncSocket {
    pub fn send(&self, msg: &Msg) -> io::Result<()> {
        let buf = serde_json::to_vec(msg).map_err(io::Error::other)?;
        send(self.fd.as_raw_fd(), &buf, MsgFlags::MSG_NOSIGNAL)?;
        Ok(())
    }

    /// Sends `msg` with `fd` attached (SCM_RIGHTS).
    pub fn send_fd(&self, msg: &Msg, fd: BorrowedFd) -> io::Result<()> {
        let buf = serde_json::to_vec(msg).map_err(io::Error::other)?;
        crate::fdpass::send_fd(self.fd.as_fd(), &buf, fd.as_raw_fd())
    }

    /// Reads one packet, and the fd passed with it if any (close-on-exec).
    fn recv_packet(&self, buf: &mut [u8]) -> nix::Result<(usize, Option<OwnedFd>)> {
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let mut iov = [IoSliceMut::new(buf)];
        let m = recvmsg::<()>(self.fd.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
        let mut fd = None;
        for c in m.cmsgs()? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for f in fds {
                    // SAFETY: the kernel just installed this fd in our table; nothing else owns
                    // it (extra ones are closed when dropped here).
                    let owned = unsafe { OwnedFd::from_raw_fd(f) };
                    fd.get_or_insert(owned);
                }
            }
        }
        Ok((m.bytes, fd))
    }

    /// The next message, or None when every peer has closed its end.
    pub fn recv(&self) -> io::Result<Option<Msg>> {
        loop {
            // The packet's whole size first (MSG_TRUNC): the state JSON for the hooks carries
            // the spec's annotations and can be far bigger than any fixed buffer.
            let mut probe = [0u8; 1];
            let size = match recv(self.fd.as_raw_fd(), &mut probe, MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC) {
                Ok(0) => return Ok(None),
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            };
            let mut buf = vec![0u8; size];
            match self.recv_packet(&mut buf) {
                Ok((0, _)) => return Ok(None),
                Ok((n, fd)) => {
                    let mut msg: Msg = serde_json::from_slice(&buf[..n])
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    if let Msg::SeccompListener { fd: slot } = &mut msg {
                        *slot = fd;
                    }
                    return Ok(Some(msg));
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl AsFd for SyncSocket {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
