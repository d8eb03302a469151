//! One vsock stream between a guest socket and a host unix stream.
//!
//! Vocabulary: "local" is the host end (the unix stream, a host port number), "peer" is the
//! guest end. Data flows both ways under virtio-vsock credit control:
//!
//! - guest to host: we advertise a receive buffer of [`HOST_BUF_SIZE`] bytes (`buf_alloc`) and
//!   how many bytes of it went out to the unix stream (`fwd_cnt`), so a guest never has more
//!   than `HOST_BUF_SIZE` bytes in flight and the bytes waiting for the unix stream never
//!   grow past that;
//! - host to guest: we read the unix stream only while the guest's own `buf_alloc` and
//!   `fwd_cnt` leave room, and no faster than the guest hands us rx buffers, so bytes wait in
//!   the unix socket (the host writer blocks) rather than in the VMM.
//!
//! Teardown: a unix EOF becomes SHUTDOWN(SEND) to the guest; a guest SHUTDOWN(SEND) becomes
//! `shutdown(Write)` on the unix stream once the buffered bytes are out; when neither direction
//! has anything left to carry, the muxer sends RST and closes the unix stream. Errors on the
//! unix stream reset the connection.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::num::Wrapping;
use std::os::unix::net::UnixStream;

use event_manager::EventSet;

use super::packet::{op, Header, HOST_CID, SHUTDOWN_RCV, SHUTDOWN_SEND, TYPE_STREAM};

/// The receive buffer we offer each guest socket (`buf_alloc`), as Linux's default.
pub const HOST_BUF_SIZE: u32 = 256 * 1024;
/// Tell the guest about forwarded bytes once it believes less than this much room is left:
/// often enough that a sending guest never stalls, rarely enough not to double the packets.
const CREDIT_UPDATE_THRESHOLD: u32 = HOST_BUF_SIZE / 2;

/// A connection's identity in the muxer's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnKey {
    /// The host's port: the port a guest connected to, or one the muxer picked for a host
    /// client.
    pub local_port: u32,
    /// The guest socket's port.
    pub peer_port: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// A host client asked for a guest port; OP_REQUEST is queued or sent and the guest has
    /// not answered. Nothing is read from the unix stream yet: it is not the guest's until
    /// the client has its `OK`.
    Connecting,
    /// Data flows in each direction that is not shut down.
    Open {
        /// The unix stream reached EOF; the guest was (or is about to be) told SHUTDOWN(SEND).
        host_eof: bool,
        /// OP_SHUTDOWN flags the guest sent ([`SHUTDOWN_RCV`], [`SHUTDOWN_SEND`]).
        guest_shutdown: u32,
    },
}

/// What the muxer must do with a connection after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    /// Send RST to the guest and close the unix stream: an error, a protocol violation, or
    /// both directions finished.
    Reset,
    /// The guest reset the connection: close the unix stream, send nothing.
    Closed,
}

/// The result of asking a connection for its next packet to the guest.
#[derive(Debug, PartialEq, Eq)]
pub enum RxPacket {
    /// A header, and that many payload bytes at the start of the buffer given.
    Packet(Header, usize),
    /// Nothing to send now.
    Nothing,
    /// The unix stream failed: reset the connection.
    Reset,
}

/// Control packets a connection owes the guest; data is read on demand.
#[derive(Debug, Default)]
struct Owed {
    request: bool,
    response: bool,
    /// The unix stream was readable when last polled.
    data: bool,
    credit_update: bool,
    credit_request: bool,
}

pub struct Connection {
    stream: UnixStream,
    key: ConnKey,
    guest_cid: u64,
    state: State,
    owed: Owed,
    /// Bytes for the unix stream that it has not taken yet: the guest's data, after
    /// `control_bytes` of our own (the `OK <port>\n` line).
    to_host: VecDeque<u8>,
    control_bytes: usize,
    /// `shutdown(Write)` was done on the unix stream.
    host_write_shut: bool,
    /// The unix peer closed both directions (EPOLLHUP).
    host_hung_up: bool,
    /// Guest bytes accepted, and of those, written to the unix stream.
    recv_cnt: Wrapping<u32>,
    fwd_cnt: Wrapping<u32>,
    /// The `fwd_cnt` the guest last heard from us.
    fwd_cnt_told: Wrapping<u32>,
    /// Bytes sent to the guest, and the guest's last word on its buffer.
    sent_cnt: Wrapping<u32>,
    peer_buf_alloc: u32,
    peer_fwd_cnt: Wrapping<u32>,
}

impl Connection {
    /// A host client's connection to the guest port `key.peer_port`; the guest is asked first.
    pub fn host_initiated(stream: UnixStream, key: ConnKey, guest_cid: u64) -> Connection {
        let mut conn = Connection::new(stream, key, guest_cid, State::Connecting);
        conn.owed.request = true;
        conn
    }

    /// The guest's OP_REQUEST `request`, already connected to the host's unix socket: owes the
    /// guest its OP_RESPONSE.
    pub fn guest_initiated(stream: UnixStream, key: ConnKey, guest_cid: u64, request: &Header) -> Connection {
        let mut conn =
            Connection::new(stream, key, guest_cid, State::Open { host_eof: false, guest_shutdown: 0 });
        conn.update_peer_credit(request);
        conn.owed.response = true;
        conn
    }

    fn new(stream: UnixStream, key: ConnKey, guest_cid: u64, state: State) -> Connection {
        Connection {
            stream,
            key,
            guest_cid,
            state,
            owed: Owed::default(),
            to_host: VecDeque::new(),
            control_bytes: 0,
            host_write_shut: false,
            host_hung_up: false,
            recv_cnt: Wrapping(0),
            fwd_cnt: Wrapping(0),
            fwd_cnt_told: Wrapping(0),
            sent_cnt: Wrapping(0),
            peer_buf_alloc: 0,
            peer_fwd_cnt: Wrapping(0),
        }
    }

    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    pub fn into_stream(self) -> UnixStream {
        self.stream
    }

    /// Whether an RW packet of `len` bytes fits in what the unix stream has not taken yet. A
    /// guest that keeps to its credit always fits; one that does not waits.
    pub fn has_room_for(&self, len: u32) -> bool {
        let guest_bytes = self.to_host.len() - self.control_bytes;
        guest_bytes + len as usize <= HOST_BUF_SIZE as usize
    }

    /// A packet from the guest for this connection.
    pub fn on_guest_packet(&mut self, hdr: &Header, payload: &[u8]) -> Verdict {
        self.update_peer_credit(hdr);
        match (hdr.op, self.state) {
            (op::RST, _) => Verdict::Closed,
            (op::RESPONSE, State::Connecting) => {
                self.state = State::Open { host_eof: false, guest_shutdown: 0 };
                let ok = format!("OK {}\n", self.key.local_port);
                self.control_bytes += ok.len();
                self.to_host.extend(ok.as_bytes());
                self.flush_to_host()
            }
            (op::RW, State::Open { guest_shutdown, .. }) if guest_shutdown & SHUTDOWN_SEND == 0 => {
                if !self.has_room_for(payload.len() as u32) {
                    return Verdict::Reset;
                }
                self.to_host.extend(payload);
                self.recv_cnt += Wrapping(payload.len() as u32);
                self.flush_to_host()
            }
            (op::SHUTDOWN, State::Open { host_eof, guest_shutdown }) => {
                let guest_shutdown = guest_shutdown | (hdr.flags & (SHUTDOWN_RCV | SHUTDOWN_SEND));
                self.state = State::Open { host_eof, guest_shutdown };
                if guest_shutdown & SHUTDOWN_RCV != 0 {
                    self.owed.data = false;
                }
                self.flush_to_host()
            }
            (op::CREDIT_UPDATE, _) => Verdict::Keep,
            (op::CREDIT_REQUEST, _) => {
                self.owed.credit_update = true;
                Verdict::Keep
            }
            // A second REQUEST, a RESPONSE or data out of turn, an unknown op.
            _ => Verdict::Reset,
        }
    }

    /// Epoll reported `events` on the unix stream.
    pub fn on_host_event(&mut self, events: EventSet) -> Verdict {
        if events.contains(EventSet::ERROR) {
            return Verdict::Reset;
        }
        if events.contains(EventSet::HANG_UP) {
            self.host_hung_up = true;
        }
        if events.contains(EventSet::OUT) && self.flush_to_host() == Verdict::Reset {
            return Verdict::Reset;
        }
        // A hang-up comes with EOF to read (and maybe data before it).
        if events.intersects(EventSet::IN | EventSet::HANG_UP) && self.reads_host() {
            self.owed.data = true;
        }
        Verdict::Keep
    }

    /// Whether this connection has something for the guest.
    pub fn owes_guest(&self) -> bool {
        let o = &self.owed;
        o.request || o.response || o.data || o.credit_update || o.credit_request
    }

    /// Both directions are done: the unix stream sent EOF (or the guest stopped receiving),
    /// and the guest stopped sending and everything it sent is out.
    pub fn is_finished(&self) -> bool {
        match self.state {
            State::Connecting => false,
            State::Open { host_eof, guest_shutdown } => {
                (host_eof || guest_shutdown & SHUTDOWN_RCV != 0) && self.host_write_shut
            }
        }
    }

    /// The epoll events to watch on the unix stream now; empty means "take it out of epoll"
    /// (a hang-up would otherwise be reported over and over while nothing can be done).
    pub fn interest(&self) -> EventSet {
        let mut events = EventSet::empty();
        if self.reads_host() && !self.owed.data && self.peer_credit() > 0 {
            events |= EventSet::IN;
        }
        if !self.to_host.is_empty() {
            events |= EventSet::OUT;
        }
        events
    }

    /// The next packet for the guest. Payload is read from the unix stream straight into
    /// `buf`, no more than the guest has credit for.
    pub fn next_packet(&mut self, buf: &mut [u8]) -> RxPacket {
        if std::mem::take(&mut self.owed.request) {
            return self.packet(op::REQUEST, 0, 0);
        }
        if std::mem::take(&mut self.owed.response) {
            return self.packet(op::RESPONSE, 0, 0);
        }
        // An rx buffer without room for payload can still carry the control packets below.
        if self.owed.data && !buf.is_empty() {
            self.owed.data = false;
            match self.read_host(buf) {
                Ok(Some(packet)) => return packet,
                Ok(None) => {}
                Err(_) => return RxPacket::Reset,
            }
        }
        if self.owed.credit_update {
            return self.packet(op::CREDIT_UPDATE, 0, 0);
        }
        if std::mem::take(&mut self.owed.credit_request) {
            return self.packet(op::CREDIT_REQUEST, 0, 0);
        }
        RxPacket::Nothing
    }

    /// Reads what the guest has credit for: an RW packet, a SHUTDOWN at EOF, or nothing.
    fn read_host(&mut self, buf: &mut [u8]) -> io::Result<Option<RxPacket>> {
        if !self.reads_host() {
            return Ok(None);
        }
        let credit = self.peer_credit() as usize;
        if credit == 0 {
            // The guest frees room on its own as its reader catches up; asking makes it say so
            // now rather than after most of its buffer drained.
            self.owed.credit_request = true;
            return Ok(None);
        }
        let want = credit.min(buf.len());
        let n = loop {
            match self.stream.read(&mut buf[..want]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            if let State::Open { guest_shutdown, .. } = self.state {
                self.state = State::Open { host_eof: true, guest_shutdown };
            }
            // A peer that hung up will not read either: say so, and the guest can close.
            let flags = if self.host_hung_up { SHUTDOWN_SEND | SHUTDOWN_RCV } else { SHUTDOWN_SEND };
            return Ok(Some(self.packet(op::SHUTDOWN, 0, flags)));
        }
        self.sent_cnt += Wrapping(n as u32);
        if n == want {
            // A full read likely left more behind: come back for it without waiting for epoll,
            // or, when the credit ran out, ask the guest for more right away.
            if self.peer_credit() > 0 {
                self.owed.data = true;
            } else {
                self.owed.credit_request = true;
            }
        }
        Ok(Some(self.packet(op::RW, n, 0)))
    }

    /// The unix stream is (still) ours to read for the guest.
    fn reads_host(&self) -> bool {
        matches!(self.state, State::Open { host_eof: false, guest_shutdown } if guest_shutdown & SHUTDOWN_RCV == 0)
    }

    /// How many more bytes the guest can take now.
    fn peer_credit(&self) -> u32 {
        let in_flight = (self.sent_cnt - self.peer_fwd_cnt).0;
        self.peer_buf_alloc.saturating_sub(in_flight)
    }

    fn update_peer_credit(&mut self, hdr: &Header) {
        self.peer_buf_alloc = hdr.buf_alloc;
        self.peer_fwd_cnt = Wrapping(hdr.fwd_cnt);
    }

    /// Every packet carries our credit, so whatever we send answers an owed update.
    fn packet(&mut self, op: u16, len: usize, flags: u32) -> RxPacket {
        self.owed.credit_update = false;
        self.fwd_cnt_told = self.fwd_cnt;
        let hdr = Header {
            src_cid: HOST_CID,
            dst_cid: self.guest_cid,
            src_port: self.key.local_port,
            dst_port: self.key.peer_port,
            len: len as u32,
            type_: TYPE_STREAM,
            op,
            flags,
            buf_alloc: HOST_BUF_SIZE,
            fwd_cnt: self.fwd_cnt.0,
        };
        RxPacket::Packet(hdr, len)
    }

    /// Writes what the unix stream takes without blocking; the rest waits for EPOLLOUT. Once
    /// the guest stopped sending and all is out, the unix peer gets EOF.
    fn flush_to_host(&mut self) -> Verdict {
        while !self.to_host.is_empty() {
            let (front, _) = self.to_host.as_slices();
            match (&self.stream).write(front) {
                Ok(0) => return Verdict::Reset,
                Ok(n) => {
                    self.to_host.drain(..n);
                    let control = n.min(self.control_bytes);
                    self.control_bytes -= control;
                    self.fwd_cnt += Wrapping((n - control) as u32);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return Verdict::Reset,
            }
        }
        let guest_done =
            matches!(self.state, State::Open { guest_shutdown, .. } if guest_shutdown & SHUTDOWN_SEND != 0);
        if guest_done && self.to_host.is_empty() && !self.host_write_shut {
            // The peer may have closed already; then there is no one left to tell.
            let _ = self.stream.shutdown(Shutdown::Write);
            self.host_write_shut = true;
        }
        // What the guest believes is free in our buffer: it only knows the fwd_cnt we told it.
        let guest_view_free = HOST_BUF_SIZE.saturating_sub((self.recv_cnt - self.fwd_cnt_told).0);
        if self.fwd_cnt != self.fwd_cnt_told && guest_view_free < CREDIT_UPDATE_THRESHOLD {
            self.owed.credit_update = true;
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUEST_CID: u64 = 3;
    const KEY: ConnKey = ConnKey { local_port: 1 << 30, peer_port: 1234 };

    fn guest_packet(op: u16, len: u32, flags: u32, buf_alloc: u32, fwd_cnt: u32) -> Header {
        Header {
            src_cid: GUEST_CID,
            dst_cid: HOST_CID,
            src_port: KEY.peer_port,
            dst_port: KEY.local_port,
            len,
            type_: TYPE_STREAM,
            op,
            flags,
            buf_alloc,
            fwd_cnt,
        }
    }

    fn expect_packet(conn: &mut Connection, buf: &mut [u8]) -> (Header, usize) {
        match conn.next_packet(buf) {
            RxPacket::Packet(h, n) => (h, n),
            other => panic!("expected a packet, got {other:?}"),
        }
    }

    /// A host-initiated connection, accepted by a guest with `buf_alloc` of room.
    fn open(buf_alloc: u32) -> (Connection, UnixStream) {
        let (client, ours) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let mut conn = Connection::host_initiated(ours, KEY, GUEST_CID);
        let (h, _) = expect_packet(&mut conn, &mut []);
        assert_eq!((h.op, h.src_port, h.dst_port, h.dst_cid), (op::REQUEST, KEY.local_port, 1234, GUEST_CID));
        assert_eq!(conn.on_guest_packet(&guest_packet(op::RESPONSE, 0, 0, buf_alloc, 0), &[]), Verdict::Keep);
        let mut ok = [0u8; 14];
        (&client).read_exact(&mut ok).unwrap();
        assert_eq!(&ok, b"OK 1073741824\n");
        (conn, client)
    }

    #[test]
    fn reads_no_more_than_the_guest_has_credit_for() {
        let (mut conn, client) = open(10);
        (&client).write_all(b"0123456789abcdef").unwrap();
        conn.on_host_event(EventSet::IN);
        assert!(conn.interest().is_empty(), "no reading while a read is owed");
        let mut buf = [0u8; 64];
        let (h, n) = expect_packet(&mut conn, &mut buf);
        assert_eq!((h.op, n), (op::RW, 10));
        assert_eq!(&buf[..10], b"0123456789");
        // Credit exhausted: the connection stops reading and asks for more.
        assert!(!conn.interest().contains(EventSet::IN));
        let (h, _) = expect_packet(&mut conn, &mut buf);
        assert_eq!(h.op, op::CREDIT_REQUEST);
        assert_eq!(conn.next_packet(&mut buf), RxPacket::Nothing);
        // The guest's reader consumed 4 bytes.
        conn.on_guest_packet(&guest_packet(op::CREDIT_UPDATE, 0, 0, 10, 4), &[]);
        assert!(conn.interest().contains(EventSet::IN));
        conn.on_host_event(EventSet::IN);
        let (h, n) = expect_packet(&mut conn, &mut buf);
        assert_eq!((h.op, n), (op::RW, 4));
        assert_eq!(&buf[..4], b"abcd");
    }

    #[test]
    fn tells_the_guest_about_forwarded_bytes_before_it_runs_dry() {
        let (mut conn, client) = open(1 << 20);
        let chunk = vec![7u8; 60 * 1024];
        let mut sink = vec![0u8; chunk.len()];
        for round in 1..=3 {
            conn.on_guest_packet(&guest_packet(op::RW, chunk.len() as u32, 0, 1 << 20, 0), &chunk);
            (&client).read_exact(&mut sink).unwrap();
            // Until the guest believes less than half of our buffer is free, it hears nothing.
            assert_eq!(conn.owed.credit_update, round == 3, "round {round}");
        }
        let (h, _) = expect_packet(&mut conn, &mut []);
        assert_eq!((h.op, h.fwd_cnt, h.buf_alloc), (op::CREDIT_UPDATE, 3 * 60 * 1024, HOST_BUF_SIZE));
        assert_eq!(conn.next_packet(&mut []), RxPacket::Nothing);
    }

    #[test]
    fn a_guest_over_its_credit_is_reset() {
        let (mut conn, _client) = open(1 << 20);
        assert!(conn.has_room_for(HOST_BUF_SIZE));
        assert!(!conn.has_room_for(HOST_BUF_SIZE + 1));
        let big = vec![0u8; HOST_BUF_SIZE as usize + 1];
        let hdr = guest_packet(op::RW, big.len() as u32, 0, 1 << 20, 0);
        assert_eq!(conn.on_guest_packet(&hdr, &big), Verdict::Reset);
    }

    #[test]
    fn unix_eof_becomes_shutdown_send_and_guest_shutdown_closes_the_write_side() {
        let (mut conn, client) = open(1000);
        client.shutdown(Shutdown::Write).unwrap();
        conn.on_host_event(EventSet::IN);
        let mut buf = [0u8; 64];
        let (h, n) = expect_packet(&mut conn, &mut buf);
        assert_eq!((h.op, h.flags, n), (op::SHUTDOWN, SHUTDOWN_SEND, 0));
        assert!(!conn.is_finished(), "the guest may still send");
        conn.on_guest_packet(&guest_packet(op::RW, 3, 0, 1000, 0), b"bye");
        conn.on_guest_packet(&guest_packet(op::SHUTDOWN, 0, SHUTDOWN_SEND | SHUTDOWN_RCV, 1000, 0), &[]);
        assert!(conn.is_finished());
        let mut rest = Vec::new();
        (&client).read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"bye");
    }

    #[test]
    fn a_hung_up_peer_gets_shutdown_both() {
        let (mut conn, client) = open(1000);
        drop(client);
        conn.on_host_event(EventSet::IN | EventSet::HANG_UP);
        let (h, _) = expect_packet(&mut conn, &mut [0u8; 16]);
        assert_eq!((h.op, h.flags), (op::SHUTDOWN, SHUTDOWN_SEND | SHUTDOWN_RCV));
        // Writing to it now fails, and that resets the connection.
        assert_eq!(conn.on_guest_packet(&guest_packet(op::RW, 1, 0, 1000, 0), b"x"), Verdict::Reset);
    }

    #[test]
    fn protocol_violations_reset() {
        let (client, ours) = UnixStream::pair().unwrap();
        let mut conn = Connection::host_initiated(ours, KEY, GUEST_CID);
        assert_eq!(conn.on_guest_packet(&guest_packet(op::RW, 1, 0, 10, 0), b"x"), Verdict::Reset);
        assert_eq!(conn.on_guest_packet(&guest_packet(op::REQUEST, 0, 0, 10, 0), &[]), Verdict::Reset);
        assert_eq!(conn.on_guest_packet(&guest_packet(99, 0, 0, 10, 0), &[]), Verdict::Reset);
        assert_eq!(conn.on_guest_packet(&guest_packet(op::RST, 0, 0, 10, 0), &[]), Verdict::Closed);
        drop(client);
    }
}
