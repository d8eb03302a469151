//! The virtio-fs device serving FUSE requests the input writes: a read-only share of a small
//! temporary directory, both queues (hiprio and request) activated, then `process_queue` on each,
//! which is what the event loop runs on a notification (request parsing, the FUSE server, the
//! passthrough fs, and the error replies hull writes itself). The queues are well formed; each
//! request's bytes, how its readable part is split and its writable buffers are the input's.

#![no_main]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use vm_memory::{Bytes, GuestAddress};
use vmm::devices::virtio::fs::Fs;
use vmm::devices::virtio::{Interrupt, VirtioDevice};
use vmm_fuzz::{guest_memory, write_desc, Desc, Input, Rings, RAM_END, REGION0, REGION1, REGION_SIZE};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

const QUEUE_SIZE: u16 = 16;
const NEXT: u16 = 1;
const WRITE: u16 = 2;
/// Where request buffers start: after both queues' rings.
const BUFFERS: u64 = 0x2000;

/// The shared directory: a file, a subdirectory with a file, a symlink. Made once per process.
fn shared_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("hull-fuzz-fs-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("d")).expect("creating the shared directory");
        std::fs::write(dir.join("a"), b"hello\n").expect("writing a");
        std::fs::write(dir.join("d/b"), vec![7u8; 5000]).expect("writing d/b");
        let _ = std::os::unix::fs::symlink("a", dir.join("l"));
        dir
    })
}

/// Hands out buffer space in RAM, region 0 after the rings, then region 1.
struct Alloc(u64);

impl Alloc {
    fn take(&mut self, len: u64) -> Option<u64> {
        if self.0 < REGION0 + REGION_SIZE && self.0 + len > REGION0 + REGION_SIZE {
            self.0 = REGION1;
        }
        let addr = self.0;
        (addr + len <= RAM_END).then(|| {
            self.0 += len;
            addr
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mem = guest_memory();
    let rings = [Rings::at(0, QUEUE_SIZE), Rings::at(0x1000, QUEUE_SIZE)];
    let mut next_desc = [0u16; 2];
    let mut heads: [Vec<u16>; 2] = [Vec::new(), Vec::new()];
    let mut alloc = Alloc(BUFFERS);
    'requests: while !input.is_empty() {
        let q = usize::from(input.u8() & 1);
        let request_len = usize::from(input.u16() % 4096);
        let request = input.bytes(request_len);
        let pieces = 1 + usize::from(input.u8() % 4);
        let writable_count = input.u8() % 4;
        let writable: Vec<u64> = (0..writable_count).map(|_| u64::from(input.u16() % 0x2000)).collect();
        let mut descs = Vec::new();
        for piece in request.chunks(request.len().div_ceil(pieces).max(1)) {
            let Some(addr) = alloc.take(piece.len() as u64) else { break 'requests };
            let _ = mem.write_slice(piece, GuestAddress(addr));
            descs.push(Desc { addr, len: piece.len() as u32, flags: 0, next: 0 });
        }
        for len in writable {
            let Some(addr) = alloc.take(len) else { break 'requests };
            descs.push(Desc { addr, len: len as u32, flags: WRITE, next: 0 });
        }
        if descs.is_empty() || usize::from(next_desc[q]) + descs.len() > usize::from(QUEUE_SIZE) {
            break;
        }
        let first = next_desc[q];
        heads[q].push(first);
        let last = descs.len() - 1;
        for (i, mut d) in descs.into_iter().enumerate() {
            let index = first + i as u16;
            if i < last {
                d.flags |= NEXT;
                d.next = index + 1;
            }
            write_desc(&mem, rings[q].desc_table, index, d);
        }
        next_desc[q] += last as u16 + 1;
    }
    for (r, h) in rings.iter().zip(&heads) {
        r.publish(&mem, h);
    }

    let mut fs = Fs::new("fuzz", shared_dir(), true).expect("sharing the fuzz directory");
    let irqfd = EventFd::new(EFD_NONBLOCK).expect("an eventfd");
    let interrupt = Arc::new(Interrupt::new(irqfd));
    let queues = rings.iter().map(Rings::queue).collect();
    fs.activate(mem, queues, interrupt).expect("activating virtio-fs");
    fs.process_queue(1);
    fs.process_queue(0);
});
