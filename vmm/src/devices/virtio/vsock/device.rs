//! The virtio-vsock device (virtio 1.2, 5.10): an rx, a tx and an event queue, and a config
//! space holding the guest's CID. Its work runs on the event loop: queue notifications, the
//! host listening socket and every connection's unix stream are in the same epoll set.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;

use event_manager::{EventOps, EventSet, Events, MutEventSubscriber};
use virtio_queue::{Queue, QueueT, Reader, Writer};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::muxer::{EpollChange, Muxer};
use super::packet::{self, HEADER_SIZE, MAX_PAYLOAD};
use super::Error;
use crate::devices::virtio::{
    read_config_bytes, ActivateError, Interrupt, VirtioDevice, FEATURE_VERSION_1, TYPE_VSOCK,
};
use crate::memory::GuestMemoryMmap;

/// Queue indices; the third, the event queue, only carries transport resets, never sent here.
pub const RX_QUEUE: usize = 0;
pub const TX_QUEUE: usize = 1;
/// Linux fills the rx queue with 4 KiB buffers; 256 of them keep a fast stream going.
const QUEUE_SIZES: [u16; 3] = [256, 256, 256];

/// What the device works with once the driver set it up.
struct Active {
    mem: GuestMemoryMmap,
    rx: Queue,
    tx: Queue,
    interrupt: Arc<Interrupt>,
}

pub struct Vsock {
    guest_cid: u32,
    acked_features: u64,
    queue_events: Vec<EventFd>,
    /// Signalled on activation and reset, which happen on a vcpu thread: the event loop then
    /// serves what waited for the queues and applies the epoll changes.
    wakeup: EventFd,
    active: Option<Active>,
    muxer: Muxer,
    /// A tx packet waits for its connection's unix stream to drain (see `Muxer::must_wait`).
    tx_waiting: bool,
    tx_payload: Vec<u8>,
    rx_payload: Vec<u8>,
}

impl Vsock {
    /// A device for the guest `guest_cid` whose host side listens on `uds_path` (bound here;
    /// a stale socket file there is replaced).
    pub fn new(guest_cid: u32, uds_path: &Path) -> Result<Vsock, Error> {
        // 0, 1 and 2 are the hypervisor, the loopback and the host; u32::MAX is "any".
        if guest_cid < 3 || guest_cid == u32::MAX {
            return Err(Error::InvalidCid(guest_cid));
        }
        let eventfd = || EventFd::new(EFD_NONBLOCK).map_err(Error::EventFd);
        let queue_events = QUEUE_SIZES.iter().map(|_| eventfd()).collect::<Result<Vec<_>, _>>()?;
        Ok(Vsock {
            guest_cid,
            acked_features: 0,
            queue_events,
            wakeup: eventfd()?,
            active: None,
            muxer: Muxer::new(u64::from(guest_cid), uds_path)?,
            tx_waiting: false,
            tx_payload: Vec::new(),
            rx_payload: vec![0; MAX_PAYLOAD],
        })
    }

    pub fn guest_cid(&self) -> u32 {
        self.guest_cid
    }

    pub fn uds_path(&self) -> &Path {
        self.muxer.listener().path()
    }

    /// Open streams between the guest and host programs.
    pub fn connection_count(&self) -> usize {
        self.muxer.connection_count()
    }

    /// The items waiting in the muxer's rx queue, stale ones included.
    #[cfg(test)]
    pub(super) fn rx_queue_len(&self) -> usize {
        self.muxer.rx_queue_len()
    }

    /// Moves the guest's packets from the tx queue to their connections: a queue's worth at
    /// most per pass, then the queue's event is raised again, so a guest that keeps the queue
    /// full (or whose rings alias so that the avail index never runs out) cannot hold the
    /// event loop, which serves every other device and connection too.
    fn process_tx(&mut self) {
        let Some(active) = self.active.as_mut() else { return };
        let mem = &active.mem;
        let mut used = false;
        self.tx_waiting = false;
        let budget = active.tx.size();
        let mut served: u16 = 0;
        while let Some(chain) = active.tx.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            let parsed = Reader::new(mem, chain)
                .ok()
                .and_then(|mut reader| packet::read_header(&mut reader).ok().map(|hdr| (hdr, reader)));
            // A chain without a readable header is consumed unanswered: there is no one to
            // address an answer to.
            if let Some((hdr, mut reader)) = parsed {
                if self.muxer.must_wait(&hdr) {
                    // Hand the chain back; it is read again once the connection drained.
                    active.tx.set_next_avail(active.tx.next_avail().wrapping_sub(1));
                    self.tx_waiting = true;
                    break;
                }
                match packet::read_payload(&mut reader, &hdr, &mut self.tx_payload) {
                    Ok(payload) => self.muxer.on_guest_packet(&hdr, payload),
                    Err(_) => self.muxer.on_bad_packet(&hdr),
                }
            }
            // The device writes nothing into tx buffers.
            if active.tx.add_used(mem, head, 0).is_err() {
                break;
            }
            used = true;
            served += 1;
            if served >= budget {
                // The eventfd write only fails when its counter is at its maximum, and then
                // the event is raised anyway.
                let _ = self.queue_events[TX_QUEUE].write(1);
                break;
            }
        }
        if used {
            active.interrupt.signal_used_unless_suppressed(&mut active.tx, mem);
        }
    }

    /// Fills the guest's rx buffers with what the connections owe it; as for tx, a queue's
    /// worth per pass (a guest refilling the ring with buffers too small for a header would
    /// otherwise keep this loop going while a packet waits).
    fn process_rx(&mut self) {
        let Some(active) = self.active.as_mut() else { return };
        let mem = &active.mem;
        let mut used = false;
        let mut budget = active.rx.size();
        while self.muxer.has_rx() {
            if budget == 0 {
                // Any event ends in another rx pass; this one brings it about.
                let _ = self.queue_events[RX_QUEUE].write(1);
                break;
            }
            budget -= 1;
            let Some(chain) = active.rx.pop_descriptor_chain(mem) else { break };
            let head = chain.head_index();
            let used_len = match Writer::new(mem, chain) {
                Ok(mut writer) if writer.available_bytes() >= HEADER_SIZE => {
                    let room = (writer.available_bytes() - HEADER_SIZE).min(MAX_PAYLOAD);
                    let buf = &mut self.rx_payload[..room];
                    let Some((hdr, len)) = self.muxer.next_rx_packet(buf) else {
                        // Nothing was ready after all: hand the buffer back for later.
                        active.rx.set_next_avail(active.rx.next_avail().wrapping_sub(1));
                        break;
                    };
                    match packet::write_packet(&mut writer, &hdr, &buf[..len]) {
                        Ok(written) => written,
                        Err(_) => {
                            self.muxer.on_lost_rx_packet(&hdr);
                            0
                        }
                    }
                }
                // Too small for a header, or outside guest memory: returned unused.
                _ => 0,
            };
            if active.rx.add_used(mem, head, used_len).is_err() {
                break;
            }
            used = true;
        }
        if used {
            active.interrupt.signal_used_unless_suppressed(&mut active.rx, mem);
        }
    }
}

impl VirtioDevice for Vsock {
    fn device_type(&self) -> u32 {
        TYPE_VSOCK
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &QUEUE_SIZES
    }

    fn queue_events(&self) -> &[EventFd] {
        &self.queue_events
    }

    fn avail_features(&self) -> u64 {
        FEATURE_VERSION_1
    }

    fn set_acked_features(&mut self, features: u64) {
        self.acked_features = features & self.avail_features();
    }

    /// `struct virtio_vsock_config { le64 guest_cid; }`
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        let config = u64::from(self.guest_cid).to_le_bytes();
        read_config_bytes(&config, offset, data);
    }

    fn activate(
        &mut self,
        mem: GuestMemoryMmap,
        queues: Vec<Queue>,
        interrupt: Arc<Interrupt>,
    ) -> Result<(), ActivateError> {
        if queues.len() != QUEUE_SIZES.len() {
            return Err(ActivateError::Device(format!("vsock has 3 queues, got {}", queues.len())));
        }
        let mut queues = queues.into_iter();
        let (Some(rx), Some(tx)) = (queues.next(), queues.next()) else {
            return Err(ActivateError::QueueNotReady(RX_QUEUE));
        };
        for (index, queue) in [(RX_QUEUE, &rx), (TX_QUEUE, &tx)] {
            if !queue.ready() {
                return Err(ActivateError::QueueNotReady(index));
            }
        }
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
        self.tx_waiting = false;
        self.muxer.reset();
        // The closed streams leave epoll on the event loop thread.
        let _ = self.wakeup.write(1);
        true
    }
}

impl MutEventSubscriber for Vsock {
    fn init(&mut self, ops: &mut EventOps) {
        // Adding fresh fds to a fresh epoll set only fails when the system is out of memory or
        // epoll watches; the device then stays silent and the guest sees no vsock traffic.
        for event in &self.queue_events {
            let _ = ops.add(Events::new(event, EventSet::IN));
        }
        let _ = ops.add(Events::new(&self.wakeup, EventSet::IN));
        let _ = ops.add(Events::new(self.muxer.listener(), EventSet::IN));
    }

    fn process(&mut self, events: Events, ops: &mut EventOps) {
        let fd = events.fd();
        if let Some(queue) = self.queue_events.iter().position(|e| e.as_raw_fd() == fd) {
            // A notification is a level: what matters is looking at the queue.
            let _ = self.queue_events[queue].read();
            if queue == TX_QUEUE {
                self.process_tx();
            }
        } else if fd == self.wakeup.as_raw_fd() {
            let _ = self.wakeup.read();
            self.process_tx();
        } else if fd == self.muxer.listener().as_raw_fd() {
            self.muxer.accept_host_clients();
        } else {
            self.muxer.on_host_event(fd, events.event_set());
        }
        if self.tx_waiting {
            self.process_tx();
        }
        self.process_rx();
        self.muxer.sync_epoll(|change| match change {
            EpollChange::Add(fd, set) => ops.add(Events::new_raw(fd, set)).is_ok(),
            EpollChange::Modify(fd, set) => ops.modify(Events::new_raw(fd, set)).is_ok(),
            EpollChange::Remove(fd) => ops.remove(Events::empty_raw(fd)).is_ok(),
        });
    }
}
