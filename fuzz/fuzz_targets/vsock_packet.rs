//! The vsock packet parser on a tx descriptor chain the input describes, the way the device's
//! tx path reads one (`Reader::new`, `read_header`, `read_payload`), then the same chain as an rx
//! buffer for `write_packet`. Descriptor addresses, lengths, flags and links are the input's,
//! in RAM or not; the bytes at each descriptor are the input's too.

#![no_main]

use libfuzzer_sys::fuzz_target;
use virtio_queue::{QueueT, Reader, Writer};
use vm_memory::{Bytes, GuestAddress};
use vmm::devices::virtio::vsock::packet::{self, HEADER_SIZE, MAX_PAYLOAD};
use vmm_fuzz::{guest_memory, write_desc, Desc, Input, Rings, REGION0};

const QUEUE_SIZE: u16 = 16;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mem = guest_memory();
    let rings = Rings::at(REGION0, QUEUE_SIZE);
    let mut queue = rings.queue();
    // Up to 8 descriptors, linked as the input says (out-of-range links and loops included).
    let count = 1 + input.u8() % 8;
    for index in 0..u16::from(count) {
        let desc = Desc { addr: input.addr(), len: input.len(), flags: input.u16(), next: input.u16() % 32 };
        write_desc(&mem, rings.desc_table, index, desc);
        // The buffer's contents: a header first, then payload, as far as the input goes.
        let fill = input.bytes((desc.len as usize).min(HEADER_SIZE + 64));
        let _ = mem.write_slice(fill, GuestAddress(desc.addr));
    }
    let head = input.u16() % 16;
    rings.publish(&mem, &[head, head]);

    let mut payload = Vec::new();
    if let Some(chain) = queue.pop_descriptor_chain(&mem) {
        if let Ok(mut reader) = Reader::new(&mem, chain) {
            if let Ok(header) = packet::read_header(&mut reader) {
                let _ = packet::read_payload(&mut reader, &header, &mut payload);
            }
        }
    }
    // The same chain as an rx buffer: the device writes a header and what fits of a payload.
    if let Some(chain) = queue.pop_descriptor_chain(&mem) {
        if let Ok(mut writer) = Writer::new(&mem, chain) {
            if writer.available_bytes() >= HEADER_SIZE {
                let room = (writer.available_bytes() - HEADER_SIZE).min(MAX_PAYLOAD);
                let body = vec![0x5a; room.min(4096)];
                let mut header = packet::Header::default();
                header.len = body.len() as u32;
                let _ = packet::write_packet(&mut writer, &header, &body);
            }
        }
    }
});
