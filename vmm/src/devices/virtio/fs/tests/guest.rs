//! A pretend guest driver for the device tests: guest memory with the two split queues
//! (the devices' shared test driver), FUSE requests written into descriptor chains the way Linux's
//! virtio-fs driver lays them out (header and arguments readable, reply header and payload
//! writable), and the replies read back from the used ring.

use std::mem::size_of;
use std::path::Path;
use std::sync::Arc;

use fuse_backend_rs::abi::fuse_abi::{InHeader, Opcode, OutHeader};
use vm_memory::{ByteValued, Bytes, GuestAddress};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::super::{Fs, NUM_QUEUES};
use crate::devices::virtio::test_driver::DriverQueue;
use crate::devices::virtio::{Interrupt, VirtioDevice, INT_USED_RING};
use crate::memory::GuestMemoryMmap;

pub const HIPRIO: usize = 0;
pub const REQUEST: usize = 1;

const MEM_SIZE: usize = 16 << 20;
const QUEUE_ADDRS: [u64; NUM_QUEUES] = [0, 0x10_0000];
/// Request and reply buffers are carved from here up.
const BUFFERS_START: u64 = 0x20_0000;
const IN_HEADER_LEN: usize = size_of::<InHeader>();
const OUT_HEADER_LEN: usize = size_of::<OutHeader>();

pub fn memory() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap()
}

/// One descriptor of a chain.
pub struct Buf {
    pub addr: u64,
    pub len: u32,
    pub writable: bool,
}

/// What came back on the used ring.
pub struct Reply {
    pub used_len: u32,
    pub header: OutHeader,
    /// The bytes after the header, as many as the header's len says.
    pub payload: Vec<u8>,
}

impl Reply {
    pub fn body<T: ByteValued>(&self) -> T {
        T::from_slice(&self.payload[..size_of::<T>()]).copied().unwrap()
    }

    /// The second struct of a two-struct reply (CREATE: entry then open).
    pub fn body_at<T: ByteValued>(&self, offset: usize) -> T {
        T::from_slice(&self.payload[offset..offset + size_of::<T>()]).copied().unwrap()
    }
}

pub struct Guest<'a> {
    pub mem: &'a GuestMemoryMmap,
    queues: Vec<DriverQueue>,
    next_buf: u64,
    next_unique: u64,
    interrupt: Arc<Interrupt>,
    pub dev: Fs,
}

impl<'a> Guest<'a> {
    /// A device on `dir`, activated on fresh queues.
    pub fn new(mem: &'a GuestMemoryMmap, dir: &Path, read_only: bool) -> Self {
        // The slot buffers DriverQueue would use lie past the rings; these tests place their
        // own buffers from BUFFERS_START (`post_bufs`).
        let (queues, device_queues): (Vec<_>, Vec<_>) =
            QUEUE_ADDRS.iter().map(|&addr| DriverQueue::new(mem, addr, BUFFERS_START)).unzip();
        let mut dev = Fs::new("share", dir, read_only).unwrap();
        let interrupt = Arc::new(Interrupt::new(EventFd::new(EFD_NONBLOCK).unwrap()));
        dev.activate(mem.clone(), device_queues, Arc::clone(&interrupt)).unwrap();
        Guest { mem, queues, next_buf: BUFFERS_START, next_unique: 1, interrupt, dev }
    }

    /// Guest memory for a buffer of `len` bytes holding `data` (zeros after it).
    pub fn alloc(&mut self, len: usize, data: &[u8]) -> u64 {
        let addr = self.next_buf;
        self.next_buf += (len as u64).next_multiple_of(64).max(64);
        let mut bytes = vec![0u8; len];
        bytes[..data.len()].copy_from_slice(data);
        self.mem.write_slice(&bytes, GuestAddress(addr)).unwrap();
        addr
    }

    pub fn unique(&mut self) -> u64 {
        self.next_unique += 1;
        self.next_unique
    }

    /// Puts one chain on `queue` and makes it available; returns its head index.
    pub fn push_chain(&mut self, queue: usize, bufs: &[Buf]) -> u16 {
        let bufs: Vec<(u64, u32, bool)> = bufs.iter().map(|b| (b.addr, b.len, b.writable)).collect();
        self.queues[queue].post_bufs(self.mem, &bufs)
    }

    /// Sends a FUSE request (`opcode` on `nodeid`, `args` after the header) with a reply buffer
    /// of `reply_len` bytes, and returns the reply.
    pub fn call(&mut self, opcode: Opcode, nodeid: u64, args: &[&[u8]], reply_len: usize) -> Reply {
        self.call_as(0, opcode, nodeid, args, reply_len)
    }

    /// [`Guest::call`] from a guest process running as `id` (uid and gid).
    pub fn call_as(
        &mut self,
        id: u32,
        opcode: Opcode,
        nodeid: u64,
        args: &[&[u8]],
        reply_len: usize,
    ) -> Reply {
        let unique = self.unique();
        let mut request = fuse_request(opcode as u32, unique, nodeid, args);
        let header = InHeader::from_mut_slice(&mut request[..IN_HEADER_LEN]).unwrap();
        (header.uid, header.gid) = (id, id);
        let reply = self.send(REQUEST, &request, reply_len);
        assert_eq!(reply.header.unique, unique, "the reply answers the request");
        reply
    }

    /// Sends raw request bytes on `queue`: the header in one descriptor and the arguments in
    /// another, the reply header in one and the rest in another, as Linux does.
    pub fn send(&mut self, queue: usize, request: &[u8], reply_len: usize) -> Reply {
        let mut bufs = Vec::new();
        let (header, args) = request.split_at(request.len().min(IN_HEADER_LEN));
        bufs.push(Buf { addr: self.alloc(header.len(), header), len: header.len() as u32, writable: false });
        if !args.is_empty() {
            bufs.push(Buf { addr: self.alloc(args.len(), args), len: args.len() as u32, writable: false });
        }
        if reply_len > 0 {
            let first = reply_len.min(OUT_HEADER_LEN);
            bufs.push(Buf { addr: self.alloc(first, &[]), len: first as u32, writable: true });
            if reply_len > first {
                let rest = reply_len - first;
                bufs.push(Buf { addr: self.alloc(rest, &[]), len: rest as u32, writable: true });
            }
        }
        self.roundtrip(queue, &bufs)
    }

    /// Pushes a chain, lets the device serve the queue, and reads the reply.
    pub fn roundtrip(&mut self, queue: usize, bufs: &[Buf]) -> Reply {
        let head = self.push_chain(queue, bufs);
        self.dev.process_queue(queue);
        let used_len = self.take_used(queue, head);
        assert_eq!(self.interrupt.status(), INT_USED_RING, "the driver is told");
        self.interrupt.ack(INT_USED_RING);
        let mut reply_bytes = Vec::new();
        for b in bufs.iter().filter(|b| b.writable) {
            let mut bytes = vec![0u8; b.len as usize];
            self.mem.read_slice(&mut bytes, GuestAddress(b.addr)).unwrap();
            reply_bytes.extend(bytes);
        }
        let mut header = OutHeader::default();
        if reply_bytes.len() >= OUT_HEADER_LEN {
            header = *OutHeader::from_slice(&reply_bytes[..OUT_HEADER_LEN]).unwrap();
        }
        let end = (header.len as usize).clamp(OUT_HEADER_LEN, reply_bytes.len().max(OUT_HEADER_LEN));
        let payload = reply_bytes.get(OUT_HEADER_LEN..end).unwrap_or_default().to_vec();
        Reply { used_len, header, payload }
    }

    /// The used ring's next entry on `queue`: it must be for `head`. Returns its length.
    pub fn take_used(&mut self, queue: usize, head: u16) -> u32 {
        let (id, len) = self.queues[queue].take_used(self.mem).expect("one chain returned per request");
        assert!(self.queues[queue].take_used(self.mem).is_none(), "one chain returned per request");
        assert_eq!(id, head);
        len
    }
}

/// A FUSE request: the in header (uid and gid 0, so the server keeps its own credentials) and
/// the arguments after it.
pub fn fuse_request(opcode: u32, unique: u64, nodeid: u64, args: &[&[u8]]) -> Vec<u8> {
    let len = IN_HEADER_LEN + args.iter().map(|a| a.len()).sum::<usize>();
    let header = InHeader { len: len as u32, opcode, unique, nodeid, uid: 0, gid: 0, pid: 1, padding: 0 };
    let mut bytes = header.as_slice().to_vec();
    for a in args {
        bytes.extend_from_slice(a);
    }
    bytes
}

/// A name argument: the bytes and their NUL.
pub fn name(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}
