//! The virtio-net device (virtio 1.2, 5.1): a receive and a transmit queue, the MAC, link
//! status and MTU in the config space, frames to and from a [`Backend`]. Its work runs on the
//! event loop: the queue notifications and the backend's fd are in the same epoll set.
//!
//! Receive: a frame is read from the backend only when it can be placed; with merged rx
//! buffers (what Linux asks for) it spreads over as many chains as it needs, the count in the
//! first one's `num_buffers`; without, it must fit one chain (Linux's "big packets" buffers
//! when it takes TSO). When the guest has no room, the frame waits and the backend's fd leaves
//! the epoll set until the guest posts buffers, so a full ring neither spins the event loop
//! nor drops what the backend queued.
//!
//! Nothing the guest writes is trusted: chains go through virtio-queue's Reader and Writer
//! (bounds in guest memory, chain length and loops), a transmitted frame shorter than its
//! header or longer than [`MAX_FRAME`] is dropped, and each pass serves at most a queue's worth
//! of chains before it yields to the rest of the event loop.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::sync::Arc;

use event_manager::{EventOps, EventSet, Events, MutEventSubscriber};
use virtio_queue::{DescriptorChain, Queue, QueueT, Reader, Writer};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::backend::Backend;
use super::header::{
    EVENT_IDX, HEADER_SIZE, LINK_UP, MAX_FRAME, MRG_RXBUF, MTU, NUM_BUFFERS_OFFSET, OFFERED,
};
use super::used_batch::UsedBatch;
use crate::devices::virtio::{read_config_bytes, ActivateError, Interrupt, VirtioDevice, TYPE_NET};
use crate::memory::GuestMemoryMmap;

pub const RX_QUEUE: usize = 0;
pub const TX_QUEUE: usize = 1;
const QUEUE_SIZES: [u16; 2] = [256, 256];

/// What the device works with once the driver set it up.
struct Active {
    mem: GuestMemoryMmap,
    rx: Queue,
    tx: Queue,
    interrupt: Arc<Interrupt>,
}

/// Frames the device could not pass on, for tests and diagnostics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// From the guest: a chain too short, too long or outside guest memory, or the backend
    /// refused the frame.
    pub tx: u64,
    /// To the guest: a frame too large for the buffers it posts, or a backend read error.
    pub rx: u64,
}

pub struct Net {
    mac: [u8; 6],
    mtu: Option<u16>,
    backend: Box<dyn Backend>,
    acked_features: u64,
    queue_events: Vec<EventFd>,
    /// Signalled on activation and reset (a vcpu thread): the event loop then looks at the
    /// queues and the backend's place in the epoll set.
    wakeup: EventFd,
    active: Option<Active>,
    /// The frame read from the backend and not yet placed: its bytes are `rx_frame[..rx_len]`.
    rx_frame: Vec<u8>,
    rx_len: usize,
    /// The guest had no room for `rx_frame`: the backend's fd waits for the rx queue's event.
    rx_starved: bool,
    /// Whether the backend's fd is in the epoll set for reading now.
    backend_polled: bool,
    /// The driver's features are to go to the backend (at the next wakeup, on the event loop).
    offloads_pending: bool,
    tx_frame: Vec<u8>,
    /// The rx queue's used entries: a frame's chains are published together.
    rx_used: UsedBatch,
    dropped: Dropped,
}

/// What became of a frame offered to the rx queue.
enum Placed {
    Done,
    NoRoom,
    Dropped,
}

impl Net {
    /// A device with this MAC (and MTU, offered to the driver when set) on `backend`.
    pub fn new(mac: [u8; 6], mtu: Option<u16>, backend: Box<dyn Backend>) -> std::io::Result<Net> {
        let eventfd = || EventFd::new(EFD_NONBLOCK);
        Ok(Net {
            mac,
            mtu,
            backend,
            acked_features: 0,
            queue_events: vec![eventfd()?, eventfd()?],
            wakeup: eventfd()?,
            active: None,
            rx_frame: vec![0; MAX_FRAME],
            rx_len: 0,
            rx_starved: false,
            backend_polled: false,
            offloads_pending: false,
            tx_frame: vec![0; MAX_FRAME],
            rx_used: UsedBatch::new(),
            dropped: Dropped::default(),
        })
    }

    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    pub fn dropped(&self) -> Dropped {
        self.dropped
    }

    /// Sends the guest's frames to the backend, a queue's worth at most per pass (then the
    /// queue's event is raised again: a guest that keeps the ring full cannot hold the loop).
    fn process_tx(&mut self) {
        let Some(active) = self.active.as_mut() else { return };
        let mem = &active.mem;
        let budget = active.tx.size();
        let mut served: u16 = 0;
        let mut used = false;
        'passes: loop {
            while let Some(chain) = active.tx.pop_descriptor_chain(mem) {
                let head = chain.head_index();
                if !send_chain(mem, chain, &mut self.tx_frame, self.backend.as_mut()) {
                    self.dropped.tx += 1;
                }
                // The device writes nothing into tx buffers.
                if active.tx.add_used(mem, head, 0).is_err() {
                    break 'passes;
                }
                used = true;
                served += 1;
                if served >= budget {
                    // The eventfd write fails only when its counter is at its maximum, and
                    // then the event is raised anyway.
                    let _ = self.queue_events[TX_QUEUE].write(1);
                    break 'passes;
                }
            }
            // With EVENT_IDX this asks for the next notification; true: more came meanwhile.
            if !active.tx.enable_notification(mem).unwrap_or(false) {
                break;
            }
        }
        if used {
            active.interrupt.signal_used_unless_suppressed(&mut active.tx, mem);
        }
    }

    /// Moves frames from the backend to the guest until the backend has none, the guest has no
    /// room, or a queue's worth went (the backend's fd, level-triggered, brings the rest).
    fn process_rx(&mut self) {
        let Some(active) = self.active.as_mut() else { return };
        let mem = &active.mem;
        let mergeable = self.acked_features & MRG_RXBUF != 0;
        let mut used = false;
        self.rx_starved = false;
        for _ in 0..active.rx.size() {
            if self.rx_len == 0 {
                match self.backend.recv(&mut self.rx_frame) {
                    Ok(n) if n >= HEADER_SIZE => self.rx_len = n,
                    // A runt (no header) is nothing a guest can take.
                    Ok(_) => {
                        self.dropped.rx += 1;
                        continue;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        self.dropped.rx += 1;
                        break;
                    }
                }
            }
            let placed = place_frame(
                &mut active.rx,
                mem,
                &mut self.rx_frame[..self.rx_len],
                mergeable,
                &mut self.rx_used,
            );
            match placed {
                Placed::Done => {
                    self.rx_len = 0;
                    used = true;
                }
                Placed::Dropped => {
                    self.rx_len = 0;
                    self.dropped.rx += 1;
                    used = true;
                }
                Placed::NoRoom => {
                    // Ask for a notification when buffers come; some may have come already.
                    if active.rx.enable_notification(mem).unwrap_or(false) {
                        continue;
                    }
                    self.rx_starved = true;
                    break;
                }
            }
        }
        if self.rx_len > 0 && !self.rx_starved {
            // The pass ended with a frame in hand and room that came meanwhile: the backend's
            // fd may have nothing more to wake the loop with, so the queue's event does.
            let _ = self.queue_events[RX_QUEUE].write(1);
        }
        if used && self.rx_used.needs_notification(&active.rx, mem) {
            // The irqfd write only fails if its counter overflows, and then an interrupt is
            // pending anyway.
            let _ = active.interrupt.signal_used_queue();
        }
    }

    /// The backend's fd is polled while the device is active and the guest has room.
    fn sync_backend_polling(&mut self, ops: &mut EventOps) {
        let want = self.active.is_some() && !self.rx_starved;
        if want != self.backend_polled {
            let set = if want { EventSet::IN } else { EventSet::empty() };
            if ops.modify(Events::new_raw(self.backend.fd(), set)).is_ok() {
                self.backend_polled = want;
            }
        }
    }
}

/// Reads one chain's frame and hands it to the backend; false when it was dropped.
fn send_chain(
    mem: &GuestMemoryMmap,
    chain: DescriptorChain<&GuestMemoryMmap>,
    buf: &mut [u8],
    backend: &mut dyn Backend,
) -> bool {
    let Ok(mut reader) = Reader::new(mem, chain) else { return false };
    let len = reader.available_bytes();
    if !(HEADER_SIZE..=buf.len()).contains(&len) {
        return false;
    }
    reader.read_exact(&mut buf[..len]).is_ok() && backend.send(&buf[..len]).is_ok()
}

/// Places `frame` (header first) in the rx queue: over as many chains as it takes when
/// `mergeable`, else in one. The chains are measured before anything is written, and handed
/// back untouched when they do not add up to the frame. The driver sees the frame's chains
/// all at once ([`UsedBatch`]).
fn place_frame(
    rx: &mut Queue,
    mem: &GuestMemoryMmap,
    frame: &mut [u8],
    mergeable: bool,
    used: &mut UsedBatch,
) -> Placed {
    let mut chains: Vec<(DescriptorChain<&GuestMemoryMmap>, usize)> = Vec::new();
    let mut room = 0usize;
    while room < frame.len() {
        let Some(chain) = rx.pop_descriptor_chain(mem) else {
            rx.set_next_avail(rx.next_avail().wrapping_sub(chains.len() as u16));
            return Placed::NoRoom;
        };
        let size = Writer::new(mem, chain.clone()).map(|w| w.available_bytes()).unwrap_or(0);
        let too_small = if chains.is_empty() { size < HEADER_SIZE } else { size == 0 };
        if too_small || (!mergeable && size < frame.len()) {
            // A buffer no frame can use (or, without merging, too small for this one): the
            // frame is dropped and the chains go back to the guest empty.
            chains.push((chain, 0));
            for (chain, _) in chains {
                used.push(chain.head_index(), 0);
            }
            // Heads come from the queue and the ring was checked when the driver set it up;
            // if this fails anyway, the chains are lost to the driver, as with add_used.
            let _ = used.publish(rx, mem);
            return Placed::Dropped;
        }
        room += size;
        chains.push((chain, size));
    }
    // At most a queue's worth of chains, so this fits.
    let count = chains.len() as u16;
    frame[NUM_BUFFERS_OFFSET..NUM_BUFFERS_OFFSET + 2].copy_from_slice(&count.to_le_bytes());
    let mut offset = 0;
    for (chain, size) in chains {
        let head = chain.head_index();
        let part = size.min(frame.len() - offset);
        let written = match Writer::new(mem, chain) {
            Ok(mut writer) => writer.write(&frame[offset..offset + part]).unwrap_or(0),
            Err(_) => 0,
        };
        offset += part;
        // Fits: `part` is at most a chain's size, which a u32 descriptor length bounds.
        used.push(head, written as u32);
    }
    let _ = used.publish(rx, mem);
    Placed::Done
}

impl VirtioDevice for Net {
    fn device_type(&self) -> u32 {
        TYPE_NET
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &QUEUE_SIZES
    }

    fn queue_events(&self) -> &[EventFd] {
        &self.queue_events
    }

    fn avail_features(&self) -> u64 {
        if self.mtu.is_some() {
            OFFERED | MTU
        } else {
            OFFERED
        }
    }

    fn set_acked_features(&mut self, features: u64) {
        self.acked_features = features & self.avail_features();
    }

    /// `struct virtio_net_config { u8 mac[6]; le16 status; le16 max_virtqueue_pairs;
    /// le16 mtu; ... }`
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        let mut config = [0u8; 12];
        config[..6].copy_from_slice(&self.mac);
        config[6..8].copy_from_slice(&LINK_UP.to_le_bytes());
        config[8..10].copy_from_slice(&1u16.to_le_bytes());
        config[10..12].copy_from_slice(&self.mtu.unwrap_or(0).to_le_bytes());
        read_config_bytes(&config, offset, data);
    }

    fn activate(
        &mut self,
        mem: GuestMemoryMmap,
        queues: Vec<Queue>,
        interrupt: Arc<Interrupt>,
    ) -> Result<(), ActivateError> {
        if queues.len() != QUEUE_SIZES.len() {
            return Err(ActivateError::Device(format!("virtio-net has 2 queues, got {}", queues.len())));
        }
        let mut queues = queues.into_iter();
        let (Some(mut rx), Some(mut tx)) = (queues.next(), queues.next()) else {
            return Err(ActivateError::QueueNotReady(RX_QUEUE));
        };
        for (index, queue) in [(RX_QUEUE, &rx), (TX_QUEUE, &tx)] {
            if !queue.ready() {
                return Err(ActivateError::QueueNotReady(index));
            }
        }
        let event_idx = self.acked_features & EVENT_IDX != 0;
        rx.set_event_idx(event_idx);
        tx.set_event_idx(event_idx);
        // On the event loop (this is a vcpu thread, whose seccomp filter has KVM_RUN and little
        // else); until then the backend hands over no offloaded frame, which any driver takes.
        self.offloads_pending = true;
        self.active = Some(Active { mem, rx, tx, interrupt });
        self.wakeup.write(1)?;
        Ok(())
    }

    fn is_activated(&self) -> bool {
        self.active.is_some()
    }

    fn reset(&mut self) -> bool {
        self.active = None;
        self.acked_features = 0;
        self.rx_len = 0;
        self.rx_starved = false;
        self.rx_used.reset();
        self.offloads_pending = false;
        // The backend's fd leaves the epoll set on the event loop thread.
        let _ = self.wakeup.write(1);
        true
    }
}

impl MutEventSubscriber for Net {
    fn init(&mut self, ops: &mut EventOps) {
        // Adding fresh fds to a fresh epoll set only fails when the system is out of memory or
        // epoll watches; the device then stays silent and the guest sees no traffic.
        for event in &self.queue_events {
            let _ = ops.add(Events::new(event, EventSet::IN));
        }
        let _ = ops.add(Events::new(&self.wakeup, EventSet::IN));
        // Polled for reading only once the device is active ([`Net::sync_backend_polling`]).
        let _ = ops.add(Events::new_raw(self.backend.fd(), EventSet::empty()));
    }

    fn process(&mut self, events: Events, ops: &mut EventOps) {
        let fd = events.fd();
        if let Some(queue) = self.queue_events.iter().position(|e| e.as_raw_fd() == fd) {
            // A notification is a level: what matters is looking at the queue.
            let _ = self.queue_events[queue].read();
            if queue == TX_QUEUE {
                self.process_tx();
            } else {
                self.process_rx();
            }
        } else if fd == self.wakeup.as_raw_fd() {
            let _ = self.wakeup.read();
            if self.active.is_some() && std::mem::take(&mut self.offloads_pending) {
                if let Err(e) = self.backend.set_offloads(self.acked_features) {
                    // The frames still flow, each a full-size one with its checksum done.
                    log::warn!("virtio-net: {e}");
                }
            }
            self.process_tx();
            self.process_rx();
        } else if fd == self.backend.fd() {
            self.process_rx();
        }
        self.sync_backend_polling(ops);
    }
}
