//! Preserved fds for VM containers: `--preserve-fds N` and socket activation (LISTEN_FDS) hand
//! the container fds 3..3+N of `hull create`, which are host descriptors and cannot cross into
//! the guest. The guest gets a descriptor of the same kind at the same number, and two relays,
//! one in the VMM ([`host`]) and one in the guest ([`guest`]), carry the bytes between them over
//! vsock streams the guest opens to [`PORT`]:
//!
//! ```text
//!  host fd 3+i (the caller's)        VMM: fd-relay thread        vsock        guest: relay process     workload fd 3+i
//!  pipe read end / O_RDONLY file ->  read, write to the stream  ======>  write the pipe           ->  pipe read end
//!  pipe write end / O_WRONLY file <- write what the stream has  <======  read the pipe            <-  pipe write end
//!  connected stream socket, O_RDWR <-> both ways                <=====>  socketpair, both ways   <-> its other end
//!  listening socket               -> accept: ask the guest       ------>  connect to the guest's  ->  a listener of the
//!                                    for a stream, pair them     <=====>  listener, pair them          same family
//! ```
//!
//! Each stream starts with a [`Header`]: the fd's index and what the stream is for. A
//! listener's guest relay keeps one control stream, on which the host writes a byte per client
//! it accepted; the guest connects to the workload's listener and opens a client stream for it.
//!
//! An exec's preserved fds (`exec --preserve-fds`) go the other way round: the exec's host
//! stand-in holds them and opens the streams ([`host::run_opening`]), one per fd and one per
//! client its listener accepts, to a vsock port on which a relay the agent forked for the exec
//! listens ([`guest::GuestFds::start_serving`]); no control stream is needed.
//! End of file crosses as end of file (a socket's half-close as a half-close), so `cat <&3`
//! ends when the caller closes its end. The workload's last writes reach the host before the
//! VMM reports its exit: the guest relay flushes and half-closes every stream when the
//! workload ends, and the host acknowledges the exit status only once those streams ended and
//! their bytes were written (bounded, [`host::DRAIN_WAIT`]).
//!
//! What cannot be relayed is refused when the container is created, naming the fd: datagram
//! and seqpacket sockets (their message boundaries), and listeners of a family other than
//! unix, inet and inet6. A program in the guest sees a pipe or a unix socket where the host
//! had a file or a socket of another family, and a client of a relayed listener has a loopback
//! (or abstract unix) peer address.

pub mod guest;
pub mod host;
mod incoming;
mod pump;

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use serde::{Deserialize, Serialize};

/// The host vsock port the guest's relay connects to; the VMM listens on `<uds_path>_<port>`.
pub const PORT: u32 = 1026;

/// A descriptor's kind, as far as relaying it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// The container reads it (a pipe's read end, a file opened read-only): host to guest.
    Read,
    /// The container writes it: guest to host.
    Write,
    /// Both ways (a connected stream socket, a file or a terminal opened read-write).
    ReadWrite,
    /// A listening stream socket: each connection the host accepts becomes one the workload
    /// accepts in the guest.
    Listen(Family),
}

/// A listener's address family, which the guest's listener has too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Family {
    Unix,
    Inet,
    Inet6,
}

/// One preserved fd: fd `3 + index` of `hull create`, and of the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preserved {
    pub index: u32,
    pub kind: Kind,
}

impl Preserved {
    pub fn fd(&self) -> RawFd {
        3 + self.index as RawFd
    }
}

/// What a stream to [`PORT`] is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The bytes of a Read, Write or ReadWrite fd.
    Stream,
    /// A listener's requests: a byte from the host per client it accepted.
    Control,
    /// One client of a listener.
    Client,
}

/// The first bytes of every stream: `[u32 little-endian index][u8 role]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub index: u32,
    pub role: Role,
}

pub const HEADER_LEN: usize = 5;

impl Header {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..4].copy_from_slice(&self.index.to_le_bytes());
        out[4] = match self.role {
            Role::Stream => 0,
            Role::Control => 1,
            Role::Client => 2,
        };
        out
    }

    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Option<Header> {
        let index = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let role = match bytes[4] {
            0 => Role::Stream,
            1 => Role::Control,
            2 => Role::Client,
            _ => return None,
        };
        Some(Header { index, role })
    }
}

/// The fds `hull create` preserves (3..3+n) as the relays see them. A number with nothing
/// open, or with a close-on-exec fd (hull's own placeholder for a number the caller left
/// free, see [`crate::fdpass::reserve_preserved`]), is skipped: the workload has nothing
/// there, as natively. An fd that cannot be relayed is an error naming it.
pub fn classify_preserved(n: u32) -> Result<Vec<Preserved>, String> {
    let mut out = Vec::new();
    for index in 0..n {
        let fd = 3 + index as RawFd;
        // SAFETY: F_GETFD only reads the flags of a number in this process's table.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        if flags < 0 || flags & libc::FD_CLOEXEC != 0 {
            continue;
        }
        // SAFETY: fd is open (F_GETFD succeeded) and stays so while this borrow lives: nothing
        // in this function closes it.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let kind = classify(borrowed).map_err(|why| format!("preserved fd {fd}: {why}"))?;
        out.push(Preserved { index, kind });
    }
    Ok(out)
}

/// How `fd` is relayed.
pub fn classify(fd: BorrowedFd) -> Result<Kind, String> {
    let stat = nix::sys::stat::fstat(fd).map_err(|e| format!("fstat: {e}"))?;
    if stat.st_mode & libc::S_IFMT == libc::S_IFSOCK {
        return classify_socket(fd);
    }
    // SAFETY: F_GETFL only reads the status flags of an open fd.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(format!("F_GETFL: {}", std::io::Error::last_os_error()));
    }
    Ok(match flags & libc::O_ACCMODE {
        libc::O_RDONLY => Kind::Read,
        libc::O_WRONLY => Kind::Write,
        _ => Kind::ReadWrite,
    })
}

fn classify_socket(fd: BorrowedFd) -> Result<Kind, String> {
    let int_opt = |opt: libc::c_int| -> Result<libc::c_int, String> {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes to `value`, which outlives the call.
        let rc = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(format!("getsockopt: {}", std::io::Error::last_os_error()));
        }
        Ok(value)
    };
    let typ = int_opt(libc::SO_TYPE)?;
    if typ != libc::SOCK_STREAM {
        let name = match typ {
            libc::SOCK_DGRAM => "a datagram socket",
            libc::SOCK_SEQPACKET => "a seqpacket socket",
            _ => "a socket that is not a stream",
        };
        return Err(format!(
            "{name} cannot be relayed into the VM (only pipes, files and stream sockets can): run this container \
             on the native backend"
        ));
    }
    if int_opt(libc::SO_ACCEPTCONN)? == 0 {
        return Ok(Kind::ReadWrite);
    }
    let family = match int_opt(libc::SO_DOMAIN)? {
        libc::AF_UNIX => Family::Unix,
        libc::AF_INET => Family::Inet,
        libc::AF_INET6 => Family::Inet6,
        other => {
            return Err(format!(
                "a listening socket of address family {other} cannot be relayed into the VM (unix, inet and \
                 inet6 can)"
            ))
        }
    };
    Ok(Kind::Listen(family))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn headers_round_trip_and_bad_roles_are_refused() {
        for role in [Role::Stream, Role::Control, Role::Client] {
            let h = Header { index: 7, role };
            assert_eq!(Header::decode(&h.encode()), Some(h));
        }
        assert_eq!(Header::decode(&[0, 0, 0, 0, 9]), None);
    }

    #[test]
    fn kinds_follow_the_descriptor() {
        let (r, w) = nix::unistd::pipe().unwrap();
        assert_eq!(classify(r.as_fd()), Ok(Kind::Read));
        assert_eq!(classify(w.as_fd()), Ok(Kind::Write));
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(classify(a.as_fd()), Ok(Kind::ReadWrite));
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert_eq!(classify(l.as_fd()), Ok(Kind::Listen(Family::Inet)));
        let dir = std::env::temp_dir().join(format!("hull-fdrelay-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let ul = std::os::unix::net::UnixListener::bind(&dir).unwrap();
        assert_eq!(classify(ul.as_fd()), Ok(Kind::Listen(Family::Unix)));
        let _ = std::fs::remove_file(&dir);
        let (d, _e) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let err = classify(d.as_fd()).unwrap_err();
        assert!(err.contains("datagram socket"), "{err}");
        let f = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null").unwrap();
        assert_eq!(classify(f.as_fd()), Ok(Kind::ReadWrite));
    }
}
