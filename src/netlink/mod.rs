//! rtnetlink, the little of it hull needs: read a network namespace's links, addresses and
//! routes, set them (the agent, on a VM container's NICs in the guest), and the tc ingress
//! redirect that ties a tap to an interface (the VMM, in the container's network namespace).
//! Every call acts in the network namespace of the calling thread.
//!
//! One request at a time on a socket of its own, answered by an ack or a dump; the wire format
//! is the kernel's (`linux/netlink.h`, `rtnetlink.h`, `pkt_cls.h`): a header, a fixed struct,
//! then attributes ([`attr`]). Replies are bounded in size and time (a receive timeout), so a
//! kernel that does not answer cannot hang the caller.

pub mod addr;
pub mod attr;
pub mod link;
pub mod route;
pub mod tc;

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// Runs `f` on a thread of its own that first enters the network namespace `ns` (named `what`
/// in errors) and ends with it: setns(2) moves only the calling thread, and no other work may
/// run in a namespace that is not the process's. Err when the namespace cannot be entered or
/// the thread panicked; otherwise what `f` returned.
pub fn in_netns<T: Send>(
    ns: BorrowedFd<'_>,
    what: &str,
    f: impl FnOnce() -> T + Send,
) -> std::result::Result<T, String> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| -> std::result::Result<T, String> {
                nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| format!("entering {what}: {e}"))?;
                Ok(f())
            })
            .join()
            .map_err(|_| format!("the thread working in {what} panicked"))?
    })
}

/// How long a reply may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// struct nlmsghdr.
const HEADER_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
#[error("netlink: {what}: {source}")]
pub struct Error {
    pub what: String,
    #[source]
    pub source: io::Error,
}

impl Error {
    fn new(what: impl Into<String>, source: io::Error) -> Error {
        Error { what: what.into(), source }
    }

    /// The errno the kernel answered with, if that is what failed.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// A NETLINK_ROUTE socket of this thread's network namespace.
pub struct Socket {
    fd: OwnedFd,
    seq: u32,
}

/// One message of a dump: its type and what follows its header.
pub struct Message {
    pub kind: u16,
    pub body: Vec<u8>,
}

impl Socket {
    pub fn open() -> Result<Socket> {
        // SAFETY: a plain socket call on constant arguments; the fd is checked and owned below.
        let fd = unsafe {
            libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE)
        };
        if fd < 0 {
            return Err(Error::new("socket", io::Error::last_os_error()));
        }
        // SAFETY: fd was just returned by socket() and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let timeout = libc::timeval {
            tv_sec: REPLY_TIMEOUT.as_secs() as libc::time_t,
            tv_usec: 0 as libc::suseconds_t,
        };
        // SAFETY: SO_RCVTIMEO reads a timeval of the size given.
        let ret = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if ret < 0 {
            return Err(Error::new("SO_RCVTIMEO", io::Error::last_os_error()));
        }
        Ok(Socket { fd, seq: 0 })
    }

    /// Sends a request and waits for its ack; `what` names it in errors.
    pub fn request(&mut self, what: &str, kind: u16, flags: u16, body: &[u8]) -> Result<()> {
        let seq = self.send(what, kind, flags | libc::NLM_F_REQUEST as u16 | libc::NLM_F_ACK as u16, body)?;
        let mut done = false;
        self.receive(what, seq, |m| {
            if m.kind == libc::NLMSG_ERROR as u16 {
                done = true;
            }
            Ok(!done)
        })
    }

    /// Sends a dump request and returns every message of the answer.
    pub fn dump(&mut self, what: &str, kind: u16, body: &[u8]) -> Result<Vec<Message>> {
        let seq = self.send(what, kind, (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16, body)?;
        let mut out = Vec::new();
        self.receive(what, seq, |m| {
            if m.kind == libc::NLMSG_DONE as u16 {
                return Ok(false);
            }
            out.push(m);
            Ok(true)
        })?;
        Ok(out)
    }

    fn send(&mut self, what: &str, kind: u16, flags: u16, body: &[u8]) -> Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let len = HEADER_LEN + body.len();
        let mut msg = Vec::with_capacity(len);
        msg.extend_from_slice(&(len as u32).to_ne_bytes());
        msg.extend_from_slice(&kind.to_ne_bytes());
        msg.extend_from_slice(&flags.to_ne_bytes());
        msg.extend_from_slice(&self.seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(body);
        // SAFETY: zeroed sockaddr_nl is valid (pid 0: the kernel), its family set below.
        let mut to: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        to.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: msg and to are valid for the lengths given.
        let sent = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&to as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(Error::new(what, io::Error::last_os_error()));
        }
        Ok(self.seq)
    }

    /// Reads replies to `seq` and hands each message to `each` until it returns false. An
    /// error message with a non-zero errno is the request's failure.
    fn receive(&mut self, what: &str, seq: u32, mut each: impl FnMut(Message) -> Result<bool>) -> Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: buf is valid for its length.
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::new(what, e));
            }
            let mut rest = &buf[..n as usize];
            while rest.len() >= HEADER_LEN {
                let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                if len < HEADER_LEN || len > rest.len() {
                    return Err(Error::new(what, io::Error::other("a truncated reply")));
                }
                let kind = u16::from_ne_bytes([rest[4], rest[5]]);
                let their_seq = u32::from_ne_bytes([rest[8], rest[9], rest[10], rest[11]]);
                let body = &rest[HEADER_LEN..len];
                rest = &rest[align(len).min(rest.len())..];
                if their_seq != seq {
                    continue;
                }
                if kind == libc::NLMSG_ERROR as u16 {
                    let errno =
                        body.get(..4).map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]])).unwrap_or(0);
                    if errno != 0 {
                        return Err(Error::new(what, io::Error::from_raw_os_error(-errno)));
                    }
                }
                if !each(Message { kind, body: body.to_vec() })? {
                    return Ok(());
                }
            }
        }
    }
}

/// Netlink's 4-byte alignment.
pub(crate) fn align(len: usize) -> usize {
    (len + 3) & !3
}
