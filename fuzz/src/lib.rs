//! What the fuzz targets share: a reader of the fuzzer's bytes, the guest memory every target
//! works in, and a driver that lays descriptors and rings into it.

use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress};
use vmm::memory::GuestMemoryMmap;

/// Guest RAM: two 64 KiB regions with a hole between them, and nothing above the second, so
/// addresses can fall in RAM, in the hole, across a region's end or far outside.
pub const REGION0: u64 = 0;
pub const REGION1: u64 = 0x2_0000;
pub const REGION_SIZE: u64 = 0x1_0000;
pub const RAM_END: u64 = REGION1 + REGION_SIZE;

pub fn guest_memory() -> GuestMemoryMmap {
    let ranges =
        [(GuestAddress(REGION0), REGION_SIZE as usize), (GuestAddress(REGION1), REGION_SIZE as usize)];
    GuestMemoryMmap::from_ranges(&ranges).expect("mapping 128 KiB of guest memory")
}

/// The fuzzer's bytes, consumed front to back; zeros once they run out, so every input decodes.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        head
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let b = self.bytes(N);
        out[..b.len()].copy_from_slice(b);
        out
    }

    pub fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }

    /// A guest address, most often inside or at the edges of RAM, sometimes anywhere.
    pub fn addr(&mut self) -> u64 {
        let sel = self.u8();
        match sel % 5 {
            0 => REGION0 + u64::from(self.u16()),
            1 => REGION1 + u64::from(self.u16()),
            // Just below a region's end (a buffer that runs off it) or in the hole.
            2 => (REGION0 + REGION_SIZE).wrapping_sub(u64::from(self.u8())),
            3 => RAM_END.wrapping_sub(u64::from(self.u8())),
            _ => self.u64(),
        }
    }

    /// A descriptor length: mostly small, sometimes anything up to u32::MAX.
    pub fn len(&mut self) -> u32 {
        let sel = self.u8();
        match sel % 4 {
            0 | 1 => u32::from(self.u8()),
            2 => u32::from(self.u16()),
            _ => self.u32(),
        }
    }
}

/// One split-queue descriptor, as the driver writes it.
#[derive(Clone, Copy, Debug)]
pub struct Desc {
    pub addr: u64,
    pub len: u32,
    pub flags: u16,
    pub next: u16,
}

/// Writes a descriptor table entry; an address outside RAM is the fuzzer's choice, ignored here.
pub fn write_desc(mem: &GuestMemoryMmap, table: u64, index: u16, d: Desc) {
    let mut raw = [0u8; 16];
    raw[0..8].copy_from_slice(&d.addr.to_le_bytes());
    raw[8..12].copy_from_slice(&d.len.to_le_bytes());
    raw[12..14].copy_from_slice(&d.flags.to_le_bytes());
    raw[14..16].copy_from_slice(&d.next.to_le_bytes());
    let _ = mem.write_slice(&raw, GuestAddress(table + 16 * u64::from(index)));
}

/// A well-formed split queue of `size` entries whose rings start at `base`, as a driver sets one
/// up; the device's view of it. The descriptors and the avail ring are the caller's to fill.
pub struct Rings {
    pub desc_table: u64,
    pub avail: u64,
    pub used: u64,
    pub size: u16,
}

impl Rings {
    pub fn at(base: u64, size: u16) -> Rings {
        let len = u64::from(size);
        let avail = base + 16 * len;
        let used = (avail + 4 + 2 * len + 2 + 3) & !3;
        Rings { desc_table: base, avail, used, size }
    }

    /// Where the rings end (the first byte after the used ring).
    pub fn end(&self) -> u64 {
        self.used + 4 + 8 * u64::from(self.size) + 2
    }

    pub fn queue(&self) -> Queue {
        let mut q = Queue::new(self.size).expect("a power-of-two queue size");
        q.set_size(self.size);
        q.set_desc_table_address(Some(self.desc_table as u32), Some((self.desc_table >> 32) as u32));
        q.set_avail_ring_address(Some(self.avail as u32), Some((self.avail >> 32) as u32));
        q.set_used_ring_address(Some(self.used as u32), Some((self.used >> 32) as u32));
        q.set_ready(true);
        q
    }

    /// Puts these chain heads on the avail ring and publishes them (avail idx).
    pub fn publish(&self, mem: &GuestMemoryMmap, heads: &[u16]) {
        for (i, head) in heads.iter().enumerate() {
            let slot = self.avail + 4 + 2 * (i as u64 % u64::from(self.size));
            let _ = mem.write_obj(*head, GuestAddress(slot));
        }
        let _ = mem.write_obj(heads.len() as u16, GuestAddress(self.avail + 2));
    }
}
