//! The net device driven the way a guest driver drives it: chains in guest memory on split
//! queues, notifications through the queue eventfds, the device's work run by a real event
//! manager, and a datagram socket pair standing in for the tap (a frame per datagram).

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};

use event_manager::{EventManager, SubscriberOps};
use vm_memory::{Address, Bytes, GuestAddress};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::header::{EVENT_IDX, MRG_RXBUF, OFFERED};
use super::{Backend, Dropped, Net, HEADER_SIZE, MAX_FRAME, RX_QUEUE, TX_QUEUE};
use crate::devices::virtio::test_driver::{self, DriverQueue, QUEUE_SIZE};
use crate::devices::virtio::{Interrupt, VirtioDevice, TYPE_NET};
use crate::memory::GuestMemoryMmap;

const MAC: [u8; 6] = [0x02, 0x42, 0xac, 0x11, 0x00, 0x02];

/// The device's end of a datagram pair; the test holds the other.
struct PairBackend {
    sock: UnixDatagram,
    offloads: Arc<Mutex<Option<u64>>>,
}

impl Backend for PairBackend {
    fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock.recv(buf)
    }
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        self.sock.send(frame).map(drop)
    }
    fn set_offloads(&mut self, features: u64) -> io::Result<()> {
        *self.offloads.lock().unwrap() = Some(features);
        Ok(())
    }
}

struct Harness {
    mem: GuestMemoryMmap,
    device: Arc<Mutex<Net>>,
    events: EventManager<Arc<Mutex<Net>>>,
    rx: DriverQueue,
    tx: DriverQueue,
    /// The tap's side (a real tap has none).
    peer: Option<UnixDatagram>,
    offloads: Arc<Mutex<Option<u64>>>,
}

impl Harness {
    fn new(features: u64) -> Harness {
        let (dev_end, peer) = UnixDatagram::pair().unwrap();
        dev_end.set_nonblocking(true).unwrap();
        peer.set_nonblocking(true).unwrap();
        let offloads = Arc::new(Mutex::new(None));
        let backend = PairBackend { sock: dev_end, offloads: offloads.clone() };
        let mut h = Harness::with_backend(features, Box::new(backend));
        h.peer = Some(peer);
        h.offloads = offloads;
        h
    }

    fn with_backend(features: u64, backend: Box<dyn Backend>) -> Harness {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x300_0000)]).unwrap();
        let mut net = Net::new(MAC, Some(1500), backend).unwrap();
        net.set_acked_features(features);
        let device = Arc::new(Mutex::new(net));
        let mut events = EventManager::new().unwrap();
        events.add_subscriber(device.clone());
        let (rx, rx_queue) = DriverQueue::new(&mem, 0x1000, 0x100_0000);
        let (tx, tx_queue) = DriverQueue::new(&mem, 0x1_0000, 0x200_0000);
        let interrupt = Arc::new(Interrupt::new(EventFd::new(EFD_NONBLOCK).unwrap()));
        device.lock().unwrap().activate(mem.clone(), vec![rx_queue, tx_queue], interrupt).unwrap();
        let mut h = Harness { mem, device, events, rx, tx, peer: None, offloads: Arc::default() };
        h.pump();
        h
    }

    fn peer(&self) -> &UnixDatagram {
        self.peer.as_ref().expect("a harness with a datagram peer")
    }

    /// Runs the event loop until it has been idle for a moment; a loop that spins fails.
    fn pump(&mut self) {
        test_driver::pump(&mut self.events);
    }

    fn notify(&self, queue: usize) {
        self.device.lock().unwrap().queue_events()[queue].write(1).unwrap();
    }

    fn dropped(&self) -> Dropped {
        self.device.lock().unwrap().dropped()
    }

    /// Puts a frame on the tx queue as Linux does (header and data in one buffer here, in
    /// two when `split`), and runs the loop.
    fn transmit(&mut self, frame: &[u8], split: bool) {
        let lens: Vec<u32> = if split {
            vec![HEADER_SIZE as u32, (frame.len() - HEADER_SIZE) as u32]
        } else {
            vec![frame.len() as u32]
        };
        let (_, addrs) = self.tx.post(&self.mem, &lens, false);
        let mut at = 0;
        for (addr, len) in addrs.iter().zip(&lens) {
            self.mem.write_slice(&frame[at..at + *len as usize], GuestAddress(*addr)).unwrap();
            at += *len as usize;
        }
        self.notify(TX_QUEUE);
        self.pump();
    }

    /// Posts `n` rx chains of one writable buffer of `size` bytes each; returns their
    /// buffers' addresses by head.
    fn post_rx(&mut self, n: usize, size: u32) -> Vec<(u16, u64)> {
        let posted = (0..n)
            .map(|_| {
                let (head, addrs) = self.rx.post(&self.mem, &[size], true);
                (head, addrs[0])
            })
            .collect();
        self.notify(RX_QUEUE);
        posted
    }

    /// The used rx entries since last asked, as (head, len).
    fn used_rx(&mut self) -> Vec<(u16, u32)> {
        std::iter::from_fn(|| self.rx.take_used(&self.mem)).collect()
    }

    fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0u8; len];
        self.mem.read_slice(&mut buf, GuestAddress(addr)).unwrap();
        buf
    }
}

/// A frame with a zero header and `len` bytes of a pattern after it.
fn frame(len: usize) -> Vec<u8> {
    let mut f = vec![0u8; HEADER_SIZE];
    f.extend((0..len).map(|i| (i * 7 + 3) as u8));
    f
}

fn address_of(posted: &[(u16, u64)], head: u16) -> u64 {
    posted
        .iter()
        .find(|(h, _)| *h == head)
        .map(|(_, a)| *a)
        .unwrap_or_else(|| panic!("head {head} not posted"))
}

#[test]
fn the_config_space_has_the_mac_the_link_and_the_mtu() {
    let h = Harness::new(OFFERED);
    let dev = h.device.lock().unwrap();
    assert_eq!(dev.device_type(), TYPE_NET);
    let mut config = [0u8; 12];
    dev.read_config(0, &mut config);
    assert_eq!(&config[..6], &MAC);
    assert_eq!(u16::from_le_bytes([config[6], config[7]]), 1, "link up");
    assert_eq!(u16::from_le_bytes([config[10], config[11]]), 1500);
    // Past the end reads as zeros.
    let mut past = [0xffu8; 4];
    dev.read_config(100, &mut past);
    assert_eq!(past, [0; 4]);
    // The MTU feature only with an MTU.
    let bare = Net::new(
        MAC,
        None,
        Box::new(PairBackend { sock: UnixDatagram::pair().unwrap().0, offloads: Arc::default() }),
    )
    .unwrap();
    assert_ne!(dev.avail_features(), bare.avail_features());
    assert_eq!(bare.avail_features(), OFFERED);
}

#[test]
fn the_offloads_the_driver_took_go_to_the_backend() {
    let h = Harness::new(OFFERED & !EVENT_IDX);
    assert_eq!(*h.offloads.lock().unwrap(), Some(OFFERED & !EVENT_IDX));
}

#[test]
fn a_frame_the_guest_sends_reaches_the_backend_whole() {
    let mut h = Harness::new(OFFERED);
    for (len, split) in [(60, false), (1500, true), (65000, true)] {
        let f = frame(len);
        h.transmit(&f, split);
        let mut got = vec![0u8; MAX_FRAME + 10];
        let n = h.peer().recv(&mut got).unwrap();
        assert_eq!(&got[..n], &f[..], "frame of {len}");
    }
    assert_eq!(h.tx.take_used(&h.mem).map(|(_, len)| len), Some(0));
    assert_eq!(h.dropped(), Dropped::default());
}

#[test]
fn chains_too_short_or_too_long_are_dropped_and_the_device_goes_on() {
    let mut h = Harness::new(OFFERED);
    // Shorter than a header.
    h.transmit(&[0u8; 4], false);
    // Longer than any frame: two 64 KiB descriptors.
    let (_, _) = h.tx.post(&h.mem, &[0x1_0000, 0x1_0000], false);
    h.notify(TX_QUEUE);
    h.pump();
    // Outside guest memory.
    let (head, _) = h.tx.post(&h.mem, &[64], false);
    let desc = h.tx.desc_table.unchecked_add(u64::from(head) * 16);
    h.mem.write_obj(0x1_0000_0000u64, desc).unwrap();
    h.notify(TX_QUEUE);
    h.pump();
    assert_eq!(h.dropped().tx, 3);
    let mut buf = vec![0u8; MAX_FRAME];
    assert_eq!(h.peer().recv(&mut buf).map_err(|e| e.kind()), Err(io::ErrorKind::WouldBlock));
    // Every chain came back, and the next good frame goes through.
    let f = frame(100);
    h.transmit(&f, false);
    let n = h.peer().recv(&mut buf).unwrap_or(0);
    assert_eq!(&buf[..n], &f[..]);
    assert_eq!(std::iter::from_fn(|| h.tx.take_used(&h.mem)).count(), 4);
}

#[test]
fn a_large_frame_spreads_over_merged_buffers() {
    let mut h = Harness::new(OFFERED);
    let posted = h.post_rx(8, 4096);
    h.pump();
    let f = frame(9000);
    h.peer().send(&f).unwrap();
    h.pump();
    let used = h.used_rx();
    assert_eq!(used.iter().map(|u| u.1).collect::<Vec<_>>(), [4096, 4096, (f.len() - 8192) as u32]);
    let mut got = Vec::new();
    for (head, len) in &used {
        got.extend(h.read(address_of(&posted, *head), *len as usize));
    }
    assert_eq!(u16::from_le_bytes([got[10], got[11]]), 3, "num_buffers");
    assert_eq!(&got[HEADER_SIZE..], &f[HEADER_SIZE..]);
    // A small one takes one buffer and says so.
    h.peer().send(&frame(50)).unwrap();
    h.pump();
    let used = h.used_rx();
    assert_eq!(used.len(), 1);
    assert_eq!(h.read(address_of(&posted, used[0].0) + 10, 2), [1, 0]);
}

#[test]
fn without_merging_a_frame_takes_one_chain_or_is_dropped() {
    let mut h = Harness::new(OFFERED & !MRG_RXBUF);
    let posted = h.post_rx(2, 2048);
    h.pump();
    let f = frame(1000);
    h.peer().send(&f).unwrap();
    h.pump();
    let used = h.used_rx();
    assert_eq!(used.len(), 1);
    assert_eq!(used[0].1 as usize, f.len());
    let got = h.read(address_of(&posted, used[0].0), f.len());
    assert_eq!(&got[HEADER_SIZE..], &f[HEADER_SIZE..]);
    assert_eq!(u16::from_le_bytes([got[10], got[11]]), 1);
    // Too big for the buffers the guest posts: dropped, the buffer comes back empty.
    h.peer().send(&frame(3000)).unwrap();
    h.pump();
    assert_eq!(h.used_rx(), [(used[0].0 + 1, 0)]);
    assert_eq!(h.dropped().rx, 1);
}

#[test]
fn a_frame_waits_for_buffers_without_spinning_the_loop() {
    let mut h = Harness::new(OFFERED);
    let frames: Vec<Vec<u8>> = (0..3).map(|i| frame(100 + i)).collect();
    for f in &frames {
        h.peer().send(f).unwrap();
    }
    // No buffers: pump() fails if the backend's readable fd kept the loop busy.
    h.pump();
    assert!(h.used_rx().is_empty());
    let posted = h.post_rx(3, 4096);
    h.pump();
    let used = h.used_rx();
    assert_eq!(used.len(), 3, "every frame waited, none was lost");
    for ((head, len), f) in used.iter().zip(&frames) {
        assert_eq!(*len as usize, f.len());
        assert_eq!(
            h.read(address_of(&posted, *head) + HEADER_SIZE as u64, f.len() - HEADER_SIZE),
            &f[HEADER_SIZE..]
        );
    }
    assert_eq!(h.dropped(), Dropped::default());
}

#[test]
fn with_event_idx_the_device_asks_for_the_next_notification() {
    let mut h = Harness::new(OFFERED);
    let f = frame(60);
    h.transmit(&f, false);
    h.transmit(&f, false);
    // avail_event, after the used ring's entries: the avail index the device wants to hear of.
    let avail_event: u16 = h.mem.read_obj(h.tx.used.unchecked_add(4 + 8 * u64::from(QUEUE_SIZE))).unwrap();
    assert_eq!(avail_event, 2);
    // Starved for rx buffers, it asks to hear of the next one.
    h.peer().send(&f).unwrap();
    h.pump();
    let rx_event: u16 = h.mem.read_obj(h.rx.used.unchecked_add(4 + 8 * u64::from(QUEUE_SIZE))).unwrap();
    assert_eq!(rx_event, 0);
    h.post_rx(1, 4096);
    h.pump();
    assert_eq!(h.used_rx().len(), 1);
}

#[test]
fn a_reset_device_stops_reading_the_backend() {
    let mut h = Harness::new(OFFERED);
    assert!(h.device.lock().unwrap().reset());
    h.pump();
    h.peer().send(&frame(60)).unwrap();
    // Not active: the backend's fd is out of the epoll set, so its pending frame does not
    // keep the loop busy (pump fails if it does), and nothing is read or dropped.
    h.pump();
    assert!(!h.device.lock().unwrap().is_activated());
    assert_eq!(h.dropped(), Dropped::default());
}

/// Frames through a real tap: the guest's ARP request for the host's address gets the host
/// kernel's reply, with the virtio-net header both ways. In a network namespace of its own,
/// on a thread of its own; skipped where this process may not make one (not root).
#[test]
fn a_real_tap_carries_an_arp_request_and_its_reply() {
    let outcome = std::thread::spawn(|| -> Option<Result<Vec<u8>, String>> {
        // SAFETY: unshare on a constant flag; it changes only this thread's namespace.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return None;
        }
        Some(arp_through_a_tap())
    })
    .join()
    .unwrap();
    let Some(reply) = outcome else {
        eprintln!("skipped: no network namespace for this test (not root?)");
        return;
    };
    let reply = reply.unwrap();
    // To the guest's MAC, from the tap's, an ARP reply (op 2) saying 10.0.2.1 is there.
    assert_eq!(&reply[0..6], &MAC);
    assert_eq!(&reply[12..14], &[0x08, 0x06]);
    assert_eq!(&reply[20..22], &[0, 2]);
    assert_eq!(&reply[28..32], &[10, 0, 2, 1]);
}

/// In the calling thread's (new) network namespace: a tap with 10.0.2.1/24, up; the device on
/// it sends an ARP request from 10.0.2.2; returns the ARP reply's Ethernet frame.
fn arp_through_a_tap() -> Result<Vec<u8>, String> {
    let tap = super::Tap::open("hullnet0").map_err(|e| e.to_string())?;
    configure_up("hullnet0", [10, 0, 2, 1])?;
    let mut h = Harness::with_backend(OFFERED, Box::new(tap));
    let posted = h.post_rx(16, 4096);
    let mut request = vec![0u8; HEADER_SIZE];
    request.extend([0xff; 6]);
    request.extend(MAC);
    request.extend([0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    request.extend(MAC);
    request.extend([10, 0, 2, 2]);
    request.extend([0; 6]);
    request.extend([10, 0, 2, 1]);
    h.transmit(&request, true);
    if h.dropped() != Dropped::default() {
        return Err(format!("dropped: {:?}", h.dropped()));
    }
    // The kernel may also send its own frames (IPv6 router solicitations) on the new link.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        h.pump();
        for (head, len) in h.used_rx() {
            let bytes = h.read(address_of(&posted, head), len as usize);
            let eth = &bytes[HEADER_SIZE..];
            if eth.len() >= 42 && eth[12..14] == [0x08, 0x06] && eth[20..22] == [0, 2] {
                return Ok(eth.to_vec());
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Err("no ARP reply came through the tap".into())
}

/// Gives the interface `name` the address `ip`/24 and brings it up (SIOCSIFADDR,
/// SIOCSIFNETMASK, SIOCSIFFLAGS on an AF_INET socket).
fn configure_up(name: &str, ip: [u8; 4]) -> Result<(), String> {
    #[repr(C)]
    struct IfReqAddr {
        name: [u8; libc::IFNAMSIZ],
        addr: libc::sockaddr_in,
        _pad: [u8; 8],
    }
    #[repr(C)]
    struct IfReqFlags {
        name: [u8; libc::IFNAMSIZ],
        flags: libc::c_short,
        _pad: [u8; 22],
    }
    let mut ifname = [0u8; libc::IFNAMSIZ];
    ifname[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: a plain socket call on constant arguments.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(format!("socket: {}", io::Error::last_os_error()));
    }
    let sin = |a: [u8; 4]| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a) },
        sin_zero: [0; 8],
    };
    let result = (|| {
        for (request, a) in [(libc::SIOCSIFADDR, ip), (libc::SIOCSIFNETMASK, [255, 255, 255, 0])] {
            let req = IfReqAddr { name: ifname, addr: sin(a), _pad: [0; 8] };
            // SAFETY: these ioctls read a `struct ifreq` holding a sockaddr_in, which `req` is.
            if unsafe { libc::ioctl(sock, request, &req) } < 0 {
                return Err(format!("ioctl {request:#x}: {}", io::Error::last_os_error()));
            }
        }
        let mut req = IfReqFlags { name: ifname, flags: 0, _pad: [0; 22] };
        // SAFETY: SIOCGIFFLAGS and SIOCSIFFLAGS read and write a `struct ifreq` with the flags.
        unsafe {
            if libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req) < 0 {
                return Err(format!("SIOCGIFFLAGS: {}", io::Error::last_os_error()));
            }
            req.flags |= libc::IFF_UP as libc::c_short;
            if libc::ioctl(sock, libc::SIOCSIFFLAGS, &req) < 0 {
                return Err(format!("SIOCSIFFLAGS: {}", io::Error::last_os_error()));
            }
        }
        Ok(())
    })();
    // SAFETY: closes the socket made above, used by nothing else.
    unsafe { libc::close(sock) };
    result
}
