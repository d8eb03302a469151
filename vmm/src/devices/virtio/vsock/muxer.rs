//! The connection table: routes guest packets to connections, host events to connections, and
//! collects what the guest is owed into one rx queue.
//!
//! The muxer never touches epoll itself. Each change to a connection marks its fd; the device
//! then calls [`Muxer::sync_epoll`] with the event manager's ops, which adds, modifies or
//! removes exactly what changed, and closes streams only after they left the epoll set.

use std::collections::{HashMap, HashSet, VecDeque};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use event_manager::EventSet;

use super::connection::{ConnKey, Connection, RxPacket, Verdict, HOST_BUF_SIZE};
use super::packet::{op, Header, HOST_CID, TYPE_STREAM};
use super::unix::{self, ConnectLine, ConnectProgress, HostListener};
use super::Error;

/// Open streams at most, both directions together; more are refused with RST (guest) or a
/// closed socket (host).
pub const MAX_CONNECTIONS: usize = 1024;
/// Host clients that have not finished their CONNECT line.
const MAX_HANDSHAKES: usize = 64;
/// Host ports for host-initiated connections are picked from here up, far from the ports
/// host services listen on, so that a guest connecting to those never collides.
const FIRST_HOST_PORT: u32 = 1 << 30;
/// RST packets waiting for rx buffers. A guest that floods unknown ports without giving rx
/// buffers loses the RSTs past this; each is only an answer to its own bad packet.
pub(super) const MAX_QUEUED_RESETS: usize = 4096;
/// Items in the rx queue at most. A connection that ends leaves its item behind, to be skipped
/// when it comes up; a guest that opens and resets connections (or repeats a REQUEST, which
/// resets the connection it names) without posting rx buffers would grow the queue with those
/// for ever. Live items are at most MAX_QUEUED_RESETS resets and one per connection, so past
/// this many the queue is compacted ([`Muxer::drop_stale_rx_items`]), which frees at least
/// half of it: its cost spreads over the pushes that filled it.
pub(super) const MAX_RX_ITEMS: usize = 2 * (MAX_QUEUED_RESETS + MAX_CONNECTIONS);

/// An epoll change for the device to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpollChange {
    Add(RawFd, EventSet),
    Modify(RawFd, EventSet),
    Remove(RawFd),
}

enum RxItem {
    /// The connection owes the guest something; it builds the packet when a buffer is there.
    Conn(ConnKey),
    /// A ready RST.
    Reset(Header),
}

/// A host client still sending its `CONNECT <port>\n`.
struct Handshake {
    stream: UnixStream,
    line: ConnectLine,
}

pub struct Muxer {
    guest_cid: u64,
    listener: HostListener,
    conns: HashMap<ConnKey, Connection>,
    by_fd: HashMap<RawFd, ConnKey>,
    handshakes: HashMap<RawFd, Handshake>,
    rx_queue: VecDeque<RxItem>,
    /// Connections with an item in `rx_queue`.
    queued: HashSet<ConnKey>,
    resets_queued: usize,
    /// What each fd is registered for in epoll now.
    registered: HashMap<RawFd, EventSet>,
    /// Fds whose interest may have changed since the last sync.
    touched: Vec<RawFd>,
    /// Streams to take out of epoll, then close.
    closing: Vec<UnixStream>,
    next_host_port: u32,
}

impl Muxer {
    pub fn new(guest_cid: u64, uds_path: &Path) -> Result<Muxer, Error> {
        Ok(Muxer {
            guest_cid,
            listener: HostListener::bind(uds_path)?,
            conns: HashMap::new(),
            by_fd: HashMap::new(),
            handshakes: HashMap::new(),
            rx_queue: VecDeque::new(),
            queued: HashSet::new(),
            resets_queued: 0,
            registered: HashMap::new(),
            touched: Vec::new(),
            closing: Vec::new(),
            next_host_port: FIRST_HOST_PORT,
        })
    }

    pub fn listener(&self) -> &HostListener {
        &self.listener
    }

    fn uds_path(&self) -> PathBuf {
        self.listener.path().to_owned()
    }

    /// The number of open connections (not counting host clients mid-handshake).
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Takes every pending host client; each must send its CONNECT line next.
    pub fn accept_host_clients(&mut self) {
        // An accept error (say, out of fds) leaves the client in the backlog for the next try.
        while let Ok(Some(stream)) = self.listener.accept() {
            if self.handshakes.len() >= MAX_HANDSHAKES || self.conns.len() >= MAX_CONNECTIONS {
                continue; // dropped: the client sees its socket closed
            }
            let fd = stream.as_raw_fd();
            self.handshakes.insert(fd, Handshake { stream, line: ConnectLine::default() });
            self.touched.push(fd);
        }
    }

    /// Epoll reported `events` on `fd`, a connection's or a handshaking client's stream.
    pub fn on_host_event(&mut self, fd: RawFd, events: EventSet) {
        if let Some(&key) = self.by_fd.get(&fd) {
            if let Some(conn) = self.conns.get_mut(&key) {
                let verdict = conn.on_host_event(events);
                self.settle(key, verdict);
            }
        } else if self.handshakes.contains_key(&fd) {
            self.continue_handshake(fd);
        }
    }

    fn continue_handshake(&mut self, fd: RawFd) {
        let Some(handshake) = self.handshakes.get_mut(&fd) else { return };
        let progress = handshake.line.read_from(&mut handshake.stream);
        if progress == ConnectProgress::Incomplete {
            return;
        }
        let Some(Handshake { stream, .. }) = self.handshakes.remove(&fd) else { return };
        let ConnectProgress::Port(guest_port) = progress else {
            self.closing.push(stream);
            return;
        };
        let Some(local_port) = self.allocate_host_port(guest_port) else {
            self.closing.push(stream);
            return;
        };
        let key = ConnKey { local_port, peer_port: guest_port };
        self.by_fd.insert(fd, key);
        self.conns.insert(key, Connection::host_initiated(stream, key, self.guest_cid));
        self.settle(key, Verdict::Keep);
    }

    /// A host port not in use with `peer_port`; `None` when the table is full.
    fn allocate_host_port(&mut self, peer_port: u32) -> Option<u32> {
        if self.conns.len() >= MAX_CONNECTIONS {
            return None;
        }
        // Fewer than MAX_CONNECTIONS keys are taken, so this ends within that many steps.
        loop {
            let port = self.next_host_port;
            self.next_host_port = port.checked_add(1).unwrap_or(FIRST_HOST_PORT);
            if !self.conns.contains_key(&ConnKey { local_port: port, peer_port }) {
                return Some(port);
            }
        }
    }

    /// Whether an RW packet must stay on the tx queue until its connection's unix stream takes
    /// some of what is buffered. Only a guest sending past its credit ever waits.
    pub fn must_wait(&self, hdr: &Header) -> bool {
        hdr.op == op::RW
            && hdr.src_cid == self.guest_cid
            && self.conns.get(&guest_key(hdr)).is_some_and(|conn| !conn.has_room_for(hdr.len))
    }

    /// A packet the guest put on the tx queue.
    pub fn on_guest_packet(&mut self, hdr: &Header, payload: &[u8]) {
        if hdr.src_cid != self.guest_cid {
            // Not from the guest's address: there is no one sane to answer.
            return;
        }
        if hdr.dst_cid != HOST_CID || hdr.type_ != TYPE_STREAM {
            self.refuse(hdr);
            return;
        }
        let key = guest_key(hdr);
        if let Some(conn) = self.conns.get_mut(&key) {
            let verdict = conn.on_guest_packet(hdr, payload);
            self.settle(key, verdict);
            return;
        }
        match hdr.op {
            op::REQUEST => self.connect_guest(key, hdr),
            op::RST => {}
            _ => self.refuse(hdr),
        }
    }

    /// A packet whose payload could not be read: its stream has a hole now, so reset it.
    pub fn on_bad_packet(&mut self, hdr: &Header) {
        if hdr.src_cid == self.guest_cid && self.conns.contains_key(&guest_key(hdr)) {
            self.settle(guest_key(hdr), Verdict::Reset);
        }
    }

    /// A packet built for the guest (`hdr`) could not be written to its rx buffer.
    pub fn on_lost_rx_packet(&mut self, hdr: &Header) {
        let key = ConnKey { local_port: hdr.src_port, peer_port: hdr.dst_port };
        if self.conns.contains_key(&key) {
            self.settle(key, Verdict::Reset);
        }
    }

    /// The guest connects to host port `key.local_port`: the unix socket `<uds_path>_<port>`.
    fn connect_guest(&mut self, key: ConnKey, request: &Header) {
        if self.conns.len() >= MAX_CONNECTIONS {
            self.refuse(request);
            return;
        }
        match unix::connect_to_host_port(&self.uds_path(), key.local_port) {
            Ok(stream) => {
                self.by_fd.insert(stream.as_raw_fd(), key);
                self.conns.insert(key, Connection::guest_initiated(stream, key, self.guest_cid, request));
                self.settle(key, Verdict::Keep);
            }
            // Nothing listens there (or it cannot take more): connection refused.
            Err(_) => self.refuse(request),
        }
    }

    /// Answers a packet that belongs to no connection with RST (never an RST with an RST).
    fn refuse(&mut self, hdr: &Header) {
        if hdr.op == op::RST {
            return;
        }
        self.queue_reset(Header {
            src_cid: hdr.dst_cid,
            dst_cid: hdr.src_cid,
            src_port: hdr.dst_port,
            dst_port: hdr.src_port,
            type_: hdr.type_,
            op: op::RST,
            ..Header::default()
        });
    }

    fn queue_reset(&mut self, hdr: Header) {
        if self.resets_queued < MAX_QUEUED_RESETS {
            self.resets_queued += 1;
            self.push_rx(RxItem::Reset(hdr));
        }
    }

    /// Applies a connection's verdict: keep it (and queue it if it owes the guest something),
    /// reset it, or drop it. A kept connection with nothing left to carry is reset.
    fn settle(&mut self, key: ConnKey, verdict: Verdict) {
        let Some(conn) = self.conns.get(&key) else { return };
        let verdict = if verdict == Verdict::Keep && conn.is_finished() { Verdict::Reset } else { verdict };
        match verdict {
            Verdict::Keep => {
                self.touched.push(conn.stream().as_raw_fd());
                if conn.owes_guest() && self.queued.insert(key) {
                    self.push_rx(RxItem::Conn(key));
                }
            }
            Verdict::Reset | Verdict::Closed => {
                if let Some(conn) = self.conns.remove(&key) {
                    self.by_fd.remove(&conn.stream().as_raw_fd());
                    self.queued.remove(&key);
                    self.closing.push(conn.into_stream());
                }
                if verdict == Verdict::Reset {
                    self.queue_reset(Header {
                        src_cid: HOST_CID,
                        dst_cid: self.guest_cid,
                        src_port: key.local_port,
                        dst_port: key.peer_port,
                        type_: TYPE_STREAM,
                        op: op::RST,
                        buf_alloc: HOST_BUF_SIZE,
                        ..Header::default()
                    });
                }
            }
        }
    }

    fn push_rx(&mut self, item: RxItem) {
        self.rx_queue.push_back(item);
        if self.rx_queue.len() > MAX_RX_ITEMS {
            self.drop_stale_rx_items();
        }
    }

    /// Takes out of the rx queue the items of connections that ended: those whose key is not
    /// queued, and for a key that is, every item after its first (left from an earlier
    /// connection with the same key; the first is the one the key is served at).
    fn drop_stale_rx_items(&mut self) {
        let queued = &self.queued;
        let mut kept = HashSet::new();
        self.rx_queue.retain(|item| match item {
            RxItem::Reset(_) => true,
            RxItem::Conn(key) => queued.contains(key) && kept.insert(*key),
        });
    }

    /// The items waiting in the rx queue, stale ones included.
    #[cfg(test)]
    pub fn rx_queue_len(&self) -> usize {
        self.rx_queue.len()
    }

    /// Whether anything waits for an rx buffer.
    pub fn has_rx(&self) -> bool {
        !self.rx_queue.is_empty()
    }

    /// The next packet for the guest, with up to `buf.len()` payload bytes read into `buf`;
    /// `None` when nothing is ready. Connections take turns.
    pub fn next_rx_packet(&mut self, buf: &mut [u8]) -> Option<(Header, usize)> {
        for _ in 0..self.rx_queue.len() {
            match self.rx_queue.pop_front()? {
                RxItem::Reset(hdr) => {
                    self.resets_queued -= 1;
                    return Some((hdr, 0));
                }
                RxItem::Conn(key) => {
                    // An item left from a connection that is gone since.
                    if !self.queued.remove(&key) {
                        continue;
                    }
                    let Some(conn) = self.conns.get_mut(&key) else { continue };
                    match conn.next_packet(buf) {
                        RxPacket::Packet(hdr, len) => {
                            self.settle(key, Verdict::Keep);
                            return Some((hdr, len));
                        }
                        RxPacket::Nothing => self.settle(key, Verdict::Keep),
                        RxPacket::Reset => self.settle(key, Verdict::Reset),
                    }
                }
            }
        }
        None
    }

    /// Brings epoll up to date: `apply` performs each change and returns whether it worked.
    /// A stream that cannot be watched is reset (its handshake dropped).
    pub fn sync_epoll(&mut self, mut apply: impl FnMut(EpollChange) -> bool) {
        loop {
            for stream in std::mem::take(&mut self.closing) {
                let fd = stream.as_raw_fd();
                if self.registered.remove(&fd).is_some() {
                    apply(EpollChange::Remove(fd));
                }
                // Out of epoll first, then closed: the fd number may be reused right after.
                drop(stream);
            }
            let mut failed = Vec::new();
            for fd in std::mem::take(&mut self.touched) {
                let want = match self.by_fd.get(&fd) {
                    Some(key) => self.conns.get(key).map(Connection::interest),
                    None => self.handshakes.contains_key(&fd).then_some(EventSet::IN),
                };
                // Gone since it was touched: `closing` took care of it.
                let Some(want) = want else { continue };
                let have = self.registered.get(&fd).copied();
                let change = match have {
                    None if !want.is_empty() => EpollChange::Add(fd, want),
                    Some(_) if want.is_empty() => EpollChange::Remove(fd),
                    Some(have) if have != want => EpollChange::Modify(fd, want),
                    _ => continue,
                };
                if apply(change) {
                    match change {
                        EpollChange::Remove(_) => self.registered.remove(&fd),
                        EpollChange::Add(..) | EpollChange::Modify(..) => self.registered.insert(fd, want),
                    };
                } else {
                    failed.push(fd);
                }
            }
            if failed.is_empty() {
                return;
            }
            for fd in failed {
                if let Some(&key) = self.by_fd.get(&fd) {
                    self.settle(key, Verdict::Reset);
                } else if let Some(handshake) = self.handshakes.remove(&fd) {
                    self.closing.push(handshake.stream);
                }
            }
        }
    }

    /// The device was reset: every connection ends without a word to the guest (its driver
    /// forgot them); host clients still handshaking wait for the next activation.
    pub fn reset(&mut self) {
        let keys: Vec<ConnKey> = self.conns.keys().copied().collect();
        for key in keys {
            self.settle(key, Verdict::Closed);
        }
        self.rx_queue.clear();
        self.queued.clear();
        self.resets_queued = 0;
    }
}

/// The key of a connection as a guest packet addresses it.
fn guest_key(hdr: &Header) -> ConnKey {
    ConnKey { local_port: hdr.dst_port, peer_port: hdr.src_port }
}
