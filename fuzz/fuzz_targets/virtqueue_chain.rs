//! A split queue wholly the input's: its size, ring addresses (aligned or not, in RAM or not),
//! the device's next_avail and EVENT_IDX, the descriptor table (loops, huge lengths, indirect
//! tables anywhere) and the avail ring. Every chain the queue yields is read and written the ways
//! the devices do: virtio-queue's Reader/Writer (vsock), fuse-backend-rs's Reader and
//! VirtioFsWriter (virtio-fs), then returned with add_used and the notification check.

#![no_main]

use fuse_backend_rs::abi::fuse_abi::InHeader;
use fuse_backend_rs::transport::{Reader as FuseReader, VirtioFsWriter};
use libfuzzer_sys::fuzz_target;
use std::io::{Read, Write};
use virtio_queue::{QueueT, Reader, Writer};
use vm_memory::{Bytes, GuestAddress};
use vmm_fuzz::{guest_memory, Input, Rings, REGION1};

/// The most a device reads or writes of one chain here: a vsock packet's worth.
const MAX_IO: usize = 64 * 1024 + 44;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mem = guest_memory();
    let size = 1u16 << (input.u8() % 9);
    let mut rings = Rings::at(0, size);
    // The transport takes whatever addresses the driver writes; activation checks them.
    rings.desc_table = input.addr();
    rings.avail = input.addr();
    rings.used = input.addr();
    let mut queue = rings.queue();
    queue.set_event_idx(input.u8() & 1 == 1);
    queue.set_next_avail(input.u16());
    if !queue.is_valid(&mem) {
        // The device refuses to activate (ActivateError::QueueNotReady): nothing to walk.
        return;
    }
    // Whatever the input has left is the guest's memory: the descriptor table first, then the
    // avail ring, then the start of region 1 (indirect tables and buffers).
    let table = input.bytes(16 * usize::from(size));
    let _ = mem.write_slice(table, GuestAddress(rings.desc_table));
    let avail = input.bytes(4 + 2 * usize::from(size) + 2);
    let _ = mem.write_slice(avail, GuestAddress(rings.avail));
    let rest = input.bytes(usize::MAX);
    let _ = mem.write_slice(&rest[..rest.len().min(0x1_0000)], GuestAddress(REGION1));

    let mut buf = vec![0u8; MAX_IO];
    let mut used_len = 0u32;
    // One pass of a device: a queue's worth at most (the vsock and virtio-fs devices raise
    // their queue's event again for the rest), so rings that alias the avail index into the
    // used ring end here as they do there.
    let mut budget = size;
    while let Some(chain) = queue.pop_descriptor_chain(&mem) {
        let head = chain.head_index();
        // The chain's own walk (ttl-bounded), as the devices' iterators use it.
        let _ = chain.clone().count();
        let _ = chain.clone().writable().map(|d| d.len() as usize).sum::<usize>();
        if let Ok(mut reader) = Reader::new(&mem, chain.clone()) {
            let n = reader.available_bytes().min(MAX_IO);
            let _ = reader.read_exact(&mut buf[..n]);
        }
        if let Ok(mut writer) = Writer::new(&mem, chain.clone()) {
            let n = writer.available_bytes().min(4096);
            let _ = writer.write_all(&buf[..n]);
        }
        if let Ok(mut reader) = FuseReader::from_descriptor_chain(&mem, chain.clone()) {
            let _ = reader.read_obj::<InHeader>();
            let _ = reader.read(&mut buf[..]);
        }
        if let Ok(mut writer) = VirtioFsWriter::new(&mem, chain) {
            let _ = writer.write_all(&[0u8; 16]);
        }
        used_len = used_len.wrapping_add(rings.size.into());
        if queue.add_used(&mem, head, used_len).is_err() {
            break;
        }
        budget -= 1;
        if budget == 0 {
            break;
        }
    }
    let _ = queue.needs_notification(&mem);
});
