//! Used-ring entries that the driver must see together: the chains of one received frame.
//!
//! virtio-queue's `add_used` stores the used index after every entry, so a frame spread over
//! several merged rx buffers would become visible one buffer at a time. Linux's virtio-net reads
//! `num_buffers` from the first buffer and then takes the others straight away; when they are
//! not there yet (its NAPI poll runs on a vcpu while the event loop writes them) it counts a
//! length error, drops the frame, and TCP has to retransmit it. In the test machine that was
//! about one frame in seventy of a bulk stream, with the sender's fast retransmits and the
//! receiver's out-of-order queue to show for it. So the entries of a frame are written first
//! and the used index once after them, with release ordering (virtio 1.2, 2.7.8.2: the ring
//! entries before idx), and the interrupt check counts every entry published since it last ran,
//! as `add_used` does for `needs_notification`.

use std::num::Wrapping;
use std::sync::atomic::{fence, Ordering};

use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress};

use crate::memory::GuestMemoryMmap;

/// `struct virtq_used`: flags and idx before the ring of 8-byte `virtq_used_elem`s.
const USED_RING_HEADER: u64 = 4;
const USED_ELEM_SIZE: u64 = 8;
/// `struct virtq_avail`: flags and idx before the ring of 2-byte heads; `used_event` after it.
const AVAIL_RING_HEADER: u64 = 4;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("used ring entry for descriptor {0}, outside a queue of {1}")]
    BadHead(u16, u16),
    #[error("the used ring is outside guest memory")]
    OutOfMemory,
}

/// The entries of one frame, gathered before they are published, and what was published since
/// the last interrupt check.
#[derive(Debug, Default)]
pub struct UsedBatch {
    entries: Vec<(u16, u32)>,
    unchecked: Wrapping<u16>,
}

impl UsedBatch {
    pub fn new() -> Self {
        UsedBatch::default()
    }

    /// Adds chain `head`, of which the device wrote `len` bytes, to the frame being gathered.
    pub fn push(&mut self, head: u16, len: u32) {
        self.entries.push((head, len));
    }

    /// Writes the gathered entries after the queue's next used slot, then the used index once.
    /// The batch is empty afterwards, whether or not it could be published.
    pub fn publish(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap) -> Result<(), PublishError> {
        let written = self.write(queue, mem);
        self.entries.clear();
        written
    }

    fn write(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap) -> Result<(), PublishError> {
        if self.entries.is_empty() {
            return Ok(());
        }
        let size = queue.size();
        if let Some((head, _)) = self.entries.iter().find(|(head, _)| *head >= size) {
            return Err(PublishError::BadHead(*head, size));
        }
        let used = queue.used_ring();
        let mut next = Wrapping(queue.next_used());
        for (head, len) in &self.entries {
            let slot = u64::from(next.0 % size);
            let addr = used
                .checked_add(USED_RING_HEADER + slot * USED_ELEM_SIZE)
                .ok_or(PublishError::OutOfMemory)?;
            let mut elem = [0u8; 8];
            elem[..4].copy_from_slice(&u32::from(*head).to_le_bytes());
            elem[4..].copy_from_slice(&len.to_le_bytes());
            mem.write_slice(&elem, GuestAddress(addr)).map_err(|_| PublishError::OutOfMemory)?;
            next += Wrapping(1);
        }
        let idx = used.checked_add(2).ok_or(PublishError::OutOfMemory)?;
        mem.store(next.0.to_le(), GuestAddress(idx), Ordering::Release)
            .map_err(|_| PublishError::OutOfMemory)?;
        queue.set_next_used(next.0);
        // At most a queue's worth per frame: the count cannot wrap between checks that matter.
        self.unchecked += Wrapping(self.entries.len() as u16);
        Ok(())
    }

    /// Whether the driver wants an interrupt for what was published since the last check:
    /// with EVENT_IDX, when its `used_event` lies among those entries; without, whenever
    /// something was published.
    pub fn needs_notification(&mut self, queue: &Queue, mem: &GuestMemoryMmap) -> bool {
        let published = std::mem::take(&mut self.unchecked);
        if published.0 == 0 {
            return false;
        }
        if !queue.event_idx_enabled() {
            return true;
        }
        // The used index must be visible before used_event is read, or an interrupt the
        // driver asked for in between is lost.
        fence(Ordering::SeqCst);
        let addr = queue.avail_ring().checked_add(AVAIL_RING_HEADER + 2 * u64::from(queue.size()));
        let Some(used_event) = addr.and_then(|a| mem.load::<u16>(GuestAddress(a), Ordering::Relaxed).ok())
        else {
            return true;
        };
        let new = Wrapping(queue.next_used());
        let old = new - published;
        // vring_need_event: used_event in (old, new].
        new - Wrapping(u16::from_le(used_event)) - Wrapping(1) < new - old
    }

    /// The queue went away (device reset): nothing gathered or unchecked survives it.
    pub fn reset(&mut self) {
        self.entries.clear();
        self.unchecked = Wrapping(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::virtio::test_driver::{DriverQueue, QUEUE_SIZE};
    use vm_memory::{Address, GuestAddress};

    fn setup(event_idx: bool) -> (GuestMemoryMmap, DriverQueue, Queue) {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x100_0000)]).unwrap();
        let (driver, mut queue) = DriverQueue::new(&mem, 0x1000, 0x10_0000);
        queue.set_event_idx(event_idx);
        (mem, driver, queue)
    }

    fn used_idx(mem: &GuestMemoryMmap, driver: &DriverQueue) -> u16 {
        mem.read_obj(driver.used.unchecked_add(2)).unwrap()
    }

    fn set_used_event(mem: &GuestMemoryMmap, driver: &DriverQueue, value: u16) {
        let at = driver.avail.unchecked_add(4 + 2 * u64::from(QUEUE_SIZE));
        mem.write_obj(value, at).unwrap();
    }

    #[test]
    fn a_frame_appears_whole_with_one_index_update() {
        let (mem, mut driver, mut queue) = setup(false);
        let mut batch = UsedBatch::new();
        batch.push(5, 4096);
        batch.push(9, 4096);
        // Gathered, not published: the driver sees nothing yet.
        assert_eq!(used_idx(&mem, &driver), 0);
        batch.push(2, 100);
        batch.publish(&mut queue, &mem).unwrap();
        assert_eq!(used_idx(&mem, &driver), 3);
        assert_eq!(queue.next_used(), 3);
        let seen: Vec<_> = std::iter::from_fn(|| driver.take_used(&mem)).collect();
        assert_eq!(seen, [(5, 4096), (9, 4096), (2, 100)]);
        assert!(batch.needs_notification(&queue, &mem));
        // Nothing new since: no interrupt.
        assert!(!batch.needs_notification(&queue, &mem));
    }

    #[test]
    fn entries_wrap_around_the_ring() {
        let (mem, mut driver, mut queue) = setup(false);
        queue.set_next_used(QUEUE_SIZE - 1);
        driver.used_seen = QUEUE_SIZE - 1;
        let mut batch = UsedBatch::new();
        batch.push(1, 10);
        batch.push(2, 20);
        batch.publish(&mut queue, &mem).unwrap();
        assert_eq!(used_idx(&mem, &driver), QUEUE_SIZE + 1);
        let seen: Vec<_> = std::iter::from_fn(|| driver.take_used(&mem)).collect();
        assert_eq!(seen, [(1, 10), (2, 20)]);
    }

    #[test]
    fn with_event_idx_an_interrupt_only_when_used_event_is_crossed() {
        let (mem, driver, mut queue) = setup(true);
        let mut batch = UsedBatch::new();
        // The driver wants to hear when entry 2 (the third) is used.
        set_used_event(&mem, &driver, 2);
        batch.push(0, 1);
        batch.push(1, 1);
        batch.publish(&mut queue, &mem).unwrap();
        assert!(!batch.needs_notification(&queue, &mem), "used_event not reached");
        // One frame of three entries crosses it in its middle: counted, as add_used would.
        for head in 2..5 {
            batch.push(head, 1);
        }
        batch.publish(&mut queue, &mem).unwrap();
        assert!(batch.needs_notification(&queue, &mem));
        // Past it, and the driver has not moved it: quiet.
        batch.push(5, 1);
        batch.publish(&mut queue, &mem).unwrap();
        assert!(!batch.needs_notification(&queue, &mem));
    }

    #[test]
    fn a_head_outside_the_queue_is_refused_and_nothing_is_published() {
        let (mem, driver, mut queue) = setup(false);
        let mut batch = UsedBatch::new();
        batch.push(QUEUE_SIZE, 1);
        assert!(matches!(batch.publish(&mut queue, &mem), Err(PublishError::BadHead(..))));
        assert_eq!(used_idx(&mem, &driver), 0);
        assert_eq!(queue.next_used(), 0);
        assert!(!batch.needs_notification(&queue, &mem));
    }
}
