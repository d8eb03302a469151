//! Moving bytes between two descriptors, one way or both, in a poll loop shared by every pair
//! a relay carries: one direction's slow reader never holds up another.
//!
//! A descriptor is either the relay's own (a vsock stream, its end of a guest pipe: O_NONBLOCK)
//! or the caller's (a host fd the container was given): the status flags of the caller's are
//! shared with whoever else holds it, so they stay as they are, and such a descriptor is read
//! once after poll said it has something, and written at most [`SHARED_WRITE`] bytes after
//! poll said it has room (what a pipe with room takes without blocking). Sockets are read and
//! written with MSG_DONTWAIT either way.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// At most this much waits in one direction: reading stops until it is written.
const CHUNK: usize = 64 * 1024;
/// One write to a descriptor that is not the relay's own: PIPE_BUF, which a pipe that polls
/// writable takes whole.
const SHARED_WRITE: usize = libc::PIPE_BUF;

/// One descriptor of a pair.
pub struct End {
    fd: Option<OwnedFd>,
    socket: bool,
    /// The caller's: see the module's comment.
    shared: bool,
}

impl End {
    /// The relay's own descriptor, already O_NONBLOCK.
    pub fn own(fd: OwnedFd, socket: bool) -> End {
        End { fd: Some(fd), socket, shared: false }
    }

    /// A descriptor the caller gave, whose flags stay as they are.
    pub fn shared(fd: OwnedFd, socket: bool) -> End {
        End { fd: Some(fd), socket, shared: true }
    }

    fn raw(&self) -> Option<RawFd> {
        self.fd.as_ref().map(AsRawFd::as_raw_fd)
    }
}

/// One direction: bytes read from `from` wait in `buf` to be written to `to`.
struct Flow {
    from: usize,
    to: usize,
    buf: Vec<u8>,
    /// `from` said end of file (or failed).
    eof: bool,
    /// All of it was written and `to` was told; or `to` failed and the rest has no reader.
    done: bool,
    read_slot: Option<usize>,
    write_slot: Option<usize>,
}

/// Two descriptors and the directions bytes move between them.
pub struct Pair {
    ends: [End; 2],
    flows: Vec<Flow>,
}

impl Pair {
    /// `forward`: from `a` to `b`; `backward`: from `b` to `a`.
    pub fn new(a: End, b: End, forward: bool, backward: bool) -> Pair {
        let flow = |from, to| Flow {
            from,
            to,
            buf: Vec::new(),
            eof: false,
            done: false,
            read_slot: None,
            write_slot: None,
        };
        let mut flows = Vec::new();
        if forward {
            flows.push(flow(0, 1));
        }
        if backward {
            flows.push(flow(1, 0));
        }
        Pair { ends: [a, b], flows }
    }

    /// Every direction has ended.
    pub fn finished(&self) -> bool {
        self.flows.iter().all(|f| f.done)
    }

    /// Every direction into end `to` has ended.
    pub fn done_into(&self, to: usize) -> bool {
        self.flows.iter().filter(|f| f.to == to).all(|f| f.done)
    }

    /// Adds what this pair waits for to `set`.
    pub fn register(&mut self, set: &mut PollSet) {
        for flow in &mut self.flows {
            flow.read_slot = None;
            flow.write_slot = None;
            if flow.done {
                continue;
            }
            if !flow.eof && flow.buf.len() < CHUNK {
                flow.read_slot = self.ends[flow.from].raw().map(|fd| set.add(fd, libc::POLLIN));
            }
            if !flow.buf.is_empty() {
                flow.write_slot = self.ends[flow.to].raw().map(|fd| set.add(fd, libc::POLLOUT));
            }
        }
    }

    /// Reads and writes what poll said is ready.
    pub fn service(&mut self, set: &PollSet) {
        for i in 0..self.flows.len() {
            if self.flows[i].read_slot.is_some_and(|s| set.revents(s) != 0) {
                self.read(i);
            }
            if self.flows[i].write_slot.is_some_and(|s| set.revents(s) != 0) {
                self.write(i);
            }
            self.settle(i);
        }
    }

    /// Everything `from` has now goes into end `to` and `to` is told the end, by `deadline`:
    /// for the relay's own descriptors, when the other side is gone (the workload ended).
    pub fn drain_into(&mut self, to: usize, deadline: Instant) {
        for i in 0..self.flows.len() {
            if self.flows[i].to != to || self.flows[i].done {
                continue;
            }
            loop {
                let before = self.flows[i].buf.len();
                if !self.flows[i].eof && before < CHUNK {
                    self.read(i);
                }
                let read_nothing = self.flows[i].buf.len() == before;
                if !self.flows[i].buf.is_empty() {
                    self.wait_writable(i, deadline);
                    self.write(i);
                }
                if self.flows[i].buf.is_empty() && (read_nothing || self.flows[i].eof) {
                    // Nothing more now: what comes later has nobody to wait for it.
                    self.flows[i].eof = true;
                }
                self.settle(i);
                if self.flows[i].done || Instant::now() >= deadline {
                    break;
                }
            }
        }
    }

    fn wait_writable(&self, i: usize, deadline: Instant) {
        let Some(fd) = self.ends[self.flows[i].to].raw() else { return };
        let mut set = PollSet::default();
        set.add(fd, libc::POLLOUT);
        let _ = set.wait(Some(deadline.saturating_duration_since(Instant::now())));
    }

    fn read(&mut self, i: usize) {
        let flow = &mut self.flows[i];
        let end = &self.ends[flow.from];
        let Some(fd) = end.raw() else {
            flow.eof = true;
            return;
        };
        let start = flow.buf.len();
        flow.buf.resize(CHUNK, 0);
        let room = &mut flow.buf[start..];
        // SAFETY: reads into `room`, a live buffer of room.len() bytes.
        let n = unsafe {
            if end.socket {
                libc::recv(fd, room.as_mut_ptr().cast(), room.len(), libc::MSG_DONTWAIT)
            } else {
                libc::read(fd, room.as_mut_ptr().cast(), room.len())
            }
        };
        let err = (n < 0).then(io::Error::last_os_error);
        flow.buf.truncate(start + n.max(0) as usize);
        match (n, err) {
            (0, _) => flow.eof = true,
            (_, Some(e)) if retry(&e) => {}
            (_, Some(_)) => flow.eof = true,
            _ => {}
        }
    }

    fn write(&mut self, i: usize) {
        let flow = &mut self.flows[i];
        let end = &self.ends[flow.to];
        let Some(fd) = end.raw() else {
            flow.buf.clear();
            flow.eof = true;
            flow.done = true;
            return;
        };
        loop {
            let len =
                if end.shared && !end.socket { flow.buf.len().min(SHARED_WRITE) } else { flow.buf.len() };
            if len == 0 {
                return;
            }
            // SAFETY: writes from the first `len` bytes of `buf`, which live for the call.
            let n = unsafe {
                if end.socket {
                    libc::send(fd, flow.buf.as_ptr().cast(), len, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
                } else {
                    libc::write(fd, flow.buf.as_ptr().cast(), len)
                }
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if !retry(&e) {
                    // The reader is gone (EPIPE, a reset): what is left, and what would come,
                    // has nobody to read it.
                    flow.buf.clear();
                    flow.eof = true;
                    flow.done = true;
                }
                return;
            }
            flow.buf.drain(..n as usize);
            // A shared descriptor gets one write per readiness; the relay's own take all.
            if end.shared || n == 0 {
                return;
            }
        }
    }

    /// A direction whose source ended and whose bytes are all out tells its destination: a
    /// socket is half-closed, any other descriptor closed once no direction uses it.
    fn settle(&mut self, i: usize) {
        let flow = &self.flows[i];
        if flow.done {
            self.close_unused();
            return;
        }
        if !(flow.eof && flow.buf.is_empty()) {
            return;
        }
        let to = flow.to;
        self.flows[i].done = true;
        let end = &self.ends[to];
        if let (true, Some(fd)) = (end.socket, end.raw()) {
            // SAFETY: shutdown on a socket this pair holds; no memory is involved.
            unsafe { libc::shutdown(fd, libc::SHUT_WR) };
        }
        self.close_unused();
    }

    /// Closes a non-socket descriptor that no live direction reads or writes (a pipe's
    /// reader sees end of file only once every writer is gone).
    fn close_unused(&mut self) {
        for e in 0..2 {
            let used = self.flows.iter().any(|f| !f.done && (f.from == e || f.to == e));
            if !used && !self.ends[e].socket {
                self.ends[e].fd = None;
            }
        }
    }
}

fn retry(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EINTR))
}

/// A poll(2) set built afresh for each round.
#[derive(Default)]
pub struct PollSet {
    fds: Vec<libc::pollfd>,
}

impl PollSet {
    pub fn add(&mut self, fd: RawFd, events: i16) -> usize {
        self.fds.push(libc::pollfd { fd, events, revents: 0 });
        self.fds.len() - 1
    }

    pub fn revents(&self, slot: usize) -> i16 {
        self.fds.get(slot).map_or(0, |p| p.revents)
    }

    /// Waits until something is ready or `timeout` passed (None: no limit); EINTR is a round
    /// with nothing ready.
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let ms = timeout.map_or(-1, |d| d.as_millis().saturating_add(1).min(i32::MAX as u128) as i32);
        // SAFETY: poll reads and writes `fds.len()` pollfd structs of a live Vec.
        let rc = unsafe { libc::poll(self.fds.as_mut_ptr(), self.fds.len() as libc::nfds_t, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                for p in &mut self.fds {
                    p.revents = 0;
                }
                return Ok(());
            }
            return Err(e);
        }
        Ok(())
    }
}

/// Sets O_NONBLOCK on a descriptor the relay owns.
pub fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL change only the flags of an fd this process owns.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    fn run_until(pairs: &mut [Pair], done: impl Fn(&[Pair]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done(pairs) {
            assert!(Instant::now() < deadline, "the pump did not finish");
            let mut set = PollSet::default();
            for p in pairs.iter_mut() {
                p.register(&mut set);
            }
            set.wait(Some(Duration::from_millis(100))).unwrap();
            for p in pairs.iter_mut() {
                p.service(&set);
            }
        }
    }

    #[test]
    fn a_pipe_reaches_a_socket_and_its_end_becomes_a_half_close() {
        let (r, mut w) = {
            let (r, w) = nix::unistd::pipe().unwrap();
            (r, std::fs::File::from(w))
        };
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        let writer = std::thread::spawn(move || {
            w.write_all(&sent).unwrap();
        });
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            theirs.read_to_end(&mut got).unwrap();
            got
        });
        let mut pairs = [Pair::new(End::shared(r, false), End::own(OwnedFd::from(ours), true), true, false)];
        run_until(&mut pairs, |p| p[0].finished());
        writer.join().unwrap();
        assert_eq!(reader.join().unwrap(), data);
    }

    #[test]
    fn both_ways_on_sockets_and_a_reader_that_left_ends_its_direction() {
        let (a, mut a_peer) = UnixStream::pair().unwrap();
        let (b, mut b_peer) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        a_peer.write_all(b"to b").unwrap();
        b_peer.write_all(b"to a").unwrap();
        a_peer.shutdown(std::net::Shutdown::Write).unwrap();
        b_peer.shutdown(std::net::Shutdown::Write).unwrap();
        let mut pairs =
            [Pair::new(End::own(OwnedFd::from(a), true), End::own(OwnedFd::from(b), true), true, true)];
        run_until(&mut pairs, |p| p[0].finished());
        let (mut x, mut y) = (String::new(), String::new());
        b_peer.read_to_string(&mut x).unwrap();
        a_peer.read_to_string(&mut y).unwrap();
        assert_eq!((x.as_str(), y.as_str()), ("to b", "to a"));
        // A pipe whose reader is gone: the direction ends instead of spinning.
        let (src, mut src_peer) = UnixStream::pair().unwrap();
        src.set_nonblocking(true).unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        drop(r);
        src_peer.write_all(b"nobody reads this").unwrap();
        let mut pairs = [Pair::new(End::own(OwnedFd::from(src), true), End::shared(w, false), true, false)];
        run_until(&mut pairs, |p| p[0].finished());
    }
}
