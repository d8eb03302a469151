//! The guest's side: the workload's descriptors, made by the agent before the container (the
//! native create hands fds 3..3+N of its caller to the init), and the relay process the agent
//! forks once the container exists, which holds the other ends and carries them to the host.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixSocketAddr, UnixListener, UnixStream};

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

use super::pump::{set_nonblocking, End, Pair, PollSet};
use super::{Family, Header, Kind, Preserved, Role, PORT};
use crate::agent::console;

/// How long the relay gets, once the workload ended, to send the host what it wrote last.
const FLUSH_WAIT: Duration = Duration::from_secs(3);

/// The workload's descriptors and the relay's, before the relay runs.
pub struct GuestFds {
    /// The workload's, by index.
    theirs: Vec<(u32, OwnedFd)>,
    ours: Vec<Ours>,
    /// The workload's range is 3..3+count.
    count: u32,
}

enum Ours {
    /// The relay's end of the pipe or socketpair whose other end the workload has.
    Stream { index: u32, kind: Kind, fd: OwnedFd },
    /// Where the workload's listener is: the relay connects there for each client.
    Listener { index: u32, addr: GuestAddr },
}

/// Where the workload's listener is.
#[derive(Clone)]
enum GuestAddr {
    /// An abstract unix name.
    Unix(String),
    Inet(std::net::SocketAddr),
}

/// Makes a descriptor of each preserved fd's kind for the workload, and the relay's end.
pub fn make(preserved: &[Preserved]) -> anyhow::Result<GuestFds> {
    let mut fds = GuestFds { theirs: Vec::new(), ours: Vec::new(), count: 0 };
    for p in preserved {
        let what = || format!("the guest's side of preserved fd {}", p.fd());
        let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).with_context(what);
        match p.kind {
            Kind::Read => {
                let (r, w) = pipe()?;
                fds.theirs.push((p.index, r));
                fds.ours.push(Ours::Stream { index: p.index, kind: p.kind, fd: w });
            }
            Kind::Write => {
                let (r, w) = pipe()?;
                fds.theirs.push((p.index, w));
                fds.ours.push(Ours::Stream { index: p.index, kind: p.kind, fd: r });
            }
            Kind::ReadWrite => {
                let (a, b) = socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC)
                    .with_context(what)?;
                fds.theirs.push((p.index, a));
                fds.ours.push(Ours::Stream { index: p.index, kind: p.kind, fd: b });
            }
            Kind::Listen(family) => {
                let (listener, addr) = guest_listener(p.index, family).with_context(what)?;
                fds.theirs.push((p.index, listener));
                fds.ours.push(Ours::Listener { index: p.index, addr });
            }
        }
        fds.count = fds.count.max(p.index + 1);
    }
    Ok(fds)
}

/// A listener of `family` only the guest can reach: loopback on a port the kernel picks, or
/// an abstract unix name.
fn guest_listener(index: u32, family: Family) -> anyhow::Result<(OwnedFd, GuestAddr)> {
    // std's listeners are close-on-exec, with a backlog of 128.
    Ok(match family {
        Family::Unix => {
            let name = format!("hull-preserved-fd-{}", 3 + index);
            let l = UnixListener::bind_addr(&UnixSocketAddr::from_abstract_name(name.as_bytes())?)?;
            (OwnedFd::from(l), GuestAddr::Unix(name))
        }
        Family::Inet | Family::Inet6 => {
            let ip: std::net::IpAddr = if family == Family::Inet {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            };
            let l = std::net::TcpListener::bind((ip, 0))?;
            let addr = l.local_addr()?;
            (OwnedFd::from(l), GuestAddr::Inet(addr))
        }
    })
}

impl GuestFds {
    /// How many fds past stdio the workload gets (native create's preserve_fds).
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Runs `make` (native create) with the workload's descriptors at 3..3+count of this
    /// process, a close-on-exec /dev/null at a number the host left free (so that nothing of
    /// the agent's sits in the range), and puts back what was there after.
    pub fn as_fds_of_the_caller<T>(&self, make: impl FnOnce() -> T) -> anyhow::Result<T> {
        let end = 3 + self.count as RawFd;
        let dup_high = |fd: RawFd| -> anyhow::Result<OwnedFd> {
            // SAFETY: F_DUPFD_CLOEXEC makes a new fd that only the returned OwnedFd owns.
            let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, end) };
            if new < 0 {
                return Err(std::io::Error::last_os_error()).context("dup");
            }
            // SAFETY: `new` is a fresh descriptor owned by nothing else.
            Ok(unsafe { OwnedFd::from_raw_fd(new) })
        };
        // Copies above the range first: an end may itself sit at a number in it.
        let theirs: Vec<(u32, OwnedFd)> = self
            .theirs
            .iter()
            .map(|(i, fd)| Ok((*i, dup_high(fd.as_raw_fd())?)))
            .collect::<anyhow::Result<_>>()?;
        let null = std::fs::File::open("/dev/null").context("/dev/null")?;
        let null = dup_high(null.as_raw_fd())?;
        let mut saved = Vec::new();
        for fd in 3..end {
            // SAFETY: F_GETFD only reads the flags of a number in this process's table.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
            if flags >= 0 {
                saved.push((fd, flags, dup_high(fd)?));
            }
        }
        for fd in 3..end {
            let index = (fd - 3) as u32;
            let (src, flags) = match theirs.iter().find(|(i, _)| *i == index) {
                Some((_, src)) => (src.as_raw_fd(), 0),
                None => (null.as_raw_fd(), libc::O_CLOEXEC),
            };
            // SAFETY: dup3 onto a number in the range, whose old fd (if any) is saved above.
            let rc = unsafe { libc::dup3(src, fd, flags) };
            if rc < 0 {
                bail!("placing preserved fd {fd}: {}", std::io::Error::last_os_error());
            }
        }
        let made = make();
        for fd in 3..end {
            match saved.iter().find(|(n, _, _)| *n == fd) {
                // SAFETY: dup2 puts the agent's own fd back at its number; F_SETFD restores
                // its close-on-exec flag.
                Some((_, flags, copy)) => unsafe {
                    libc::dup2(copy.as_raw_fd(), fd);
                    libc::fcntl(fd, libc::F_SETFD, *flags);
                },
                // SAFETY: closes the workload's copy this function put there.
                None => unsafe {
                    libc::close(fd);
                },
            }
        }
        Ok(made)
    }

    /// Forks the relay of a container's preserved fds, which opens a stream to the host for
    /// each; this process (PID 1) keeps only the handle: the workload's descriptors and the
    /// relay's ends are closed here, so an end of file reaches the other side once the
    /// workload (or the relay) lets go.
    pub fn start_relay(self) -> anyhow::Result<Running> {
        self.fork_relay(None, |ours, finish, _| relay(ours, finish))
    }

    /// Forks the relay of an exec'd process's preserved fds, which listens on a vsock port of
    /// its own (returned) for the streams the host's stand-in opens.
    pub fn start_serving(self) -> anyhow::Result<(Running, u32)> {
        let listener = crate::agent::vsock::listen(libc::VMADDR_PORT_ANY)?;
        let port = listener.port().context("the exec relay's vsock port")?;
        let listener = OwnedFd::from(listener);
        set_nonblocking(&listener)?;
        let running = self.fork_relay(Some(listener), |ours, finish, listener| match listener {
            Some(l) => serve(ours, finish, l),
            None => Ok(()),
        })?;
        Ok((running, port))
    }

    fn fork_relay(
        self,
        listener: Option<OwnedFd>,
        body: impl FnOnce(Vec<Ours>, OwnedFd, Option<OwnedFd>) -> anyhow::Result<()>,
    ) -> anyhow::Result<Running> {
        let (finish_r, finish_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe")?;
        let (done_r, done_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe")?;
        // SAFETY: the agent is single-threaded, so the child may run any code after fork.
        match unsafe { nix::unistd::fork() }.context("forking the preserved fds' relay")? {
            nix::unistd::ForkResult::Parent { child } => {
                Ok(Running { finish: finish_w, done: done_r, pid: child.as_raw() })
            }
            nix::unistd::ForkResult::Child => {
                drop((finish_w, done_r));
                let GuestFds { theirs, ours, .. } = self;
                drop(theirs);
                let mut keep: Vec<RawFd> = ours
                    .iter()
                    .filter_map(|o| match o {
                        Ours::Stream { fd, .. } => Some(fd.as_raw_fd()),
                        Ours::Listener { .. } => None,
                    })
                    .collect();
                keep.extend([finish_r.as_raw_fd(), done_w.as_raw_fd()]);
                keep.extend(listener.as_ref().map(AsRawFd::as_raw_fd));
                let code = match close_all_but(&keep).and_then(|()| body(ours, finish_r, listener)) {
                    Ok(()) => 0,
                    Err(e) => {
                        console::warn(&format!("the preserved fds' relay: {e:#}"));
                        1
                    }
                };
                drop(done_w);
                // SAFETY: _exit ends this forked copy without running PID 1's exit paths.
                unsafe { libc::_exit(code) }
            }
        }
    }
}

/// The relay process, from PID 1's side.
pub struct Running {
    /// Closed when the workload ended: the relay flushes and exits.
    finish: OwnedFd,
    /// End of file once the relay exited.
    done: OwnedFd,
    pid: i32,
}

impl Running {
    /// PID 1's descriptors of the relay, which a process it forks must close.
    pub fn fds(&self) -> [RawFd; 2] {
        [self.finish.as_raw_fd(), self.done.as_raw_fd()]
    }

    /// The workload ended: what it wrote last goes to the host, and the streams end, before
    /// its exit status does (bounded: [`FLUSH_WAIT`] and a second more).
    pub fn finish(self) {
        let Running { finish, done, pid } = self;
        drop(finish);
        let mut set = PollSet::default();
        set.add(done.as_raw_fd(), libc::POLLIN);
        let deadline = Instant::now() + FLUSH_WAIT + Duration::from_secs(1);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                console::warn("the preserved fds' relay did not finish in time; the last bytes may be lost");
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
                return;
            }
            match set.wait(Some(left)) {
                Ok(()) if set.revents(0) != 0 => return,
                Ok(()) => {}
                Err(_) => return,
            }
        }
    }
}

/// Closes every fd of this process but stdio and `keep`.
fn close_all_but(keep: &[RawFd]) -> anyhow::Result<()> {
    let entries = std::fs::read_dir("/proc/self/fd").context("listing /proc/self/fd")?;
    let fds: Vec<RawFd> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .filter(|fd| *fd > 2 && !keep.contains(fd))
        .collect();
    for fd in fds {
        // SAFETY: PID 1's descriptors in this forked copy of its table, never used here; the
        // read_dir handle is gone, so a stale number fails with EBADF and nothing else.
        unsafe { libc::close(fd) };
    }
    Ok(())
}

/// A stream to the host's relay, introduced by its header.
fn open_stream(index: u32, role: Role) -> anyhow::Result<OwnedFd> {
    let mut stream = crate::agent::vsock::connect(PORT)?;
    stream.write_all(&Header { index, role }.encode()).context("writing a relay stream's header")?;
    let fd = OwnedFd::from(stream);
    set_nonblocking(&fd)?;
    Ok(fd)
}

struct Control {
    index: u32,
    fd: OwnedFd,
    addr: GuestAddr,
}

/// The relay's life: a stream per fd, a control stream per listener, and a poll loop until
/// PID 1 says the workload ended.
fn relay(ours: Vec<Ours>, finish: OwnedFd) -> anyhow::Result<()> {
    // SAFETY: SIG_IGN for SIGPIPE in this process only: a reader gone is an error return.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let mut pairs = Vec::new();
    let mut controls = Vec::new();
    for o in ours {
        match o {
            Ours::Stream { index, kind, fd } => {
                let vsock = open_stream(index, Role::Stream)?;
                pairs.push(stream_pair(kind, fd, vsock)?);
            }
            Ours::Listener { index, addr } => {
                controls.push(Control { index, fd: open_stream(index, Role::Control)?, addr });
            }
        }
    }
    loop {
        pairs.retain(|p| !p.finished());
        let mut set = PollSet::default();
        let finish_slot = set.add(finish.as_raw_fd(), libc::POLLIN);
        let control_slots: Vec<usize> =
            controls.iter().map(|c| set.add(c.fd.as_raw_fd(), libc::POLLIN)).collect();
        for p in &mut pairs {
            p.register(&mut set);
        }
        set.wait(None).context("poll")?;
        if pump_or_flush(&mut pairs, &set, finish_slot) {
            return Ok(());
        }
        let mut gone = Vec::new();
        for (k, slot) in control_slots.into_iter().enumerate() {
            if set.revents(slot) == 0 {
                continue;
            }
            let mut requests = [0u8; 64];
            match nix::unistd::read(&controls[k].fd, &mut requests) {
                Ok(0) => gone.push(k),
                Ok(n) => {
                    for _ in 0..n {
                        match client(&controls[k]) {
                            Ok(pair) => pairs.push(pair),
                            Err(e) => console::warn(&format!(
                                "preserved fd {}: a client for the workload's listener: {e:#}",
                                3 + controls[k].index
                            )),
                        }
                    }
                }
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {}
                Err(_) => gone.push(k),
            }
        }
        for k in gone.into_iter().rev() {
            controls.remove(k);
        }
    }
}

/// One round of a relay's loop after poll: true when PID 1 said the process ended (its
/// `finish` pipe), after what it wrote went to the host and every stream was half-closed;
/// else the pairs move what poll said is ready.
fn pump_or_flush(pairs: &mut [Pair], set: &PollSet, finish_slot: usize) -> bool {
    if set.revents(finish_slot) != 0 {
        let deadline = Instant::now() + FLUSH_WAIT;
        for p in pairs.iter_mut() {
            p.drain_into(1, deadline);
        }
        return true;
    }
    for p in pairs.iter_mut() {
        p.service(set);
    }
    false
}

/// Our end of a preserved fd and its stream to the host: end 0 ours (toward the workload),
/// end 1 the host.
fn stream_pair(kind: Kind, ours: OwnedFd, vsock: OwnedFd) -> anyhow::Result<Pair> {
    set_nonblocking(&ours)?;
    let (to_host, to_guest) = match kind {
        Kind::Read => (false, true),
        Kind::Write => (true, false),
        _ => (true, true),
    };
    Ok(Pair::new(End::own(ours, kind == Kind::ReadWrite), End::own(vsock, true), to_host, to_guest))
}

/// An exec's relay: the host's stand-in opens a stream per fd and one per client its
/// listener accepted, on `listener`; until the exec'd process ended.
fn serve(ours: Vec<Ours>, finish: OwnedFd, listener: OwnedFd) -> anyhow::Result<()> {
    // SAFETY: SIG_IGN for SIGPIPE in this process only: a reader gone is an error return.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let mut incoming = super::incoming::Incoming::new(listener);
    let mut streams: Vec<(u32, Kind, OwnedFd)> = Vec::new();
    let mut listeners: Vec<(u32, GuestAddr)> = Vec::new();
    for o in ours {
        match o {
            Ours::Stream { index, kind, fd } => streams.push((index, kind, fd)),
            Ours::Listener { index, addr } => listeners.push((index, addr)),
        }
    }
    let mut pairs: Vec<Pair> = Vec::new();
    loop {
        pairs.retain(|p| !p.finished());
        let mut set = PollSet::default();
        let finish_slot = set.add(finish.as_raw_fd(), libc::POLLIN);
        incoming.register(&mut set);
        for p in &mut pairs {
            p.register(&mut set);
        }
        set.wait(incoming.timeout()).context("poll")?;
        if pump_or_flush(&mut pairs, &set, finish_slot) {
            return Ok(());
        }
        for (header, vsock) in incoming.service(&set) {
            let made = match header.role {
                Role::Stream => match streams.iter().position(|(i, _, _)| *i == header.index) {
                    Some(k) => {
                        let (_, kind, fd) = streams.remove(k);
                        stream_pair(kind, fd, vsock)
                    }
                    None => continue,
                },
                Role::Client => match listeners.iter().find(|(i, _)| *i == header.index) {
                    Some((_, addr)) => connect_local(addr)
                        .map(|local| Pair::new(End::own(local, true), End::own(vsock, true), true, true)),
                    None => continue,
                },
                Role::Control => continue,
            };
            match made {
                Ok(pair) => pairs.push(pair),
                Err(e) => console::warn(&format!("preserved fd {}: {e:#}", 3 + header.index)),
            }
        }
    }
}

/// A connection to the workload's listener, made in a client's stead.
fn connect_local(addr: &GuestAddr) -> anyhow::Result<OwnedFd> {
    let local = match addr {
        GuestAddr::Unix(name) => OwnedFd::from(
            UnixStream::connect_addr(&UnixSocketAddr::from_abstract_name(name.as_bytes())?)
                .context("connecting to the workload's listener")?,
        ),
        GuestAddr::Inet(addr) => OwnedFd::from(
            std::net::TcpStream::connect(addr).context("connecting to the workload's listener")?,
        ),
    };
    set_nonblocking(&local)?;
    Ok(local)
}

/// The host accepted a client on a listener: connect to the workload's listener in its stead
/// and pair that with a new stream to the host.
fn client(control: &Control) -> anyhow::Result<Pair> {
    let local = connect_local(&control.addr)?;
    let vsock = open_stream(control.index, Role::Client)?;
    Ok(Pair::new(End::own(local, true), End::own(vsock, true), true, true))
}
