//! The virtio-mmio transport, version 2 ("modern") register layout (virtio 1.2, 4.2.2).
//!
//! One [`MmioTransport`] sits on the MMIO bus for each device. The driver negotiates features,
//! describes each virtqueue through the queue registers and writes DRIVER_OK; the transport
//! then hands the device its queues, the guest memory and the interrupt line
//! ([`VirtioDevice::activate`]). After that the device does its work on the event loop thread;
//! the transport only answers register reads, forwards QueueNotify writes that reach it (when
//! no ioeventfd is registered for the address) and handles InterruptACK and reset.

use std::sync::{Arc, Mutex, MutexGuard};

use virtio_queue::{Queue, QueueT};

use super::{ActivateError, Interrupt, VirtioDevice};
use crate::devices::bus::BusDevice;
use crate::memory::GuestMemoryMmap;

/// "virt" in little endian.
pub const MMIO_MAGIC_VALUE: u32 = 0x7472_6976;
/// The modern register layout.
pub const MMIO_VERSION: u32 = 2;
/// No vendor: the id only matters to drivers that special-case a vendor.
pub const VENDOR_ID: u32 = 0;

/// Register offsets from the start of the device's window.
pub mod reg {
    pub const MAGIC_VALUE: u64 = 0x000;
    pub const VERSION: u64 = 0x004;
    pub const DEVICE_ID: u64 = 0x008;
    pub const VENDOR_ID: u64 = 0x00c;
    pub const DEVICE_FEATURES: u64 = 0x010;
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    pub const DRIVER_FEATURES: u64 = 0x020;
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    pub const QUEUE_SEL: u64 = 0x030;
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    pub const QUEUE_NUM: u64 = 0x038;
    pub const QUEUE_READY: u64 = 0x044;
    /// The address the builder registers each queue's ioeventfd on (datamatch = queue index).
    pub const QUEUE_NOTIFY: u64 = 0x050;
    pub const INTERRUPT_STATUS: u64 = 0x060;
    pub const INTERRUPT_ACK: u64 = 0x064;
    pub const STATUS: u64 = 0x070;
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    pub const QUEUE_DRIVER_LOW: u64 = 0x090;
    pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
    pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
    pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
    pub const SHM_SEL: u64 = 0x0ac;
    pub const SHM_LEN_LOW: u64 = 0x0b0;
    pub const SHM_LEN_HIGH: u64 = 0x0b4;
    pub const SHM_BASE_LOW: u64 = 0x0b8;
    pub const SHM_BASE_HIGH: u64 = 0x0bc;
    pub const CONFIG_GENERATION: u64 = 0x0fc;
    /// Device-specific configuration space starts here.
    pub const CONFIG: u64 = 0x100;
}

/// Device status bits (virtio 1.2, 2.1).
pub mod status {
    pub const ACKNOWLEDGE: u32 = 1;
    pub const DRIVER: u32 = 2;
    pub const DRIVER_OK: u32 = 4;
    pub const FEATURES_OK: u32 = 8;
    pub const DEVICE_NEEDS_RESET: u32 = 64;
    pub const FAILED: u32 = 128;
}

/// The transport of one virtio device on the MMIO bus.
pub struct MmioTransport {
    device: Arc<Mutex<dyn VirtioDevice>>,
    interrupt: Arc<Interrupt>,
    mem: GuestMemoryMmap,
    /// What the driver wrote to the queue registers, one per device queue; copied into the
    /// device's queues at DRIVER_OK.
    queues: Vec<Queue>,
    device_status: u32,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    /// The driver wrote a bit in a feature bank beyond 64 bits, which nothing here offers.
    driver_features_beyond_64: bool,
    queue_sel: u32,
    shm_sel: u32,
    /// Why the last DRIVER_OK did not start the device, for the VMM to report.
    activate_error: Option<ActivateError>,
}

impl MmioTransport {
    /// `mem` is the guest memory the device's queues live in; the transport passes it to the
    /// device on activation.
    pub fn new(
        device: Arc<Mutex<dyn VirtioDevice>>,
        interrupt: Arc<Interrupt>,
        mem: GuestMemoryMmap,
    ) -> MmioTransport {
        let queues = fresh_queues(&*lock(&device));
        MmioTransport {
            device,
            interrupt,
            mem,
            queues,
            device_status: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            driver_features_beyond_64: false,
            queue_sel: 0,
            shm_sel: 0,
            activate_error: None,
        }
    }

    /// The device status as the driver reads it.
    pub fn device_status(&self) -> u32 {
        self.device_status
    }

    /// Why the device failed to start at the driver's DRIVER_OK, if it did.
    pub fn activate_error(&self) -> Option<&ActivateError> {
        self.activate_error.as_ref()
    }

    fn selected_queue(&mut self) -> Option<&mut Queue> {
        self.queues.get_mut(self.queue_sel as usize)
    }

    /// Queue registers may only change while the driver sets the device up.
    fn queue_setup_allowed(&self) -> bool {
        self.device_status & status::FEATURES_OK != 0
            && self.device_status & (status::DRIVER_OK | status::FAILED | status::DEVICE_NEEDS_RESET) == 0
    }

    fn read_register(&mut self, offset: u64) -> u32 {
        match offset {
            reg::MAGIC_VALUE => MMIO_MAGIC_VALUE,
            reg::VERSION => MMIO_VERSION,
            reg::DEVICE_ID => lock(&self.device).device_type(),
            reg::VENDOR_ID => VENDOR_ID,
            reg::DEVICE_FEATURES => {
                let features = lock(&self.device).avail_features();
                match self.device_features_sel {
                    0 => features as u32,
                    1 => (features >> 32) as u32,
                    _ => 0,
                }
            }
            // An absent queue reads a maximum size of 0, which tells the driver it does not exist.
            reg::QUEUE_NUM_MAX => self.selected_queue().map_or(0, |q| u32::from(q.max_size())),
            reg::QUEUE_READY => self.selected_queue().map_or(0, |q| u32::from(q.ready())),
            reg::INTERRUPT_STATUS => self.interrupt.status(),
            reg::STATUS => self.device_status,
            // No shared memory regions: their length reads as all ones (virtio 1.2, 4.2.2.1).
            reg::SHM_LEN_LOW | reg::SHM_LEN_HIGH | reg::SHM_BASE_LOW | reg::SHM_BASE_HIGH => u32::MAX,
            // The config space never changes under the driver, so one generation suffices.
            reg::CONFIG_GENERATION => 0,
            _ => 0,
        }
    }

    fn write_register(&mut self, offset: u64, value: u32) {
        let setup = self.queue_setup_allowed();
        match offset {
            reg::DEVICE_FEATURES_SEL => self.device_features_sel = value,
            reg::DRIVER_FEATURES_SEL => self.driver_features_sel = value,
            reg::DRIVER_FEATURES => self.write_driver_features(value),
            reg::QUEUE_SEL => self.queue_sel = value,
            reg::QUEUE_NUM if setup => {
                if let Some(q) = self.selected_queue() {
                    q.set_size(value as u16);
                }
            }
            // Clearing ready is how a driver takes a queue down; allow it at any time.
            reg::QUEUE_READY if setup || value == 0 => {
                if let Some(q) = self.selected_queue() {
                    q.set_ready(value == 1);
                }
            }
            reg::QUEUE_DESC_LOW if setup => {
                self.set_queue_address(|q| q.set_desc_table_address(Some(value), None))
            }
            reg::QUEUE_DESC_HIGH if setup => {
                self.set_queue_address(|q| q.set_desc_table_address(None, Some(value)))
            }
            reg::QUEUE_DRIVER_LOW if setup => {
                self.set_queue_address(|q| q.set_avail_ring_address(Some(value), None))
            }
            reg::QUEUE_DRIVER_HIGH if setup => {
                self.set_queue_address(|q| q.set_avail_ring_address(None, Some(value)))
            }
            reg::QUEUE_DEVICE_LOW if setup => {
                self.set_queue_address(|q| q.set_used_ring_address(Some(value), None))
            }
            reg::QUEUE_DEVICE_HIGH if setup => {
                self.set_queue_address(|q| q.set_used_ring_address(None, Some(value)))
            }
            reg::QUEUE_NOTIFY => self.notify_queue(value),
            reg::INTERRUPT_ACK => self.interrupt.ack(value),
            reg::STATUS => self.write_status(value),
            reg::SHM_SEL => self.shm_sel = value,
            _ => {}
        }
    }

    fn set_queue_address(&mut self, set: impl FnOnce(&mut Queue)) {
        if let Some(q) = self.selected_queue() {
            set(q);
        }
    }

    /// Feature bits are written in 32-bit banks, only between DRIVER and FEATURES_OK.
    fn write_driver_features(&mut self, value: u32) {
        let negotiating = self.device_status & status::DRIVER != 0
            && self.device_status & (status::FEATURES_OK | status::FAILED) == 0;
        if !negotiating {
            return;
        }
        let value = u64::from(value);
        match self.driver_features_sel {
            0 => self.driver_features = (self.driver_features & !0xffff_ffff) | value,
            1 => self.driver_features = (self.driver_features & 0xffff_ffff) | (value << 32),
            _ => self.driver_features_beyond_64 |= value != 0,
        }
    }

    /// A notification that reached userspace (no ioeventfd at QueueNotify): signal the same
    /// eventfd the ioeventfd would have, so the device sees one kind of notification.
    fn notify_queue(&mut self, index: u32) {
        if self.device_status & status::DRIVER_OK == 0 {
            return;
        }
        let device = lock(&self.device);
        if let Some(event) = device.queue_events().get(index as usize) {
            // An eventfd write only fails when its counter would overflow, and then the device
            // has a notification pending anyway.
            let _ = event.write(1);
        }
    }

    /// The driver status state machine (virtio 1.2, 3.1.1): each step adds one bit, in order;
    /// 0 resets; FAILED may come at any time. Anything else is ignored, and so is everything but
    /// a reset once the device failed or needs a reset.
    fn write_status(&mut self, value: u32) {
        use status::*;
        let old = self.device_status;
        if value == 0 {
            self.reset();
            return;
        }
        if value & FAILED != 0 {
            self.device_status |= FAILED;
            return;
        }
        // After a failure only a reset helps; and bits are never taken away but by a reset.
        if old & (FAILED | DEVICE_NEEDS_RESET) != 0 || value & old != old {
            return;
        }
        match (old, value & !old) {
            (0, ACKNOWLEDGE) => self.device_status = value,
            (ACKNOWLEDGE, DRIVER) => self.device_status = value,
            (s, FEATURES_OK) if s == ACKNOWLEDGE | DRIVER => self.features_ok(value),
            (s, DRIVER_OK) if s == ACKNOWLEDGE | DRIVER | FEATURES_OK => self.driver_ok(value),
            _ => {}
        }
    }

    /// Accepts the driver's features when each of them was offered; otherwise FEATURES_OK stays
    /// clear, which the driver reads back as "the device refused".
    fn features_ok(&mut self, value: u32) {
        let mut device = lock(&self.device);
        if self.driver_features_beyond_64 || self.driver_features & !device.avail_features() != 0 {
            return;
        }
        device.set_acked_features(self.driver_features);
        drop(device);
        self.device_status = value;
    }

    /// Hands the queues to the device. A ready queue whose rings lie outside guest memory, or a
    /// device that fails to start, leaves the device in DEVICE_NEEDS_RESET.
    fn driver_ok(&mut self, value: u32) {
        match self.activate_device() {
            Ok(()) => self.device_status = value,
            Err(e) => {
                self.activate_error = Some(e);
                // The driver learns of the failure from DEVICE_NEEDS_RESET and the config
                // change interrupt that announces it (virtio 1.2, 2.1.2).
                self.device_status = value | status::DEVICE_NEEDS_RESET;
                let _ = self.interrupt.signal_config_change();
            }
        }
    }

    fn activate_device(&mut self) -> Result<(), ActivateError> {
        let mut queues = Vec::with_capacity(self.queues.len());
        for (index, q) in self.queues.iter().enumerate() {
            if q.ready() && !q.is_valid(&self.mem) {
                return Err(ActivateError::Device(format!("queue {index} lies outside guest memory")));
            }
            let copy = Queue::try_from(q.state())
                .map_err(|e| ActivateError::Device(format!("queue {index}: {e}")))?;
            queues.push(copy);
        }
        lock(&self.device).activate(self.mem.clone(), queues, self.interrupt.clone())
    }

    fn reset(&mut self) {
        let mut device = lock(&self.device);
        let reset_ok = !device.is_activated() || device.reset();
        self.queues = fresh_queues(&*device);
        drop(device);
        self.interrupt.ack(u32::MAX);
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.driver_features = 0;
        self.driver_features_beyond_64 = false;
        self.queue_sel = 0;
        self.shm_sel = 0;
        self.activate_error = None;
        self.device_status = if reset_ok { 0 } else { status::DEVICE_NEEDS_RESET };
    }
}

impl BusDevice for MmioTransport {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        if offset >= reg::CONFIG {
            lock(&self.device).read_config(offset - reg::CONFIG, data);
            return;
        }
        match <&mut [u8; 4]>::try_from(&mut *data) {
            Ok(word) => *word = self.read_register(offset).to_le_bytes(),
            // Registers are 32 bits wide; other accesses are undefined, so answer zeros.
            Err(_) => data.fill(0),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset >= reg::CONFIG {
            lock(&self.device).write_config(offset - reg::CONFIG, data);
            return;
        }
        if let Ok(word) = <[u8; 4]>::try_from(data) {
            self.write_register(offset, u32::from_le_bytes(word));
        }
    }
}

/// Queues in their reset state, sized from what the device supports. A device that asks for an
/// invalid size (not a power of two) gets a queue of maximum size 0, which the driver skips.
fn fresh_queues(device: &dyn VirtioDevice) -> Vec<Queue> {
    device.queue_max_sizes().iter().map(|&max| Queue::new(max).unwrap_or_default()).collect()
}

/// A device whose lock was poisoned panicked on another thread; keep serving its registers.
fn lock(device: &Mutex<dyn VirtioDevice>) -> MutexGuard<'_, dyn VirtioDevice + 'static> {
    device.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::virtio::{FEATURE_VERSION_1, INT_CONFIG, INT_USED_RING};
    use virtio_queue::QueueState;
    use vm_memory::GuestAddress;
    use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

    const FEATURE_A: u64 = 1 << 3;
    const FEATURE_UNOFFERED: u64 = 1 << 5;

    /// A device that records what the transport does to it.
    struct FakeDevice {
        sizes: Vec<u16>,
        events: Vec<EventFd>,
        acked: Option<u64>,
        activated_with: Option<Vec<QueueState>>,
        fail_activate: bool,
        resets: u32,
        config: Vec<u8>,
    }

    impl FakeDevice {
        fn new() -> Self {
            FakeDevice {
                sizes: vec![16, 8],
                events: (0..2).map(|_| EventFd::new(EFD_NONBLOCK).unwrap()).collect(),
                acked: None,
                activated_with: None,
                fail_activate: false,
                resets: 0,
                config: vec![0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88],
            }
        }
    }

    impl VirtioDevice for FakeDevice {
        fn device_type(&self) -> u32 {
            42
        }
        fn queue_max_sizes(&self) -> &[u16] {
            &self.sizes
        }
        fn queue_events(&self) -> &[EventFd] {
            &self.events
        }
        fn avail_features(&self) -> u64 {
            FEATURE_VERSION_1 | FEATURE_A
        }
        fn set_acked_features(&mut self, features: u64) {
            self.acked = Some(features);
        }
        fn read_config(&self, offset: u64, data: &mut [u8]) {
            for (i, b) in data.iter_mut().enumerate() {
                *b = self.config.get(offset as usize + i).copied().unwrap_or(0);
            }
        }
        fn write_config(&mut self, offset: u64, data: &[u8]) {
            for (i, b) in data.iter().enumerate() {
                if let Some(c) = self.config.get_mut(offset as usize + i) {
                    *c = *b;
                }
            }
        }
        fn activate(
            &mut self,
            _mem: GuestMemoryMmap,
            queues: Vec<Queue>,
            _interrupt: Arc<Interrupt>,
        ) -> Result<(), ActivateError> {
            if self.fail_activate {
                return Err(ActivateError::Device("told to fail".into()));
            }
            self.activated_with = Some(queues.iter().map(|q| q.state()).collect());
            Ok(())
        }
        fn is_activated(&self) -> bool {
            self.activated_with.is_some()
        }
        fn reset(&mut self) -> bool {
            self.resets += 1;
            self.activated_with = None;
            true
        }
    }

    struct Setup {
        device: Arc<Mutex<FakeDevice>>,
        interrupt: Arc<Interrupt>,
        transport: MmioTransport,
    }

    fn setup() -> Setup {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        let device = Arc::new(Mutex::new(FakeDevice::new()));
        let interrupt = Arc::new(Interrupt::new(EventFd::new(EFD_NONBLOCK).unwrap()));
        let transport = MmioTransport::new(device.clone(), interrupt.clone(), mem);
        Setup { device, interrupt, transport }
    }

    fn read(t: &mut MmioTransport, offset: u64) -> u32 {
        let mut b = [0u8; 4];
        t.read(offset, &mut b);
        u32::from_le_bytes(b)
    }

    fn write(t: &mut MmioTransport, offset: u64, value: u32) {
        t.write(offset, &value.to_le_bytes());
    }

    fn device_features(t: &mut MmioTransport) -> u64 {
        write(t, reg::DEVICE_FEATURES_SEL, 0);
        let low = read(t, reg::DEVICE_FEATURES);
        write(t, reg::DEVICE_FEATURES_SEL, 1);
        let high = read(t, reg::DEVICE_FEATURES);
        u64::from(high) << 32 | u64::from(low)
    }

    fn ack_features(t: &mut MmioTransport, features: u64) {
        write(t, reg::DRIVER_FEATURES_SEL, 0);
        write(t, reg::DRIVER_FEATURES, features as u32);
        write(t, reg::DRIVER_FEATURES_SEL, 1);
        write(t, reg::DRIVER_FEATURES, (features >> 32) as u32);
    }

    /// ACKNOWLEDGE, DRIVER, the features, FEATURES_OK: what a driver does before queue setup.
    fn negotiate(t: &mut MmioTransport, features: u64) {
        write(t, reg::STATUS, status::ACKNOWLEDGE);
        write(t, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
        ack_features(t, features);
        write(t, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK);
    }

    fn setup_queue(t: &mut MmioTransport, index: u32, size: u32, base: u64) {
        write(t, reg::QUEUE_SEL, index);
        assert_eq!(read(t, reg::QUEUE_READY), 0);
        write(t, reg::QUEUE_NUM, size);
        write(t, reg::QUEUE_DESC_LOW, base as u32);
        write(t, reg::QUEUE_DESC_HIGH, (base >> 32) as u32);
        write(t, reg::QUEUE_DRIVER_LOW, (base + 0x1000) as u32);
        write(t, reg::QUEUE_DRIVER_HIGH, 0);
        write(t, reg::QUEUE_DEVICE_LOW, (base + 0x2000) as u32);
        write(t, reg::QUEUE_DEVICE_HIGH, 0);
        write(t, reg::QUEUE_READY, 1);
        assert_eq!(read(t, reg::QUEUE_READY), 1);
    }

    const ALL_OK: u32 = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK;

    #[test]
    fn identifies_a_version_2_device() {
        let mut s = setup();
        let t = &mut s.transport;
        assert_eq!(read(t, reg::MAGIC_VALUE), 0x7472_6976);
        assert_eq!(read(t, reg::VERSION), 2);
        assert_eq!(read(t, reg::DEVICE_ID), 42);
        assert_eq!(read(t, reg::VENDOR_ID), 0);
        assert_eq!(read(t, reg::STATUS), 0);
        write(t, reg::SHM_SEL, 0);
        assert_eq!(read(t, reg::SHM_LEN_LOW), u32::MAX);
        assert_eq!(read(t, reg::SHM_LEN_HIGH), u32::MAX);
        assert_eq!(read(t, reg::CONFIG_GENERATION), 0);
        // Registers are 32-bit: a narrower access reads zeros.
        let mut b = [0xffu8; 2];
        t.read(reg::MAGIC_VALUE, &mut b);
        assert_eq!(b, [0, 0]);
    }

    #[test]
    fn negotiates_offered_features() {
        let mut s = setup();
        let t = &mut s.transport;
        assert_eq!(device_features(t), FEATURE_VERSION_1 | FEATURE_A);
        write(t, reg::DEVICE_FEATURES_SEL, 2);
        assert_eq!(read(t, reg::DEVICE_FEATURES), 0);
        negotiate(t, FEATURE_VERSION_1 | FEATURE_A);
        assert_eq!(read(t, reg::STATUS), status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK);
        assert_eq!(s.device.lock().unwrap().acked, Some(FEATURE_VERSION_1 | FEATURE_A));
        // Features are frozen once FEATURES_OK is set.
        ack_features(t, FEATURE_VERSION_1);
        assert_eq!(t.driver_features, FEATURE_VERSION_1 | FEATURE_A);
    }

    #[test]
    fn refuses_features_it_did_not_offer() {
        let mut s = setup();
        negotiate(&mut s.transport, FEATURE_VERSION_1 | FEATURE_UNOFFERED);
        assert_eq!(read(&mut s.transport, reg::STATUS), status::ACKNOWLEDGE | status::DRIVER);
        assert_eq!(s.device.lock().unwrap().acked, None);

        // A bit in a bank past 64 is never offered either.
        let mut s = setup();
        let t = &mut s.transport;
        write(t, reg::STATUS, status::ACKNOWLEDGE);
        write(t, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
        ack_features(t, FEATURE_VERSION_1);
        write(t, reg::DRIVER_FEATURES_SEL, 2);
        write(t, reg::DRIVER_FEATURES, 1);
        write(t, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK);
        assert_eq!(read(t, reg::STATUS) & status::FEATURES_OK, 0);
    }

    #[test]
    fn status_bits_come_in_order() {
        let mut s = setup();
        let t = &mut s.transport;
        // DRIVER before ACKNOWLEDGE, FEATURES_OK before DRIVER, DRIVER_OK before FEATURES_OK.
        write(t, reg::STATUS, status::DRIVER);
        assert_eq!(read(t, reg::STATUS), 0);
        write(t, reg::STATUS, status::ACKNOWLEDGE);
        write(t, reg::STATUS, status::ACKNOWLEDGE | status::FEATURES_OK);
        assert_eq!(read(t, reg::STATUS), status::ACKNOWLEDGE);
        write(t, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
        write(t, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER | status::DRIVER_OK);
        assert_eq!(read(t, reg::STATUS), status::ACKNOWLEDGE | status::DRIVER);
        // Taking a bit away is not a step either.
        write(t, reg::STATUS, status::ACKNOWLEDGE);
        assert_eq!(read(t, reg::STATUS), status::ACKNOWLEDGE | status::DRIVER);
        // FAILED is accepted at any point and sticks until a reset.
        write(t, reg::STATUS, status::FAILED);
        assert_eq!(read(t, reg::STATUS), status::ACKNOWLEDGE | status::DRIVER | status::FAILED);
        write(t, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER | status::FAILED | status::FEATURES_OK);
        assert_eq!(read(t, reg::STATUS) & status::FEATURES_OK, 0);
        assert!(s.device.lock().unwrap().acked.is_none());
    }

    #[test]
    fn activates_with_the_queues_the_driver_described() {
        let mut s = setup();
        let t = &mut s.transport;
        // Queue registers are ignored before FEATURES_OK.
        write(t, reg::QUEUE_SEL, 0);
        write(t, reg::QUEUE_NUM, 4);
        negotiate(t, FEATURE_VERSION_1);
        write(t, reg::QUEUE_SEL, 0);
        assert_eq!(read(t, reg::QUEUE_NUM_MAX), 16);
        write(t, reg::QUEUE_SEL, 1);
        assert_eq!(read(t, reg::QUEUE_NUM_MAX), 8);
        write(t, reg::QUEUE_SEL, 2);
        assert_eq!(read(t, reg::QUEUE_NUM_MAX), 0);
        assert_eq!(read(t, reg::QUEUE_READY), 0);
        setup_queue(t, 0, 16, 0x1_0000);
        setup_queue(t, 1, 4, 0x2_0000);
        assert!(!s.device.lock().unwrap().is_activated());

        write(t, reg::STATUS, ALL_OK);
        assert_eq!(read(t, reg::STATUS), ALL_OK);
        let queues = s.device.lock().unwrap().activated_with.clone().unwrap();
        assert_eq!(queues.len(), 2);
        assert_eq!((queues[0].size, queues[0].ready, queues[0].desc_table), (16, true, 0x1_0000));
        assert_eq!((queues[0].avail_ring, queues[0].used_ring), (0x1_1000, 0x1_2000));
        assert_eq!((queues[1].size, queues[1].max_size, queues[1].desc_table), (4, 8, 0x2_0000));

        // Queue setup is closed once the device runs.
        write(t, reg::QUEUE_SEL, 1);
        write(t, reg::QUEUE_NUM, 2);
        assert_eq!(t.queues[1].size(), 4);
    }

    #[test]
    fn queue_notify_signals_the_queue_eventfd() {
        let mut s = setup();
        let t = &mut s.transport;
        negotiate(t, FEATURE_VERSION_1);
        setup_queue(t, 0, 16, 0x1_0000);
        setup_queue(t, 1, 8, 0x2_0000);
        write(t, reg::STATUS, ALL_OK);
        write(t, reg::QUEUE_NOTIFY, 1);
        write(t, reg::QUEUE_NOTIFY, 7);
        let device = s.device.lock().unwrap();
        assert_eq!(device.events[1].read().unwrap(), 1);
        assert!(device.events[0].read().is_err());
    }

    #[test]
    fn interrupt_status_and_ack() {
        let mut s = setup();
        let t = &mut s.transport;
        assert_eq!(read(t, reg::INTERRUPT_STATUS), 0);
        s.interrupt.signal_used_queue().unwrap();
        s.interrupt.signal_config_change().unwrap();
        assert_eq!(read(t, reg::INTERRUPT_STATUS), INT_USED_RING | INT_CONFIG);
        assert_eq!(s.interrupt.irqfd().read().unwrap(), 2);
        write(t, reg::INTERRUPT_ACK, INT_USED_RING);
        assert_eq!(read(t, reg::INTERRUPT_STATUS), INT_CONFIG);
        write(t, reg::INTERRUPT_ACK, INT_CONFIG);
        assert_eq!(read(t, reg::INTERRUPT_STATUS), 0);
    }

    #[test]
    fn reset_returns_to_the_initial_state() {
        let mut s = setup();
        let t = &mut s.transport;
        negotiate(t, FEATURE_VERSION_1);
        setup_queue(t, 0, 8, 0x1_0000);
        write(t, reg::STATUS, ALL_OK);
        s.interrupt.signal_used_queue().unwrap();

        write(t, reg::STATUS, 0);
        assert_eq!(read(t, reg::STATUS), 0);
        assert_eq!(read(t, reg::INTERRUPT_STATUS), 0);
        assert_eq!(s.device.lock().unwrap().resets, 1);
        assert!(!s.device.lock().unwrap().is_activated());
        write(t, reg::QUEUE_SEL, 0);
        assert_eq!(read(t, reg::QUEUE_READY), 0);
        assert_eq!(t.queues[0].size(), 16);
        assert_eq!(t.driver_features, 0);

        // And the driver can bring it up again.
        negotiate(t, FEATURE_VERSION_1);
        setup_queue(t, 0, 16, 0x3_0000);
        write(t, reg::STATUS, ALL_OK);
        assert_eq!(read(t, reg::STATUS), ALL_OK);
        assert_eq!(s.device.lock().unwrap().activated_with.as_ref().unwrap()[0].desc_table, 0x3_0000);
    }

    #[test]
    fn a_failed_activation_asks_for_a_reset() {
        let mut s = setup();
        s.device.lock().unwrap().fail_activate = true;
        let t = &mut s.transport;
        negotiate(t, FEATURE_VERSION_1);
        setup_queue(t, 0, 16, 0x1_0000);
        write(t, reg::STATUS, ALL_OK);
        assert_eq!(read(t, reg::STATUS), ALL_OK | status::DEVICE_NEEDS_RESET);
        assert_eq!(read(t, reg::INTERRUPT_STATUS), INT_CONFIG);
        assert!(t.activate_error().is_some());

        // Rings outside guest memory never reach the device.
        let mut s = setup();
        let t = &mut s.transport;
        negotiate(t, FEATURE_VERSION_1);
        setup_queue(t, 0, 16, 0x10_0000_0000);
        write(t, reg::STATUS, ALL_OK);
        assert_ne!(read(t, reg::STATUS) & status::DEVICE_NEEDS_RESET, 0);
        assert!(!s.device.lock().unwrap().is_activated());
    }

    #[test]
    fn config_space_reads_and_writes_at_any_width() {
        let mut s = setup();
        let t = &mut s.transport;
        assert_eq!(read(t, reg::CONFIG), 0x4433_2211);
        assert_eq!(read(t, reg::CONFIG + 4), 0x8877_6655);
        let mut b = [0u8; 1];
        t.read(reg::CONFIG + 2, &mut b);
        assert_eq!(b, [0x33]);
        let mut w = [0u8; 2];
        t.read(reg::CONFIG + 6, &mut w);
        assert_eq!(w, [0x77, 0x88]);
        t.write(reg::CONFIG + 1, &[0xaa]);
        assert_eq!(read(t, reg::CONFIG), 0x4433_aa11);
    }
}
