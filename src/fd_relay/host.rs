//! The VMM's side: the preserved fds, taken before the VMM closes what it inherited, and a
//! thread of the jailed VMM that accepts the guest relay's streams (on the vsock's unix socket
//! for [`PORT`](super::PORT)), pairs each with its fd, accepts the clients of a preserved
//! listener and asks the guest for a stream for each, and pumps, until the VMM ends.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use super::pump::{End, Pair, PollSet};
use super::{Header, Kind, Preserved, Role, HEADER_LEN};

/// How long the VMM holds the workload's exit status back for the guest's last bytes on the
/// preserved fds to be written (the agent waits for the host's Ack before powering off).
pub const DRAIN_WAIT: Duration = Duration::from_secs(5);
/// How long a new stream has to send its header.
const HEADER_WAIT: Duration = Duration::from_secs(10);
/// At most this many streams wait for their header, and this many accepted clients of one
/// listener wait for the guest's stream: a guest that opens streams and says nothing, or never
/// answers the requests, cannot make the VMM hold descriptors without end.
const MAX_PENDING: usize = 64;
const MAX_WAITING_CLIENTS: usize = 128;

/// A preserved fd, moved out of the range the VMM closes.
pub struct Taken {
    preserved: Preserved,
    fd: OwnedFd,
    socket: bool,
}

/// Copies each preserved fd (3+index, as `hull create` left it) to a close-on-exec number of
/// the VMM's own, before the VMM closes the inherited ones.
pub fn take(preserved: &[Preserved]) -> Result<Vec<Taken>, String> {
    preserved
        .iter()
        .map(|p| {
            // SAFETY: F_DUPFD_CLOEXEC makes a new fd that only the OwnedFd below owns.
            let fd = unsafe { libc::fcntl(p.fd(), libc::F_DUPFD_CLOEXEC, 3) };
            if fd < 0 {
                return Err(format!("preserved fd {}: {}", p.fd(), std::io::Error::last_os_error()));
            }
            // SAFETY: `fd` is a fresh descriptor owned by nothing else.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            let socket = nix::sys::stat::fstat(&fd)
                .map(|s| s.st_mode & libc::S_IFMT == libc::S_IFSOCK)
                .map_err(|e| format!("preserved fd {}: fstat: {e}", p.fd()))?;
            Ok(Taken { preserved: *p, fd, socket })
        })
        .collect()
}

/// The fds `take` made, for the list of those the VMM keeps.
pub fn raw_fds(taken: &[Taken]) -> Vec<RawFd> {
    taken.iter().map(|t| t.fd.as_raw_fd()).collect()
}

/// The relay thread's state; `drained` is the write end of a pipe closed once every stream
/// toward the host ended and its bytes were written.
pub struct HostRelay {
    listener: UnixListener,
    taken: Vec<Taken>,
    drained: OwnedFd,
}

/// The relay, and the read end of its `drained` pipe (readable, at end of file, once every
/// stream toward the host is done). `listener`: the vsock's unix socket for the relay's port.
pub fn relay(taken: Vec<Taken>, listener: UnixListener) -> Result<(HostRelay, OwnedFd), String> {
    listener.set_nonblocking(true).map_err(|e| format!("the preserved fds' listener: {e}"))?;
    let (drained_r, drained_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    Ok((HostRelay { listener, taken, drained: drained_w }, drained_r))
}

/// A preserved listener: the clients it accepted wait for the guest's stream for each.
struct Listener {
    index: u32,
    fd: OwnedFd,
    control: Option<OwnedFd>,
    clients: VecDeque<OwnedFd>,
    /// Requests not yet written to the control stream.
    owed: usize,
}

/// A stream from the guest whose header is not in yet.
struct Pending {
    fd: OwnedFd,
    header: Vec<u8>,
    since: Instant,
    /// Closed before its header was in.
    closed: bool,
}

impl HostRelay {
    /// The thread's life; it ends with the VMM's process.
    pub fn run(self) {
        let HostRelay { listener, taken, drained } = self;
        let mut drained = Some(drained);
        let mut waiting: Vec<Taken> = Vec::new();
        let mut listeners = Vec::new();
        for t in taken {
            match t.preserved.kind {
                Kind::Listen(_) => listeners.push(Listener {
                    index: t.preserved.index,
                    fd: t.fd,
                    control: None,
                    clients: VecDeque::new(),
                    owed: 0,
                }),
                _ => waiting.push(t),
            }
        }
        let mut pending: Vec<Pending> = Vec::new();
        let mut streams: Vec<Pair> = Vec::new();
        let mut clients: Vec<Pair> = Vec::new();
        loop {
            clients.retain(|p| !p.finished());
            let toward_host_waits = waiting.iter().any(|t| t.preserved.kind != Kind::Read);
            if drained.is_some() && !toward_host_waits && streams.iter().all(|p| p.done_into(0)) {
                drained = None;
            }
            let mut set = PollSet::default();
            let accept_slot = set.add(listener.as_raw_fd(), libc::POLLIN);
            let pending_slots: Vec<usize> =
                pending.iter().map(|p| set.add(p.fd.as_raw_fd(), libc::POLLIN)).collect();
            let listener_slots: Vec<(Option<usize>, Option<usize>)> = listeners
                .iter()
                .map(|l| match &l.control {
                    Some(c) => {
                        let events = if l.owed > 0 { libc::POLLIN | libc::POLLOUT } else { libc::POLLIN };
                        // Past the limit, clients wait in the kernel's backlog instead.
                        let accepting = (l.clients.len() < MAX_WAITING_CLIENTS)
                            .then(|| set.add(l.fd.as_raw_fd(), libc::POLLIN));
                        (accepting, Some(set.add(c.as_raw_fd(), events)))
                    }
                    None => (None, None),
                })
                .collect();
            for p in streams.iter_mut().chain(clients.iter_mut()) {
                p.register(&mut set);
            }
            let timeout = (!pending.is_empty()).then_some(Duration::from_secs(1));
            if let Err(e) = set.wait(timeout) {
                crate::logging::error(&format!("vm container: the preserved fds' relay: poll: {e}"));
                return;
            }
            for p in streams.iter_mut().chain(clients.iter_mut()) {
                p.service(&set);
            }
            for (k, (listen_slot, control_slot)) in listener_slots.into_iter().enumerate() {
                let l = &mut listeners[k];
                if listen_slot.is_some_and(|s| set.revents(s) != 0) {
                    if let Some(client) = accept(l.fd.as_raw_fd()) {
                        l.clients.push_back(client);
                        l.owed += 1;
                    }
                }
                if control_slot.is_some_and(|s| set.revents(s) != 0) {
                    serve_control(l);
                }
            }
            // Headers of new streams; each then joins its fd.
            for (k, slot) in pending_slots.into_iter().enumerate().rev() {
                if set.revents(slot) != 0 {
                    read_header(&mut pending[k]);
                }
                let p = &pending[k];
                if p.header.len() < HEADER_LEN && !p.closed && p.since.elapsed() < HEADER_WAIT {
                    continue;
                }
                let p = pending.remove(k);
                let Some(header) = p.header.as_slice().try_into().ok().and_then(Header::decode) else {
                    crate::logging::debug(
                        "the preserved fds' relay: a stream without a good header, dropped",
                    );
                    continue;
                };
                match header.role {
                    Role::Stream => match waiting.iter().position(|t| t.preserved.index == header.index) {
                        Some(w) => {
                            let t = waiting.remove(w);
                            let kind = t.preserved.kind;
                            // End 0: the caller's fd; end 1: the guest.
                            streams.push(Pair::new(
                                End::shared(t.fd, t.socket),
                                End::own(p.fd, true),
                                kind != Kind::Write,
                                kind != Kind::Read,
                            ));
                        }
                        None => crate::logging::debug(&format!(
                            "the preserved fds' relay: a second stream for fd {}, dropped",
                            3 + header.index
                        )),
                    },
                    Role::Control => {
                        if let Some(l) = listeners.iter_mut().find(|l| l.index == header.index) {
                            l.control = Some(p.fd);
                        }
                    }
                    Role::Client => {
                        let client = listeners
                            .iter_mut()
                            .find(|l| l.index == header.index)
                            .and_then(|l| l.clients.pop_front());
                        if let Some(client) = client {
                            clients.push(Pair::new(End::own(client, true), End::own(p.fd, true), true, true));
                        }
                    }
                }
            }
            if set.revents(accept_slot) != 0 {
                while let Some(fd) = accept(listener.as_raw_fd()) {
                    if pending.len() >= MAX_PENDING {
                        crate::logging::debug(
                            "the preserved fds' relay: too many streams without a header; dropped one",
                        );
                        continue;
                    }
                    pending.push(Pending { fd, header: Vec::new(), since: Instant::now(), closed: false });
                }
            }
        }
    }
}

/// One connection from a listening socket, non-blocking and close-on-exec; None when there
/// is none now.
fn accept(fd: RawFd) -> Option<OwnedFd> {
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

/// A listener's control stream: requests out (one byte per client waiting), and its end.
fn serve_control(l: &mut Listener) {
    let Some(control) = &l.control else { return };
    if l.owed > 0 {
        let bytes = [b'c'; 64];
        let n = l.owed.min(bytes.len());
        // SAFETY: sends from a live buffer of at least `n` bytes.
        let sent = unsafe {
            libc::send(control.as_raw_fd(), bytes.as_ptr().cast(), n, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
        };
        if sent > 0 {
            l.owed -= sent as usize;
        }
    }
    let mut buf = [0u8; 16];
    // SAFETY: reads into a live buffer of buf.len() bytes.
    let n =
        unsafe { libc::recv(control.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
    if n == 0
        || (n < 0
            && !matches!(std::io::Error::last_os_error().raw_os_error(), Some(libc::EAGAIN | libc::EINTR)))
    {
        // The guest's relay is gone: nobody will take these clients.
        l.control = None;
        l.clients.clear();
        l.owed = 0;
    }
}
