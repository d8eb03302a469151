//! virtio devices over the virtio-mmio transport (virtio 1.x, "modern" register layout).
//!
//! A device implements [`VirtioDevice`] (what the transport needs: features, config space,
//! queues, activation) and `event_manager::MutEventSubscriber` (its work: queue notifications
//! arrive as the ioeventfds from [`VirtioDevice::queue_events`], which the builder registers with
//! KVM at the transport's QueueNotify address, plus whatever host fds its backend polls).
//! The builder keeps one `Arc<Mutex<Device>>` in both places: the transport on the MMIO bus
//! (vcpu threads) and the event manager (the event loop thread).

pub mod fs;
pub mod mmio;
pub mod net;
pub mod vsock;

#[cfg(test)]
pub(crate) mod test_driver;

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use virtio_queue::{Queue, QueueT};
use vmm_sys_util::eventfd::EventFd;

use crate::memory::GuestMemoryMmap;

/// virtio device ids (virtio 1.2, 5).
pub const TYPE_NET: u32 = 1;
pub const TYPE_CONSOLE: u32 = 3;
pub const TYPE_VSOCK: u32 = 19;
pub const TYPE_FS: u32 = 26;

/// VIRTIO_F_VERSION_1: every device here is a modern (1.x) device.
pub const FEATURE_VERSION_1: u64 = 1 << 32;

/// InterruptStatus bits of virtio-mmio.
pub const INT_USED_RING: u32 = 0x1;
pub const INT_CONFIG: u32 = 0x2;

#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    #[error("the driver did not set up queue {0}")]
    QueueNotReady(usize),
    #[error("device activation: {0}")]
    Device(String),
    #[error("device activation: {0}")]
    Io(#[from] io::Error),
}

/// The interrupt line of one virtio-mmio device: the InterruptStatus register the driver reads
/// and acknowledges, and the irqfd (registered with KVM on the device's GSI) that raises it.
pub struct Interrupt {
    status: AtomicU32,
    irqfd: EventFd,
}

impl Interrupt {
    pub fn new(irqfd: EventFd) -> Self {
        Interrupt { status: AtomicU32::new(0), irqfd }
    }

    /// The eventfd to register with `VmFd::register_irqfd`.
    pub fn irqfd(&self) -> &EventFd {
        &self.irqfd
    }

    /// Tell the driver there are used buffers.
    pub fn signal_used_queue(&self) -> io::Result<()> {
        self.signal(INT_USED_RING)
    }

    /// Tell the driver `queue` has used buffers, unless it asked not to be told (only
    /// possible with EVENT_IDX).
    pub fn signal_used_unless_suppressed(&self, queue: &mut Queue, mem: &GuestMemoryMmap) {
        if queue.needs_notification(mem).unwrap_or(true) {
            // The irqfd write only fails if its counter overflows, and then an interrupt is
            // pending anyway.
            let _ = self.signal_used_queue();
        }
    }

    /// Tell the driver the config space changed.
    pub fn signal_config_change(&self) -> io::Result<()> {
        self.signal(INT_CONFIG)
    }

    fn signal(&self, bit: u32) -> io::Result<()> {
        self.status.fetch_or(bit, Ordering::SeqCst);
        self.irqfd.write(1)
    }

    /// InterruptStatus, as the driver reads it.
    pub fn status(&self) -> u32 {
        self.status.load(Ordering::SeqCst)
    }

    /// InterruptACK: clear the bits the driver handled.
    pub fn ack(&self, bits: u32) {
        self.status.fetch_and(!bits, Ordering::SeqCst);
    }
}

/// What the virtio-mmio transport needs from a device.
pub trait VirtioDevice: Send {
    /// The virtio device id ([`TYPE_VSOCK`], [`TYPE_FS`], ...).
    fn device_type(&self) -> u32;
    /// The largest size of each queue; the number of entries is the number of queues.
    fn queue_max_sizes(&self) -> &[u16];
    /// One eventfd per queue, signalled when the driver notifies that queue.
    fn queue_events(&self) -> &[EventFd];
    /// Features offered to the driver (includes [`FEATURE_VERSION_1`]).
    fn avail_features(&self) -> u64;
    /// The features the driver accepted (a subset of `avail_features`).
    fn set_acked_features(&mut self, features: u64);
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// Config writes are ignored unless a device has writable fields.
    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}
    /// DRIVER_OK: the queues are set up; start serving them.
    fn activate(
        &mut self,
        mem: GuestMemoryMmap,
        queues: Vec<Queue>,
        interrupt: Arc<Interrupt>,
    ) -> Result<(), ActivateError>;
    fn is_activated(&self) -> bool;
    /// The driver wrote 0 to Status. Returns false when the device cannot be reset (the
    /// transport then sets DEVICE_NEEDS_RESET).
    fn reset(&mut self) -> bool {
        false
    }
}

/// A config space read: the bytes of `config` from `offset`, zeros past its end.
pub fn read_config_bytes(config: &[u8], offset: u64, data: &mut [u8]) {
    data.fill(0);
    let Ok(start) = usize::try_from(offset) else { return };
    if let Some(src) = config.get(start..) {
        let n = src.len().min(data.len());
        data[..n].copy_from_slice(&src[..n]);
    }
}
