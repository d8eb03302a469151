//! The side of a relay that accepts the other side's streams (the VMM for a container's
//! preserved fds, the guest's relay for an exec's): each new stream sends its [`Header`] first,
//! and is handed on once the header is in.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use super::pump::PollSet;
use super::{Header, HEADER_LEN};

/// How long a new stream has to send its header.
const HEADER_WAIT: Duration = Duration::from_secs(10);
/// At most this many streams wait for their header: a peer that opens streams and says
/// nothing cannot make the relay hold descriptors without end.
const MAX_PENDING: usize = 64;

/// A stream whose header is not in yet.
struct Pending {
    fd: OwnedFd,
    header: Vec<u8>,
    since: Instant,
    /// Closed before its header was in.
    closed: bool,
}

/// The listening socket and the streams waiting for their header.
pub struct Incoming {
    listener: OwnedFd,
    pending: Vec<Pending>,
    accept_slot: Option<usize>,
    slots: Vec<usize>,
}

impl Incoming {
    /// `listener`: non-blocking, listening.
    pub fn new(listener: OwnedFd) -> Incoming {
        Incoming { listener, pending: Vec::new(), accept_slot: None, slots: Vec::new() }
    }

    pub fn register(&mut self, set: &mut PollSet) {
        self.accept_slot = Some(set.add(self.listener.as_raw_fd(), libc::POLLIN));
        self.slots = self.pending.iter().map(|p| set.add(p.fd.as_raw_fd(), libc::POLLIN)).collect();
    }

    /// How long the poll may wait for the sake of the pending streams' time limit.
    pub fn timeout(&self) -> Option<Duration> {
        (!self.pending.is_empty()).then_some(Duration::from_secs(1))
    }

    /// Reads headers and takes new streams; returns those whose header is in. A stream with a
    /// bad header, or none in time, is dropped.
    pub fn service(&mut self, set: &PollSet) -> Vec<(Header, OwnedFd)> {
        let mut ready = Vec::new();
        for (k, slot) in std::mem::take(&mut self.slots).into_iter().enumerate().rev() {
            if set.revents(slot) != 0 {
                read_header(&mut self.pending[k]);
            }
            let p = &self.pending[k];
            if p.header.len() < HEADER_LEN && !p.closed && p.since.elapsed() < HEADER_WAIT {
                continue;
            }
            let p = self.pending.remove(k);
            match p.header.as_slice().try_into().ok().and_then(Header::decode) {
                Some(header) => ready.push((header, p.fd)),
                None => {
                    crate::logging::debug("preserved fds' relay: a stream without a good header, dropped")
                }
            }
        }
        if self.accept_slot.take().is_some_and(|s| set.revents(s) != 0) {
            while let Some(fd) = accept(self.listener.as_raw_fd()) {
                if self.pending.len() >= MAX_PENDING {
                    crate::logging::debug(
                        "preserved fds' relay: too many streams without a header; dropped one",
                    );
                    continue;
                }
                self.pending.push(Pending { fd, header: Vec::new(), since: Instant::now(), closed: false });
            }
        }
        ready
    }
}

/// One connection from a listening socket, non-blocking and close-on-exec; None when there
/// is none now.
pub fn accept(fd: RawFd) -> Option<OwnedFd> {
    // SAFETY: accept4 with null address pointers; the fd it returns is new and ours.
    let new = unsafe {
        libc::accept4(
            fd,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    // SAFETY: `new` is a fresh descriptor owned by nothing else.
    (new >= 0).then(|| unsafe { OwnedFd::from_raw_fd(new) })
}

fn read_header(p: &mut Pending) {
    let mut buf = [0u8; HEADER_LEN];
    let want = HEADER_LEN - p.header.len();
    // SAFETY: reads at most `want` (<= HEADER_LEN) bytes into `buf`.
    let n = unsafe { libc::recv(p.fd.as_raw_fd(), buf.as_mut_ptr().cast(), want, libc::MSG_DONTWAIT) };
    if n > 0 {
        p.header.extend_from_slice(&buf[..n as usize]);
    } else if n == 0 {
        p.closed = true;
    }
}
