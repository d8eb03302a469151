//! The VMM's side: the preserved fds, taken before the VMM closes what it inherited, and a
//! thread of the jailed VMM that accepts the guest relay's streams (on the vsock's unix socket
//! for [`PORT`](super::PORT)), pairs each with its fd, accepts the clients of a preserved
//! listener and asks the guest for a stream for each, and pumps, until the VMM ends.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::time::Duration;

use super::incoming::{accept, Incoming};
use super::pump::{End, Pair, PollSet};
use super::{Header, Kind, Preserved, Role};

/// How long the VMM holds the workload's exit status back for the guest's last bytes on the
/// preserved fds to be written (the agent waits for the host's Ack before powering off).
pub const DRAIN_WAIT: Duration = Duration::from_secs(5);
/// At most this many accepted clients of one listener wait for the guest's stream: past it
/// they wait in the kernel's backlog, so a guest that never answers cannot make the VMM hold
/// descriptors without end.
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

impl HostRelay {
    /// The thread's life; it ends with the VMM's process.
    pub fn run(self) {
        let HostRelay { listener, taken, drained } = self;
        let mut drained = Some(drained);
        let mut incoming = Incoming::new(OwnedFd::from(listener));
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
        let mut streams: Vec<Pair> = Vec::new();
        let mut clients: Vec<Pair> = Vec::new();
        loop {
            clients.retain(|p| !p.finished());
            if drained.is_some() && drained_now(&waiting, &streams) {
                drained = None;
            }
            let mut set = PollSet::default();
            incoming.register(&mut set);
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
            if let Err(e) = set.wait(incoming.timeout()) {
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
            // New streams from the guest, each joining its fd.
            for (header, fd) in incoming.service(&set) {
                match header.role {
                    Role::Stream => match waiting.iter().position(|t| t.preserved.index == header.index) {
                        Some(w) => streams.push(stream_pair(waiting.remove(w), fd)),
                        None => crate::logging::debug(&format!(
                            "the preserved fds' relay: a second stream for fd {}, dropped",
                            3 + header.index
                        )),
                    },
                    Role::Control => {
                        if let Some(l) = listeners.iter_mut().find(|l| l.index == header.index) {
                            l.control = Some(fd);
                        }
                    }
                    Role::Client => {
                        let client = listeners
                            .iter_mut()
                            .find(|l| l.index == header.index)
                            .and_then(|l| l.clients.pop_front());
                        if let Some(client) = client {
                            clients.push(Pair::new(End::own(client, true), End::own(fd, true), true, true));
                        }
                    }
                }
            }
        }
    }
}

/// Every preserved fd the guest writes has its stream, and each stream's bytes toward the host
/// have ended and been written.
fn drained_now(waiting: &[Taken], streams: &[Pair]) -> bool {
    !waiting.iter().any(|t| t.preserved.kind != Kind::Read) && streams.iter().all(|p| p.done_into(0))
}

/// A preserved fd and its stream to the guest: end 0 the caller's fd, end 1 the stream.
fn stream_pair(t: Taken, stream: OwnedFd) -> Pair {
    let kind = t.preserved.kind;
    Pair::new(End::shared(t.fd, t.socket), End::own(stream, true), kind != Kind::Write, kind != Kind::Read)
}

/// An exec's preserved fds, relayed by the host process that stands for the exec'd process
/// (`crate::vm::backend::standin`): it opens every stream itself with `open` (through the
/// VMM's socket, to the port of the guest relay that serves the exec), one per fd and one per
/// client a preserved listener accepts. Runs until the process ends; `drained` is closed, as
/// for the VMM's relay, once every stream toward the host is done.
pub fn run_opening(
    taken: Vec<Taken>,
    open: impl Fn(Header) -> Result<OwnedFd, String>,
    drained: OwnedFd,
) -> Result<(), String> {
    let mut drained = Some(drained);
    let mut streams = Vec::new();
    let mut listeners = Vec::new();
    for t in taken {
        match t.preserved.kind {
            Kind::Listen(_) => listeners.push(t),
            _ => {
                let stream = open(Header { index: t.preserved.index, role: Role::Stream })?;
                streams.push(stream_pair(t, stream));
            }
        }
    }
    let mut clients: Vec<Pair> = Vec::new();
    loop {
        clients.retain(|p| !p.finished());
        if drained.is_some() && drained_now(&[], &streams) {
            drained = None;
        }
        let mut set = PollSet::default();
        let slots: Vec<usize> = listeners.iter().map(|l| set.add(l.fd.as_raw_fd(), libc::POLLIN)).collect();
        for p in streams.iter_mut().chain(clients.iter_mut()) {
            p.register(&mut set);
        }
        set.wait(None).map_err(|e| format!("poll: {e}"))?;
        for p in streams.iter_mut().chain(clients.iter_mut()) {
            p.service(&set);
        }
        for (l, slot) in listeners.iter().zip(slots) {
            if set.revents(slot) == 0 {
                continue;
            }
            if let Some(client) = accept(l.fd.as_raw_fd()) {
                match open(Header { index: l.preserved.index, role: Role::Client }) {
                    Ok(stream) => {
                        clients.push(Pair::new(End::own(client, true), End::own(stream, true), true, true))
                    }
                    Err(e) => {
                        crate::logging::warn(&format!("preserved fd {}: a client: {e}", l.preserved.fd()))
                    }
                }
            }
        }
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
