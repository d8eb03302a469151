//! The vsock device driven the way a guest driver drives it: descriptor chains in guest memory
//! on split queues, notifications through the queue eventfds, the device's work run by a real
//! event manager, and host programs on real unix sockets.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use event_manager::{EventManager, SubscriberOps};
use virtio_bindings::bindings::virtio_ring::VRING_DESC_F_WRITE;
use virtio_queue::desc::split::Descriptor;
use virtio_queue::desc::RawDescriptor;

use vm_memory::{Address, Bytes, GuestAddress};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::connection::HOST_BUF_SIZE;
use super::device::{RX_QUEUE, TX_QUEUE};
use super::muxer::{MAX_QUEUED_RESETS, MAX_RX_ITEMS};
use super::packet::{op, Header, HEADER_SIZE, HOST_CID, SHUTDOWN_RCV, SHUTDOWN_SEND, TYPE_STREAM};
use super::{Error, Vsock, MAX_CONNECTIONS};
use crate::devices::virtio::test_driver::{self, DriverQueue, QUEUE_SIZE};
use crate::devices::virtio::{Interrupt, VirtioDevice, TYPE_VSOCK};
use crate::memory::GuestMemoryMmap;

const GUEST_CID: u32 = 3;
/// The rx buffers a Linux guest posts: a header descriptor, then 4 KiB of payload.
const RX_PAYLOAD: u32 = 4096;
/// The receive buffer the test guest advertises.
const GUEST_BUF: u32 = 64 * 1024;

/// A scratch directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("hull-vsock-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A guest driver, the device and its event loop.
struct Harness {
    dir: TempDir,
    uds: PathBuf,
    mem: GuestMemoryMmap,
    device: Arc<Mutex<Vsock>>,
    events: EventManager<Arc<Mutex<Vsock>>>,
    interrupt: Arc<Interrupt>,
    rx: DriverQueue,
    tx: DriverQueue,
    /// Posted rx chains: head -> (header address, payload address).
    rx_chains: HashMap<u16, (u64, u64)>,
}

impl Harness {
    fn new(name: &str) -> Harness {
        let dir = TempDir::new(name);
        let uds = dir.join("v.sock");
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x300_0000)]).unwrap();
        let device = Arc::new(Mutex::new(Vsock::new(GUEST_CID, &uds).unwrap()));
        let mut events = EventManager::new().unwrap();
        events.add_subscriber(device.clone());
        let (rx, rx_queue) = DriverQueue::new(&mem, 0x1000, 0x100_0000);
        let (tx, tx_queue) = DriverQueue::new(&mem, 0x1_0000, 0x200_0000);
        let (_, event_queue) = DriverQueue::new(&mem, 0x2_0000, 0x2_8000);
        let interrupt = Arc::new(Interrupt::new(EventFd::new(EFD_NONBLOCK).unwrap()));
        device
            .lock()
            .unwrap()
            .activate(mem.clone(), vec![rx_queue, tx_queue, event_queue], interrupt.clone())
            .unwrap();
        let mut h = Harness { dir, uds, mem, device, events, interrupt, rx, tx, rx_chains: HashMap::new() };
        h.pump();
        h
    }

    /// Runs the event loop until it has been idle for a moment.
    fn pump(&mut self) {
        test_driver::pump(&mut self.events);
    }

    fn notify(&self, queue: usize) {
        self.device.lock().unwrap().queue_events()[queue].write(1).unwrap();
    }

    /// Posts `n` rx buffers the way Linux does and notifies the device.
    fn give_rx_buffers(&mut self, n: usize) {
        for _ in 0..n {
            let (head, addrs) = self.rx.post(&self.mem, &[HEADER_SIZE as u32, RX_PAYLOAD], true);
            self.rx_chains.insert(head, (addrs[0], addrs[1]));
        }
        self.notify(RX_QUEUE);
    }

    /// Puts a packet on the tx queue (header and payload in separate descriptors, as Linux 6.1
    /// does) and runs the event loop.
    fn send(&mut self, hdr: Header, payload: &[u8]) {
        self.post_tx(hdr, payload);
        self.notify(TX_QUEUE);
        self.pump();
    }

    /// Puts a packet on the tx queue, without telling the device.
    fn post_tx(&mut self, hdr: Header, payload: &[u8]) {
        let hdr = Header { len: payload.len() as u32, ..hdr };
        let lens: Vec<u32> = if payload.is_empty() {
            vec![HEADER_SIZE as u32]
        } else {
            vec![HEADER_SIZE as u32, payload.len() as u32]
        };
        let (_, addrs) = self.tx.post(&self.mem, &lens, false);
        self.mem.write_slice(&hdr.encode(), GuestAddress(addrs[0])).unwrap();
        if !payload.is_empty() {
            self.mem.write_slice(payload, GuestAddress(addrs[1])).unwrap();
        }
    }

    /// The packets the device put in rx buffers so far.
    fn received(&mut self) -> Vec<(Header, Vec<u8>)> {
        let mut packets = Vec::new();
        while let Some((head, len)) = self.rx.take_used(&self.mem) {
            let Some((hdr_addr, payload_addr)) = self.rx_chains.remove(&head) else {
                let mut posted: Vec<u16> = self.rx_chains.keys().copied().collect();
                posted.sort_unstable();
                let q = &self.rx;
                let avail: Vec<u16> = (q.avail_idx.wrapping_sub(8)..q.avail_idx)
                    .map(|i| {
                        self.mem.read_obj(q.avail.unchecked_add(4 + u64::from(i % QUEUE_SIZE) * 2)).unwrap()
                    })
                    .collect();
                let used: Vec<(u32, u32)> = (q.used_seen.wrapping_sub(6)..q.used_seen)
                    .map(|i| {
                        let e = q.used.unchecked_add(4 + u64::from(i % QUEUE_SIZE) * 8);
                        (self.mem.read_obj(e).unwrap(), self.mem.read_obj(e.unchecked_add(4)).unwrap())
                    })
                    .collect();
                panic!(
                    "the device used rx head {head} (len {len}), which is not posted: posted {posted:?}, \
                     used_seen {}, avail_idx {}, next_slot {}; last avail entries {avail:?}, last used {used:?}; \
                     desc {:?} avail {:?} used {:?}",
                    q.used_seen, q.avail_idx, q.next_slot, q.desc_table, q.avail, q.used
                );
            };
            assert!(len as usize >= HEADER_SIZE, "used length {len}");
            let mut bytes = [0u8; HEADER_SIZE];
            self.mem.read_slice(&mut bytes, GuestAddress(hdr_addr)).unwrap();
            let hdr = Header::decode(&bytes);
            assert_eq!(len as usize, HEADER_SIZE + hdr.len as usize);
            let mut payload = vec![0u8; hdr.len as usize];
            self.mem.read_slice(&mut payload, GuestAddress(payload_addr)).unwrap();
            assert_eq!(hdr.dst_cid, u64::from(GUEST_CID));
            packets.push((hdr, payload));
        }
        packets
    }

    /// Runs the loop and returns the one packet the device sent.
    fn expect_one(&mut self) -> (Header, Vec<u8>) {
        self.pump();
        let mut packets = self.received();
        assert_eq!(packets.len(), 1, "{:?}", packets.iter().map(|p| p.0).collect::<Vec<_>>());
        packets.remove(0)
    }

    /// Tx chains the device has not consumed.
    fn tx_pending(&mut self) -> u16 {
        while self.tx.take_used(&self.mem).is_some() {}
        self.tx.outstanding()
    }

    fn connections(&self) -> usize {
        self.device.lock().unwrap().connection_count()
    }

    /// A host client connected through the CONNECT handshake to the guest's `guest_port`;
    /// returns the client and the host port the device assigned.
    fn host_connect(&mut self, guest_port: u32) -> (UnixStream, u32) {
        let mut client = UnixStream::connect(&self.uds).unwrap();
        client.write_all(format!("CONNECT {guest_port}\n").as_bytes()).unwrap();
        self.give_rx_buffers(1);
        let (req, _) = self.expect_one();
        assert_eq!((req.op, req.dst_port), (op::REQUEST, guest_port));
        assert_eq!((req.src_cid, req.type_), (HOST_CID, TYPE_STREAM));
        assert!(req.src_port >= 1 << 30);
        assert_eq!(req.buf_alloc, HOST_BUF_SIZE);
        self.send(guest(op::RESPONSE, guest_port, req.src_port), &[]);
        let line = read_available(&client);
        assert_eq!(line, format!("OK {}\n", req.src_port).into_bytes());
        client.set_nonblocking(true).unwrap();
        (client, req.src_port)
    }
}

/// A packet from the guest socket on `guest_port` to the host's `host_port`.
fn guest(op: u16, guest_port: u32, host_port: u32) -> Header {
    Header {
        src_cid: u64::from(GUEST_CID),
        dst_cid: HOST_CID,
        src_port: guest_port,
        dst_port: host_port,
        type_: TYPE_STREAM,
        op,
        buf_alloc: GUEST_BUF,
        ..Header::default()
    }
}

/// What a host socket has to read right now (it is not the event loop's thread that waits).
fn read_available(stream: &UnixStream) -> Vec<u8> {
    stream.set_nonblocking(true).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match (&*stream).read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("read: {e}"),
        }
    }
    out
}

/// Whether the host socket's peer closed (EOF, or a reset).
fn closed(stream: &UnixStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1];
    match (&*stream).read(&mut buf) {
        Ok(0) => true,
        Ok(_) => panic!("unexpected data"),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}

#[test]
fn the_device_fits_the_builders_slots() {
    // What the builder asks of a device: the transport's trait, the event loop's, and Send.
    fn attachable<D: VirtioDevice + event_manager::MutEventSubscriber + Send + 'static>() {}
    attachable::<Vsock>();
}

#[test]
fn exposes_a_vsock_device_with_the_guest_cid() {
    let h = Harness::new("config");
    let dev = h.device.lock().unwrap();
    assert_eq!(dev.device_type(), TYPE_VSOCK);
    assert_eq!(dev.queue_max_sizes().len(), 3);
    assert_eq!(dev.queue_events().len(), 3);
    assert_eq!(dev.avail_features(), crate::devices::virtio::FEATURE_VERSION_1);
    let mut cid = [0xffu8; 8];
    dev.read_config(0, &mut cid);
    assert_eq!(u64::from_le_bytes(cid), 3);
    let mut tail = [0xffu8; 4];
    dev.read_config(6, &mut tail);
    assert_eq!(tail, [0, 0, 0, 0]);
    assert!(dev.is_activated());
    assert_eq!(dev.guest_cid(), GUEST_CID);
    assert_eq!(dev.uds_path(), h.uds);
}

#[test]
fn rejects_reserved_cids_and_unbindable_paths() {
    let dir = TempDir::new("cids");
    for cid in [0, 1, 2, u32::MAX] {
        assert!(matches!(Vsock::new(cid, &dir.join("v.sock")), Err(Error::InvalidCid(_))));
    }
    let missing = dir.join("no/such/dir/v.sock");
    assert!(Vsock::new(3, &dir.join("v.sock")).is_ok());
    let err = Vsock::new(3, &missing).err().unwrap();
    assert!(err.to_string().contains(&missing.display().to_string()), "{err}");
}

#[test]
fn binds_the_socket_and_unlinks_it_when_dropped() {
    let dir = TempDir::new("unlink");
    let uds = dir.join("v.sock");
    let first = Vsock::new(3, &uds).unwrap();
    assert!(uds.exists());
    // A new device on the same path takes it over; the old one leaves the new file alone.
    let second = Vsock::new(4, &uds).unwrap();
    drop(first);
    assert!(uds.exists());
    UnixStream::connect(&uds).unwrap();
    drop(second);
    assert!(!uds.exists());
}

#[test]
fn host_connect_handshake_then_data_both_ways() {
    let mut h = Harness::new("handshake");
    let (client, host_port) = h.host_connect(1234);
    assert_eq!(h.connections(), 1);

    (&client).write_all(b"ping").unwrap();
    h.give_rx_buffers(1);
    let (pkt, data) = h.expect_one();
    assert_eq!(
        (pkt.op, pkt.src_port, pkt.dst_port, data.as_slice()),
        (op::RW, host_port, 1234, &b"ping"[..])
    );

    h.send(guest(op::RW, 1234, host_port), b"pong");
    assert_eq!(read_available(&client), b"pong");
    // The interrupt was raised for the used buffers.
    assert!(h.interrupt.status() & crate::devices::virtio::INT_USED_RING != 0);
}

#[test]
fn bytes_sent_before_ok_reach_the_guest_after_it_accepts() {
    let mut h = Harness::new("early");
    let client = UnixStream::connect(&h.uds).unwrap();
    (&client).write_all(b"CONNECT 5\nearly bytes").unwrap();
    h.give_rx_buffers(4);
    let (req, _) = h.expect_one();
    assert_eq!(req.op, op::REQUEST);
    // Nothing is read for the guest before it accepts.
    h.pump();
    assert!(h.received().is_empty());
    h.send(guest(op::RESPONSE, 5, req.src_port), &[]);
    let (pkt, data) = h.expect_one();
    assert_eq!((pkt.op, data.as_slice()), (op::RW, &b"early bytes"[..]));
    assert_eq!(read_available(&client), format!("OK {}\n", req.src_port).into_bytes());
}

#[test]
fn a_guest_rst_refuses_the_host_client() {
    let mut h = Harness::new("refused");
    let client = UnixStream::connect(&h.uds).unwrap();
    (&client).write_all(b"CONNECT 9\n").unwrap();
    h.give_rx_buffers(1);
    let (req, _) = h.expect_one();
    h.send(guest(op::RST, 9, req.src_port), &[]);
    assert!(closed(&client));
    assert_eq!(h.connections(), 0);
}

#[test]
fn a_bad_connect_line_closes_the_client() {
    let mut h = Harness::new("badline");
    let client = UnixStream::connect(&h.uds).unwrap();
    (&client).write_all(b"HELLO\n").unwrap();
    h.give_rx_buffers(1);
    h.pump();
    assert!(closed(&client));
    assert!(h.received().is_empty());
}

#[test]
fn a_host_connect_waits_for_rx_buffers() {
    let mut h = Harness::new("norx");
    let client = UnixStream::connect(&h.uds).unwrap();
    (&client).write_all(b"CONNECT 80\n").unwrap();
    h.pump();
    assert!(h.received().is_empty());
    h.give_rx_buffers(1);
    let (req, _) = h.expect_one();
    assert_eq!((req.op, req.dst_port), (op::REQUEST, 80));
}

#[test]
fn guest_connects_to_a_host_listener() {
    let mut h = Harness::new("guestconn");
    let listener = UnixListener::bind(h.dir.join("v.sock_52")).unwrap();
    h.give_rx_buffers(2);
    h.send(guest(op::REQUEST, 999, 52), &[]);
    let (resp, _) = h.expect_one();
    assert_eq!((resp.op, resp.src_port, resp.dst_port), (op::RESPONSE, 52, 999));
    let (server, _) = listener.accept().unwrap();

    h.send(guest(op::RW, 999, 52), b"from the guest");
    assert_eq!(read_available(&server), b"from the guest");
    (&server).write_all(b"from the host").unwrap();
    let (pkt, data) = h.expect_one();
    assert_eq!(
        (pkt.op, pkt.src_port, pkt.dst_port, data.as_slice()),
        (op::RW, 52, 999, &b"from the host"[..])
    );
}

#[test]
fn guest_connect_with_no_listener_is_reset() {
    let mut h = Harness::new("nolistener");
    h.give_rx_buffers(1);
    h.send(guest(op::REQUEST, 1000, 77), &[]);
    let (rst, _) = h.expect_one();
    assert_eq!((rst.op, rst.src_port, rst.dst_port), (op::RST, 77, 1000));
    assert_eq!(h.connections(), 0);
}

#[test]
fn packets_for_unknown_connections_are_reset() {
    let mut h = Harness::new("unknown");
    h.give_rx_buffers(3);
    h.send(guest(op::RW, 1, 2), b"data");
    let (rst, _) = h.expect_one();
    assert_eq!((rst.op, rst.src_port, rst.dst_port), (op::RST, 2, 1));
    // Never an RST for an RST.
    h.send(guest(op::RST, 1, 2), &[]);
    h.pump();
    assert!(h.received().is_empty());
    // A datagram-type packet is refused too: only streams are served.
    h.send(Header { type_: 2, ..guest(op::REQUEST, 3, 4) }, &[]);
    let (rst, _) = h.expect_one();
    assert_eq!((rst.op, rst.type_), (op::RST, 2));
    // Packets from another CID are dropped.
    h.send(Header { src_cid: 9, ..guest(op::REQUEST, 3, 4) }, &[]);
    h.pump();
    assert!(h.received().is_empty());
}

/// A hostile guest that sprays packets for connections that do not exist, and never posts the
/// rx buffers their resets need, costs the VMM a bounded queue: at most MAX_QUEUED_RESETS
/// resets wait, the rest are dropped; once the guest posts buffers it gets that many, and the
/// device goes on serving (a further stray packet is reset, a host client connects).
#[test]
fn a_flood_of_stray_packets_queues_a_bounded_number_of_resets() {
    let mut h = Harness::new("flood");
    let flood = MAX_QUEUED_RESETS + 1000;
    let batch = usize::from(QUEUE_SIZE) - 16;
    let mut sent = 0;
    while sent < flood {
        let n = batch.min(flood - sent);
        for i in sent..sent + n {
            let port = 10_000 + i as u32;
            h.post_tx(guest(op::RW, port, 7), b"x");
        }
        sent += n;
        h.notify(TX_QUEUE);
        h.pump();
        assert_eq!(h.tx_pending(), 0, "the device left tx chains of the flood unread");
    }
    assert_eq!(h.connections(), 0);
    // (Each rx chain takes two descriptors of the queue's ring.)
    let rx_batch = usize::from(QUEUE_SIZE) / 2 - 8;
    let mut resets = 0;
    loop {
        h.give_rx_buffers(rx_batch);
        h.pump();
        let got = h.received();
        assert!(got.iter().all(|(hdr, _)| hdr.op == op::RST && hdr.src_port == 7));
        resets += got.len();
        if got.len() < rx_batch {
            break;
        }
    }
    assert_eq!(resets, MAX_QUEUED_RESETS, "resets delivered for a flood of {flood}");
    // Served as before: the queue of resets is empty again.
    h.send(guest(op::RW, 1, 2), b"data");
    h.pump();
    let after = h.received();
    assert_eq!(after.len(), 1, "{:?}", after.iter().map(|p| p.0).collect::<Vec<_>>());
    assert_eq!(after[0].0.op, op::RST);
    let (_client, _) = h.host_connect(1234);
    assert_eq!(h.connections(), 1);
}

/// Fds that other tests of this binary, running meanwhile, may open: the counts of all the
/// process's fds are only this exact.
const FD_SLACK: usize = 128;

/// Held by the tests that count the process's fds, so that none of them sees another's flood.
static FD_COUNTING: Mutex<()> = Mutex::new(());

fn fd_counting() -> std::sync::MutexGuard<'static, ()> {
    // A test that failed holding it leaves it poisoned; the others still run.
    FD_COUNTING.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The process's open fds, and of those, the sockets connected to one of `paths`: the device's
/// ends of guest connections to those host ports (a connected unix socket's peer name is the
/// path its listener is bound to). Other tests use other paths, so that count is exact.
fn open_fds(paths: &[PathBuf]) -> (usize, usize) {
    let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    let connected = fds.iter().filter(|&&fd| peer_path(fd).is_some_and(|p| paths.contains(&p))).count();
    (fds.len(), connected)
}

/// The path the unix socket `fd` is connected to; `None` for anything else.
fn peer_path(fd: RawFd) -> Option<PathBuf> {
    let mut addr = libc::sockaddr_un { sun_family: 0, sun_path: [0; 108] };
    let mut len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: `addr` and `len` are valid for writes and `len` is `addr`'s size. `fd` is any
    // number, maybe closed (or reused) since it was listed: the call then fails or names
    // another socket's peer, and has no effect on it either way.
    let rc = unsafe { libc::getpeername(fd, (&mut addr as *mut libc::sockaddr_un).cast(), &mut len) };
    if rc != 0 || addr.sun_family != libc::AF_UNIX as libc::sa_family_t {
        return None;
    }
    let path: Vec<u8> = addr.sun_path.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    Some(PathBuf::from(OsString::from_vec(path)))
}

/// Raises the soft RLIMIT_NOFILE to the hard one where fewer than `more` fds can be opened
/// beyond those open now; false when even the hard limit does not allow that many.
fn make_fd_room(more: usize) -> bool {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is valid for writes.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return false;
    }
    let want = (open_fds(&[]).0 + more) as libc::rlim_t;
    if limit.rlim_cur >= want {
        return true;
    }
    if limit.rlim_max < want {
        return false;
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: `limit` is a valid rlimit that outlives the call.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 }
}

/// Puts `packets` (no payload) on the tx queue in batches that fit the ring, running the loop
/// after each and calling `check` then; the device must take every chain.
fn send_batched(
    h: &mut Harness,
    packets: impl IntoIterator<Item = Header>,
    mut check: impl FnMut(&mut Harness),
) {
    let batch = usize::from(QUEUE_SIZE) - 16;
    let mut packets = packets.into_iter().peekable();
    while packets.peek().is_some() {
        for hdr in packets.by_ref().take(batch) {
            h.post_tx(hdr, &[]);
        }
        h.notify(TX_QUEUE);
        h.pump();
        assert_eq!(h.tx_pending(), 0, "the device left tx chains unread");
        check(h);
    }
}

/// Posts rx buffers until the device has nothing more to put in them; the headers it sent.
fn drain_rx(h: &mut Harness) -> Vec<Header> {
    // (Each rx chain takes two descriptors of the queue's ring.)
    let rx_batch = usize::from(QUEUE_SIZE) / 2 - 8;
    let mut headers = Vec::new();
    loop {
        h.received(); // updates what is outstanding
        h.give_rx_buffers(rx_batch.saturating_sub(usize::from(h.rx.outstanding())));
        h.pump();
        let got = h.received();
        let n = got.len();
        headers.extend(got.into_iter().map(|(hdr, _)| hdr));
        if n < rx_batch {
            return headers;
        }
    }
}

/// A guest that floods listening host ports with REQUESTs, each from a port of its own, while
/// the host programs never accept: the device opens MAX_CONNECTIONS streams (one socket each)
/// and no more, answers them RESPONSE and the rest RST (at most MAX_QUEUED_RESETS of those
/// wait for rx buffers), closes every socket once the guest resets the streams, and serves a
/// new connection after.
#[test]
fn a_flood_of_requests_to_listening_ports_opens_at_most_max_connections() {
    let _fds = fd_counting();
    if !make_fd_room(MAX_CONNECTIONS + 4 * FD_SLACK) {
        eprintln!("skipped: RLIMIT_NOFILE's hard limit is below {} fds", MAX_CONNECTIONS + 4 * FD_SLACK);
        return;
    }
    let mut h = Harness::new("reqflood");
    // Eight ports: a listen backlog holds net.core.somaxconn connections (128 on older
    // kernels), so that it is the device's limit that stops the flood, not the backlogs.
    let ports: Vec<u32> = (5200..5208).collect();
    let paths: Vec<PathBuf> = ports.iter().map(|p| h.dir.join(&format!("v.sock_{p}"))).collect();
    let listeners: Vec<UnixListener> = paths.iter().map(|p| UnixListener::bind(p).unwrap()).collect();
    for listener in &listeners {
        listener.set_nonblocking(true).unwrap();
    }
    let port_of = |i: usize| ports[i % ports.len()];
    let guest_port = |i: usize| 10_000 + i as u32;
    let (fds_before, _) = open_fds(&paths);

    let flood = MAX_CONNECTIONS + MAX_QUEUED_RESETS + 1000;
    send_batched(&mut h, (0..flood).map(|i| guest(op::REQUEST, guest_port(i), port_of(i))), |h| {
        assert!(h.connections() <= MAX_CONNECTIONS);
        assert!(h.device.lock().unwrap().rx_queue_len() <= MAX_RX_ITEMS);
    });
    assert_eq!(h.connections(), MAX_CONNECTIONS);
    let (fds_flooded, sockets) = open_fds(&paths);
    assert_eq!(sockets, MAX_CONNECTIONS, "sockets connected to the flooded ports");
    assert!(
        fds_flooded <= fds_before + MAX_CONNECTIONS + FD_SLACK,
        "{fds_before} fds before a flood of {flood} requests, {fds_flooded} after"
    );

    // The first MAX_CONNECTIONS requests are accepted, the rest refused, as far as the queue
    // of resets holds them.
    let answers = drain_rx(&mut h);
    let (responses, resets): (Vec<&Header>, Vec<&Header>) =
        answers.iter().partition(|hdr| hdr.op == op::RESPONSE);
    assert_eq!((responses.len(), resets.len()), (MAX_CONNECTIONS, MAX_QUEUED_RESETS));
    for (i, hdr) in responses.iter().enumerate() {
        assert_eq!((hdr.src_port, hdr.dst_port), (port_of(i), guest_port(i)), "response {i}");
    }
    for (i, hdr) in resets.iter().enumerate() {
        let k = MAX_CONNECTIONS + i;
        assert_eq!((hdr.op, hdr.src_port, hdr.dst_port), (op::RST, port_of(k), guest_port(k)), "reset {i}");
    }

    // The guest resets them all: every socket is closed, and an RST gets no answer.
    send_batched(&mut h, (0..MAX_CONNECTIONS).map(|i| guest(op::RST, guest_port(i), port_of(i))), |_| {});
    assert_eq!(h.connections(), 0);
    let (fds_after, sockets) = open_fds(&paths);
    assert_eq!(sockets, 0, "sockets left connected to the flooded ports");
    assert!(
        fds_after <= fds_before + FD_SLACK,
        "{fds_before} fds before the flood, {fds_after} after the resets"
    );
    assert!(drain_rx(&mut h).is_empty());
    assert_eq!(h.device.lock().unwrap().rx_queue_len(), 0);
    // The host programs, accepting at last, find each connection closed.
    let mut accepted = 0;
    for listener in &listeners {
        while let Ok((stream, _)) = listener.accept() {
            assert!(closed(&stream));
            accepted += 1;
        }
    }
    assert_eq!(accepted, MAX_CONNECTIONS);

    // Served as before (drain_rx left rx buffers posted).
    h.send(guest(op::REQUEST, 999, ports[0]), &[]);
    let (resp, _) = h.expect_one();
    assert_eq!((resp.op, resp.src_port, resp.dst_port), (op::RESPONSE, ports[0], 999));
    let (server, _) = listeners[0].accept().unwrap();
    h.send(guest(op::RW, 999, ports[0]), b"after the flood");
    assert_eq!(read_available(&server), b"after the flood");
    // Dropping the device closes the rest.
    drop(h);
    assert_eq!(open_fds(&paths).1, 0);
    assert!(closed(&server));
}

/// A guest that repeats one REQUEST (the same ports) over and over. A REQUEST on an open
/// stream is a protocol violation: it resets the stream (RST, socket closed), and the next
/// opens a new one. So the key never has more than one stream and one socket, and the answers
/// stay bounded: the resets by MAX_QUEUED_RESETS, the rx queue items the reset streams leave
/// behind by MAX_RX_ITEMS.
#[test]
fn a_repeated_request_never_holds_more_than_one_stream() {
    let _fds = fd_counting();
    let mut h = Harness::new("dupreq");
    let paths = [h.dir.join("v.sock_52")];
    let listener = UnixListener::bind(&paths[0]).unwrap();
    listener.set_nonblocking(true).unwrap();
    let (fds_before, _) = open_fds(&paths);
    let request = guest(op::REQUEST, 999, 52);

    // One at a time, the exact answers.
    h.give_rx_buffers(1);
    h.send(request, &[]);
    assert_eq!(h.expect_one().0.op, op::RESPONSE);
    assert_eq!((h.connections(), open_fds(&paths).1), (1, 1));
    h.give_rx_buffers(1);
    h.send(request, &[]);
    let (rst, _) = h.expect_one();
    assert_eq!((rst.op, rst.src_port, rst.dst_port), (op::RST, 52, 999));
    assert_eq!((h.connections(), open_fds(&paths).1), (0, 0));
    let (first, _) = listener.accept().unwrap();
    assert!(closed(&first));
    h.give_rx_buffers(1);
    h.send(request, &[]);
    assert_eq!(h.expect_one().0.op, op::RESPONSE);
    assert_eq!((h.connections(), open_fds(&paths).1), (1, 1));

    // A flood of it, without rx buffers; odd, so that it ends with the stream reset. The host
    // program takes (and closes) what reaches it, so that its listen backlog never fills and
    // every other repeat does open a stream.
    let repeats = 2 * MAX_RX_ITEMS + 1;
    send_batched(&mut h, std::iter::repeat_n(request, repeats), |h| {
        assert!(h.connections() <= 1);
        let sockets = open_fds(&paths).1;
        assert!(sockets <= 1, "{sockets} sockets for one key");
        let items = h.device.lock().unwrap().rx_queue_len();
        assert!(items <= MAX_RX_ITEMS, "{items} items in the rx queue");
        while let Ok((stream, _)) = listener.accept() {
            drop(stream);
        }
    });
    assert_eq!(h.connections(), 0);
    let answers = drain_rx(&mut h);
    assert_eq!(answers.len(), MAX_QUEUED_RESETS);
    assert!(answers.iter().all(|a| (a.op, a.src_port, a.dst_port) == (op::RST, 52, 999)));
    assert_eq!(h.device.lock().unwrap().rx_queue_len(), 0);
    let (fds_after, sockets) = open_fds(&paths);
    assert_eq!(sockets, 0);
    assert!(fds_after <= fds_before + FD_SLACK, "{fds_before} fds before, {fds_after} after");

    // Served as before (drain_rx left rx buffers posted).
    while let Ok((stream, _)) = listener.accept() {
        assert!(closed(&stream));
    }
    h.send(request, &[]);
    assert_eq!(h.expect_one().0.op, op::RESPONSE);
    let (server, _) = listener.accept().unwrap();
    h.send(guest(op::RW, 999, 52), b"one stream");
    assert_eq!(read_available(&server), b"one stream");
}

/// REQUESTs to host ports where nothing listens (no socket file; a socket file whose listener
/// is gone): each is answered RST and costs no fd; a flood of them without rx buffers queues
/// at most MAX_QUEUED_RESETS.
#[test]
fn a_flood_of_requests_to_ports_nobody_listens_on_is_reset() {
    let _fds = fd_counting();
    let mut h = Harness::new("reqnolisten");
    let ports = [77, 78];
    drop(UnixListener::bind(h.dir.join("v.sock_78")).unwrap());
    let port_of = |i: usize| ports[i % ports.len()];
    let guest_port = |i: usize| 10_000 + i as u32;
    let (fds_before, _) = open_fds(&[]);

    // With rx buffers: one RST each, to the port that asked.
    let rx_batch = usize::from(QUEUE_SIZE) / 2 - 8;
    for round in 0..4 {
        h.give_rx_buffers(rx_batch);
        let first = round * rx_batch;
        send_batched(
            &mut h,
            (first..first + rx_batch).map(|i| guest(op::REQUEST, guest_port(i), port_of(i))),
            |_| {},
        );
        let got = h.received();
        assert_eq!(got.len(), rx_batch);
        for (k, (hdr, _)) in (first..).zip(&got) {
            assert_eq!((hdr.op, hdr.src_port, hdr.dst_port), (op::RST, port_of(k), guest_port(k)));
        }
    }

    // Without: the queue of resets stops growing at MAX_QUEUED_RESETS.
    let flood = MAX_QUEUED_RESETS + 1000;
    send_batched(&mut h, (0..flood).map(|i| guest(op::REQUEST, guest_port(i), port_of(i))), |h| {
        assert_eq!(h.connections(), 0);
        assert!(h.device.lock().unwrap().rx_queue_len() <= MAX_QUEUED_RESETS);
    });
    let (fds_after, _) = open_fds(&[]);
    assert!(
        fds_after <= fds_before + FD_SLACK,
        "{fds_before} fds before a flood of {flood}, {fds_after} after"
    );
    let answers = drain_rx(&mut h);
    assert_eq!(answers.len(), MAX_QUEUED_RESETS);
    for (k, hdr) in answers.iter().enumerate() {
        assert_eq!((hdr.op, hdr.src_port, hdr.dst_port), (op::RST, port_of(k), guest_port(k)));
    }

    // Once a program listens there, the port serves (drain_rx left rx buffers posted).
    let listener = UnixListener::bind(h.dir.join("v.sock_77")).unwrap();
    h.send(guest(op::REQUEST, 999, 77), &[]);
    assert_eq!(h.expect_one().0.op, op::RESPONSE);
    assert!(listener.accept().is_ok());
    assert_eq!(h.connections(), 1);
}

#[test]
fn unix_close_sends_shutdown_and_the_guest_close_finishes_the_stream() {
    let mut h = Harness::new("hostclose");
    let (client, host_port) = h.host_connect(7);
    (&client).write_all(b"last words").unwrap();
    drop(client);
    h.give_rx_buffers(2);
    h.pump();
    let packets = h.received();
    assert_eq!(packets.len(), 2);
    assert_eq!((packets[0].0.op, packets[0].1.as_slice()), (op::RW, &b"last words"[..]));
    let shutdown = packets[1].0;
    assert_eq!(shutdown.op, op::SHUTDOWN);
    assert_ne!(shutdown.flags & SHUTDOWN_SEND, 0);
    // The guest closes its socket too: the device finishes the stream with RST.
    h.give_rx_buffers(1);
    h.send(Header { flags: SHUTDOWN_SEND | SHUTDOWN_RCV, ..guest(op::SHUTDOWN, 7, host_port) }, &[]);
    let (rst, _) = h.expect_one();
    assert_eq!(rst.op, op::RST);
    assert_eq!(h.connections(), 0);
}

#[test]
fn unix_half_close_keeps_the_other_direction_open() {
    let mut h = Harness::new("halfclose");
    let (client, host_port) = h.host_connect(7);
    client.shutdown(Shutdown::Write).unwrap();
    h.give_rx_buffers(1);
    let (shutdown, _) = h.expect_one();
    assert_eq!((shutdown.op, shutdown.flags), (op::SHUTDOWN, SHUTDOWN_SEND));
    h.send(guest(op::RW, 7, host_port), b"still listening");
    assert_eq!(read_available(&client), b"still listening");
    assert_eq!(h.connections(), 1);
}

#[test]
fn guest_shutdown_closes_the_unix_write_side_then_the_stream() {
    let mut h = Harness::new("guestclose");
    let (client, host_port) = h.host_connect(8);
    h.send(guest(op::RW, 8, host_port), b"bye");
    h.send(Header { flags: SHUTDOWN_SEND, ..guest(op::SHUTDOWN, 8, host_port) }, &[]);
    // The client reads what was sent, then EOF.
    assert_eq!(read_available(&client), b"bye");
    assert!(closed(&client));
    // It can still talk back.
    (&client).write_all(b"ack").unwrap();
    h.give_rx_buffers(1);
    let (pkt, data) = h.expect_one();
    assert_eq!((pkt.op, data.as_slice()), (op::RW, &b"ack"[..]));
    // Its close ends the stream: SHUTDOWN, then RST since the guest already stopped sending.
    drop(client);
    h.give_rx_buffers(2);
    h.pump();
    let ops: Vec<u16> = h.received().iter().map(|p| p.0.op).collect();
    assert_eq!(ops, [op::SHUTDOWN, op::RST]);
    assert_eq!(h.connections(), 0);
}

#[test]
fn guest_rst_on_an_open_stream_closes_the_unix_socket() {
    let mut h = Harness::new("guestrst");
    let (client, host_port) = h.host_connect(11);
    h.send(guest(op::RST, 11, host_port), &[]);
    assert!(closed(&client));
    assert_eq!(h.connections(), 0);
    h.give_rx_buffers(1);
    h.pump();
    assert!(h.received().is_empty(), "no answer to an RST");
}

#[test]
fn host_data_waits_for_guest_credit() {
    let mut h = Harness::new("credit");
    let client = UnixStream::connect(&h.uds).unwrap();
    (&client).write_all(b"CONNECT 3\n").unwrap();
    h.give_rx_buffers(1);
    let (req, _) = h.expect_one();
    // The guest accepts with only 8 bytes of buffer.
    h.send(Header { buf_alloc: 8, ..guest(op::RESPONSE, 3, req.src_port) }, &[]);
    read_available(&client);
    (&client).write_all(b"0123456789abcdef").unwrap();
    h.give_rx_buffers(4);
    h.pump();
    let packets = h.received();
    let summary: Vec<(u16, Vec<u8>)> = packets.into_iter().map(|(hdr, d)| (hdr.op, d)).collect();
    assert_eq!(summary, [(op::RW, b"01234567".to_vec()), (op::CREDIT_REQUEST, vec![])]);
    // Nothing more until the guest's reader makes room.
    h.pump();
    assert!(h.received().is_empty());
    h.send(Header { buf_alloc: 8, fwd_cnt: 8, ..guest(op::CREDIT_UPDATE, 3, req.src_port) }, &[]);
    h.pump();
    let data: Vec<u8> = h.received().into_iter().flat_map(|(_, d)| d).collect();
    assert_eq!(data, b"89abcdef");
}

#[test]
fn answers_a_credit_request() {
    let mut h = Harness::new("creditreq");
    let (_client, host_port) = h.host_connect(4);
    h.give_rx_buffers(1);
    h.send(guest(op::CREDIT_REQUEST, 4, host_port), &[]);
    let (update, _) = h.expect_one();
    assert_eq!((update.op, update.buf_alloc, update.fwd_cnt), (op::CREDIT_UPDATE, HOST_BUF_SIZE, 0));
}

/// A megabyte each way, the guest keeping to its credit and the host side reading and writing
/// from another thread, as host programs do.
#[test]
fn a_megabyte_each_way_arrives_intact() {
    let mut h = Harness::new("bulk");
    let (client, host_port) = h.host_connect(6);
    client.set_nonblocking(false).unwrap();
    let pattern = |i: usize| (i * 7 + i / 251) as u8;
    const TOTAL: usize = 1 << 20;

    let writer = {
        let client = client.try_clone().unwrap();
        std::thread::spawn(move || {
            let data: Vec<u8> = (0..TOTAL).map(pattern).collect();
            (&client).write_all(&data).unwrap();
        })
    };
    let reader = {
        let client = client.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut got = vec![0u8; TOTAL];
            (&client).read_exact(&mut got).unwrap();
            got
        })
    };

    let mut to_host: Vec<u8> = (0..TOTAL).map(|i| pattern(i).wrapping_add(1)).collect();
    let mut received = Vec::new();
    // The guest's view of the host's buffer, from the packets it gets.
    let (mut host_buf_alloc, mut host_fwd_cnt, mut sent) = (HOST_BUF_SIZE, 0u32, 0u32);
    let mut guest_fwd_cnt = 0u32;
    let deadline = Instant::now() + Duration::from_secs(60);
    while received.len() < TOTAL || !to_host.is_empty() {
        assert!(
            Instant::now() < deadline,
            "stuck at {} received, {} left to send",
            received.len(),
            to_host.len()
        );
        while h.tx.take_used(&h.mem).is_some() {}
        let want = 16u16.saturating_sub(h.rx.outstanding());
        if want > 0 {
            h.give_rx_buffers(want as usize);
        }
        // Send what the host's credit allows, up to a full 64 KiB packet.
        let credit = host_buf_alloc.saturating_sub(sent.wrapping_sub(host_fwd_cnt));
        let chunk = to_host.len().min(credit as usize).min(64 * 1024);
        if chunk > 0 {
            let payload: Vec<u8> = to_host.drain(..chunk).collect();
            sent = sent.wrapping_add(chunk as u32);
            h.send(Header { fwd_cnt: guest_fwd_cnt, ..guest(op::RW, 6, host_port) }, &payload);
        } else {
            h.pump();
        }
        let mut consumed = false;
        for (hdr, data) in h.received() {
            host_buf_alloc = hdr.buf_alloc;
            host_fwd_cnt = hdr.fwd_cnt;
            match hdr.op {
                op::RW => {
                    guest_fwd_cnt = guest_fwd_cnt.wrapping_add(data.len() as u32);
                    received.extend_from_slice(&data);
                    consumed = true;
                }
                op::CREDIT_UPDATE | op::CREDIT_REQUEST => {}
                other => panic!("unexpected op {other}"),
            }
        }
        // The guest's reader consumed everything: say so, as Linux does.
        if consumed {
            h.send(Header { fwd_cnt: guest_fwd_cnt, ..guest(op::CREDIT_UPDATE, 6, host_port) }, &[]);
        }
    }
    writer.join().unwrap();
    let expected: Vec<u8> = (0..TOTAL).map(pattern).collect();
    assert!(received == expected, "host-to-guest bytes differ");
    let got = reader.join().unwrap();
    assert!(
        got.iter().enumerate().all(|(i, &b)| b == pattern(i).wrapping_add(1)),
        "guest-to-host bytes differ"
    );
}

/// A guest that sends past its credit while the host program is not reading: its packets stay
/// on the tx queue, nothing is dropped, and everything arrives once the program reads.
#[test]
fn a_full_unix_socket_holds_back_the_tx_queue_without_losing_bytes() {
    let mut h = Harness::new("backpressure");
    let (client, host_port) = h.host_connect(12);
    const TOTAL: usize = 1 << 20;
    let data: Vec<u8> = (0..TOTAL).map(|i| (i % 253) as u8).collect();
    for chunk in data.chunks(32 * 1024) {
        h.send(guest(op::RW, 12, host_port), chunk);
    }
    // More than the unix socket and the device's buffer hold: the device stopped taking packets.
    assert!(h.tx_pending() > 0, "every packet was consumed: the socket never filled");
    assert_eq!(h.connections(), 1);

    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < TOTAL {
        assert!(Instant::now() < deadline, "stuck at {} bytes", got.len());
        got.extend(read_available(&client));
        h.pump();
    }
    assert!(got == data, "bytes differ");
    assert_eq!(h.tx_pending(), 0);
    assert_eq!(h.connections(), 1);
}

#[test]
fn device_reset_closes_every_stream() {
    let mut h = Harness::new("reset");
    let (client, _) = h.host_connect(21);
    assert!(h.device.lock().unwrap().reset());
    h.pump();
    assert!(closed(&client));
    assert_eq!(h.connections(), 0);
    assert!(!h.device.lock().unwrap().is_activated());
    // The listening socket still takes clients for the next activation.
    let again = UnixStream::connect(&h.uds).unwrap();
    (&again).write_all(b"CONNECT 21\n").unwrap();
    h.pump();
    assert!(!closed(&again));
}

/// The guest side of a driver that posts descriptor 0 as a chain for as long as the ring has
/// room: one each call, false when the ring is full.
fn post_head_zero(mem: &GuestMemoryMmap, avail: GuestAddress, used: GuestAddress) -> bool {
    let used_idx: u16 = mem.read_obj(used.unchecked_add(2)).unwrap();
    let avail_idx: u16 = mem.read_obj(avail.unchecked_add(2)).unwrap();
    if avail_idx.wrapping_sub(used_idx) >= QUEUE_SIZE {
        return false;
    }
    mem.write_obj(0u16, avail.unchecked_add(4 + u64::from(avail_idx % QUEUE_SIZE) * 2)).unwrap();
    mem.write_obj(avail_idx.wrapping_add(1), avail.unchecked_add(2)).unwrap();
    true
}

#[test]
fn a_guest_that_keeps_the_tx_queue_full_does_not_hold_the_event_loop() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut h = Harness::new("busy-tx");
    let (avail, used) = (h.tx.avail, h.tx.used);
    // A full ring, and a vcpu that refills it as fast as the device returns chains.
    while post_head_zero(&h.mem, avail, used) {}
    let stop = Arc::new(AtomicBool::new(false));
    let guest = {
        let (mem, stop) = (h.mem.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if !post_head_zero(&mem, avail, used) {
                    std::hint::spin_loop();
                }
            }
        })
    };
    h.notify(TX_QUEUE);
    let mut events = std::mem::replace(&mut h.events, EventManager::new().unwrap());
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let handled = events.run_with_timeout(1000);
        let _ = done_tx.send((handled.is_ok(), events));
    });
    // Without a budget the pass ends only when the guest stops posting, which it does here
    // once the wait is over (so a failure ends too).
    let returned = done_rx.recv_timeout(Duration::from_secs(60));
    stop.store(true, Ordering::Relaxed);
    guest.join().unwrap();
    let (ok, events) = returned.expect("one pass over the tx queue went on while the guest kept it full");
    h.events = events;
    assert!(ok);
    // The rest waits for the next pass: the device raised its own tx event again.
    assert!(
        h.device.lock().unwrap().queue_events()[TX_QUEUE].read().is_ok(),
        "the device stopped with chains left and did not ask to be called again"
    );
    h.pump();
}

#[test]
fn an_rx_pass_serves_a_queue_of_buffers_too_small_then_yields() {
    let mut h = Harness::new("busy-rx");
    let (avail, used) = (h.rx.avail, h.rx.used);
    // A full ring of descriptor 0, one writable byte: too small for a header, each is returned
    // unused. (A vcpu refilling it as fast as they come back would keep one pass going.)
    let tiny = RawDescriptor::from(Descriptor::new(h.rx.buffers, 1, VRING_DESC_F_WRITE as u16, 0));
    h.mem.write_obj(tiny, h.rx.desc_table).unwrap();
    while post_head_zero(&h.mem, avail, used) {}
    // A host client: its REQUEST waits for a buffer big enough.
    let client = UnixStream::connect(&h.uds).unwrap();
    (&client).write_all(b"CONNECT 31\n").unwrap();
    for _ in 0..100 {
        if h.mem.read_obj::<u16>(used.unchecked_add(2)).unwrap() == QUEUE_SIZE {
            break;
        }
        h.events.run_with_timeout(100).unwrap();
    }
    assert_eq!(h.mem.read_obj::<u16>(used.unchecked_add(2)).unwrap(), QUEUE_SIZE);
    // The pass stopped at a queue's worth and raised the rx event for the next one.
    assert!(
        h.device.lock().unwrap().queue_events()[RX_QUEUE].read().is_ok(),
        "the rx pass stopped with a packet waiting and did not ask to be called again"
    );
    // The request was kept, and reaches the first buffer that can hold it.
    while h.rx.take_used(&h.mem).is_some() {}
    h.rx.next_slot = 1;
    h.rx.avail_idx = h.mem.read_obj(avail.unchecked_add(2)).unwrap();
    h.give_rx_buffers(1);
    let (req, _) = h.expect_one();
    assert_eq!((req.op, req.dst_port), (op::REQUEST, 31));
}
