//! The driver's side of split virtqueues in guest memory, for the devices' tests: chains
//! posted the way a guest driver posts them, used entries read back.

use virtio_bindings::bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use virtio_queue::desc::split::Descriptor;
use virtio_queue::desc::RawDescriptor;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Address, Bytes, GuestAddress};

use crate::memory::GuestMemoryMmap;

pub(crate) const QUEUE_SIZE: u16 = 256;
/// Every descriptor slot has its own 64 KiB buffer, so no two chains share memory.
pub(crate) const SLOT_SIZE: u64 = 0x1_0000;

/// The driver's side of one split queue.
pub(crate) struct DriverQueue {
    pub(crate) desc_table: GuestAddress,
    pub(crate) avail: GuestAddress,
    pub(crate) used: GuestAddress,
    pub(crate) buffers: u64,
    pub(crate) next_slot: u16,
    pub(crate) avail_idx: u16,
    pub(crate) used_seen: u16,
}

impl DriverQueue {
    /// Lays the rings out at `base` (zeroed) and returns the device's view of them. Not with
    /// virtio-queue 0.17's MockSplitQueue: it puts the used ring `len` bytes after the start of
    /// the avail ring, which is 4 + 2 * len + 2 bytes long, so past half the ring the device's
    /// used entries overwrite the driver's avail entries (this test saw a used head that was
    /// never posted, now and then, until the layout was its own).
    pub(crate) fn new(mem: &GuestMemoryMmap, base: u64, buffers: u64) -> (DriverQueue, Queue) {
        let len = u64::from(QUEUE_SIZE);
        let desc_table = GuestAddress(base);
        let avail = desc_table.unchecked_add(16 * len);
        // flags, idx, ring[len], used_event; the used ring is 4-aligned.
        let used = GuestAddress((avail.raw_value() + 4 + 2 * len + 2 + 3) & !3);
        let used_end = used.unchecked_add(4 + 8 * len + 2);
        assert!(used_end.raw_value() <= buffers || base > buffers, "the rings overlap the buffers");
        let zeros = vec![0u8; (used_end.raw_value() - base) as usize];
        mem.write_slice(&zeros, desc_table).unwrap();
        let mut queue = Queue::new(QUEUE_SIZE).unwrap();
        queue.try_set_size(QUEUE_SIZE).unwrap();
        queue.try_set_desc_table_address(desc_table).unwrap();
        queue.try_set_avail_ring_address(avail).unwrap();
        queue.try_set_used_ring_address(used).unwrap();
        queue.set_ready(true);
        let driver =
            DriverQueue { desc_table, avail, used, buffers, next_slot: 0, avail_idx: 0, used_seen: 0 };
        (driver, queue)
    }

    pub(crate) fn slot_buffer(&self, slot: u16) -> u64 {
        self.buffers + u64::from(slot) * SLOT_SIZE
    }

    /// Posts a chain of buffers of these lengths, each in a slot buffer of its own; returns
    /// its head and the buffers' addresses.
    pub(crate) fn post(&mut self, mem: &GuestMemoryMmap, lens: &[u32], writable: bool) -> (u16, Vec<u64>) {
        let bufs: Vec<(u64, u32, bool)> = (0..lens.len())
            .map(|i| (self.slot_buffer((self.next_slot + i as u16) % QUEUE_SIZE), lens[i], writable))
            .collect();
        let head = self.post_bufs(mem, &bufs);
        (head, bufs.iter().map(|b| b.0).collect())
    }

    /// Posts a chain of the given buffers, (address, length, device-writable), wherever the
    /// caller put them; returns its head.
    pub(crate) fn post_bufs(&mut self, mem: &GuestMemoryMmap, bufs: &[(u64, u32, bool)]) -> u16 {
        let slots: Vec<u16> = (0..bufs.len()).map(|i| (self.next_slot + i as u16) % QUEUE_SIZE).collect();
        self.next_slot = (self.next_slot + bufs.len() as u16) % QUEUE_SIZE;
        for (i, (&slot, &(addr, len, writable))) in slots.iter().zip(bufs).enumerate() {
            let mut flags = if writable { VRING_DESC_F_WRITE as u16 } else { 0 };
            let next = slots.get(i + 1).copied().unwrap_or(0);
            if i + 1 < slots.len() {
                flags |= VRING_DESC_F_NEXT as u16;
            }
            let desc = RawDescriptor::from(Descriptor::new(addr, len, flags, next));
            mem.write_obj(desc, self.desc_table.unchecked_add(u64::from(slot) * 16)).unwrap();
        }
        let ring_entry = self.avail.unchecked_add(4 + u64::from(self.avail_idx % QUEUE_SIZE) * 2);
        mem.write_obj(slots[0], ring_entry).unwrap();
        self.avail_idx = self.avail_idx.wrapping_add(1);
        mem.write_obj(self.avail_idx, self.avail.unchecked_add(2)).unwrap();
        slots[0]
    }

    /// The next (head, length) the device put in the used ring.
    pub(crate) fn take_used(&mut self, mem: &GuestMemoryMmap) -> Option<(u16, u32)> {
        let idx: u16 = mem.read_obj(self.used.unchecked_add(2)).unwrap();
        if idx == self.used_seen {
            return None;
        }
        let elem = self.used.unchecked_add(4 + u64::from(self.used_seen % QUEUE_SIZE) * 8);
        let id: u32 = mem.read_obj(elem).unwrap();
        let len: u32 = mem.read_obj(elem.unchecked_add(4)).unwrap();
        self.used_seen = self.used_seen.wrapping_add(1);
        Some((id as u16, len))
    }

    /// Chains posted and not yet returned (as of the last `take_used`).
    pub(crate) fn outstanding(&self) -> u16 {
        self.avail_idx.wrapping_sub(self.used_seen)
    }
}

/// Runs a device's event loop until it has been idle for a moment; a loop that never goes
/// idle (a device spinning on a ready fd) fails the test.
pub(crate) fn pump<T: event_manager::MutEventSubscriber>(events: &mut event_manager::EventManager<T>) {
    for _ in 0..1000 {
        if events.run_with_timeout(20).unwrap() == 0 {
            return;
        }
    }
    panic!("the event loop never went idle");
}
