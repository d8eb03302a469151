//! The virtio-fs device: what the virtio-mmio transport sees ([`VirtioDevice`]) and what the
//! event loop runs ([`MutEventSubscriber`]).

use std::path::Path;
use std::sync::Arc;

use event_manager::{EventOps, EventSet, Events, MutEventSubscriber};
use fuse_backend_rs::api::filesystem::FileSystem;
use fuse_backend_rs::api::server::Server;
use virtio_queue::{Queue, QueueT};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::config::ConfigSpace;
use super::shared_dir::SharedDir;
use super::{request, Error, NUM_QUEUES, QUEUE_SIZE};
use crate::devices::virtio::{ActivateError, Interrupt, VirtioDevice, FEATURE_VERSION_1, TYPE_FS};
use crate::memory::GuestMemoryMmap;

const QUEUE_SIZES: [u16; NUM_QUEUES] = [QUEUE_SIZE; NUM_QUEUES];

/// What the device holds once the driver is ready (DRIVER_OK).
struct Active {
    mem: GuestMemoryMmap,
    queues: Vec<Queue>,
    interrupt: Arc<Interrupt>,
}

/// A virtio-fs device serving one host directory under one tag.
pub struct Fs {
    tag: String,
    config: ConfigSpace,
    acked_features: u64,
    /// Indexed like the queues: [hiprio, request].
    queue_events: Vec<EventFd>,
    fs: Arc<SharedDir>,
    server: Server<Arc<SharedDir>>,
    active: Option<Active>,
    /// The driver reset the device: what the guest had open is forgotten on the event loop
    /// thread before the next request, not on the vcpu thread that wrote the reset (whose
    /// seccomp filter opens no file).
    reset_pending: bool,
}

impl Fs {
    /// A device that shares `dir` with the guest as `tag` (1 to 36 bytes). With `read_only`, every
    /// request that would change the directory fails with EROFS.
    ///
    /// `dir` must keep naming the same directory for the life of the device (the passthrough fs
    /// reopens it by path when the guest mounts), and /proc must be mounted when this runs.
    pub fn new(tag: &str, dir: &Path, read_only: bool) -> Result<Fs, Error> {
        let config = ConfigSpace::new(tag)?;
        let dir_error = |source| Error::Dir { path: dir.to_path_buf(), source };
        let meta = std::fs::metadata(dir).map_err(dir_error)?;
        if !meta.is_dir() {
            return Err(Error::NotADirectory(dir.to_path_buf()));
        }
        // The passthrough fs opens its root with O_NOFOLLOW: give it the directory's real path.
        let root = std::fs::canonicalize(dir).map_err(dir_error)?;
        let fs = Arc::new(SharedDir::open(&root, read_only)?);
        let server = Server::new(Arc::clone(&fs));
        let queue_events = (0..NUM_QUEUES)
            .map(|_| EventFd::new(EFD_NONBLOCK))
            .collect::<Result<Vec<_>, _>>()
            .map_err(Error::EventFd)?;
        Ok(Fs {
            tag: tag.to_string(),
            config,
            acked_features: 0,
            queue_events,
            fs,
            server,
            active: None,
            reset_pending: false,
        })
    }

    /// The tag the guest mounts.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Serves the requests waiting on queue `index`, at most one queue's worth so the other
    /// devices on the event loop get their turn; when more wait, the queue's eventfd is
    /// signalled again to come back to them.
    ///
    /// Public only for the fuzz targets (fuzz/), which drive the device without an event loop.
    #[doc(hidden)]
    pub fn process_queue(&mut self, index: usize) {
        let Some(active) = self.active.as_mut() else {
            return;
        };
        let Some(queue) = active.queues.get_mut(index) else {
            return;
        };
        let mem = &active.mem;
        let budget = queue.size();
        let mut served = 0;
        let mut more = false;
        while let Some(chain) = queue.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            let len = request::serve(&self.server, mem, chain);
            if let Err(e) = queue.add_used(mem, head, len) {
                log::warn!("virtio-fs {}: queue {index}: returning a request: {e}", self.tag);
                break;
            }
            served += 1;
            if served == budget {
                more = true;
                break;
            }
        }
        if served == 0 {
            return;
        }
        // Without VIRTIO_RING_F_EVENT_IDX this is always true; kept for when it is offered.
        if queue.needs_notification(mem).unwrap_or(true) {
            if let Err(e) = active.interrupt.signal_used_queue() {
                log::warn!("virtio-fs {}: raising the interrupt: {e}", self.tag);
            }
        }
        if more {
            if let Err(e) = self.queue_events[index].write(1) {
                log::warn!("virtio-fs {}: requeueing queue {index}: {e}", self.tag);
            }
        }
    }
}

impl VirtioDevice for Fs {
    fn device_type(&self) -> u32 {
        TYPE_FS
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

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        self.config.read(offset, data)
    }

    fn activate(
        &mut self,
        mem: GuestMemoryMmap,
        queues: Vec<Queue>,
        interrupt: Arc<Interrupt>,
    ) -> Result<(), ActivateError> {
        if queues.len() != NUM_QUEUES {
            return Err(ActivateError::Device(format!(
                "virtio-fs {}: {} queues given, the device has {NUM_QUEUES}",
                self.tag,
                queues.len()
            )));
        }
        if let Some(index) = queues.iter().position(|q| !q.ready() || !q.is_valid(&mem)) {
            return Err(ActivateError::QueueNotReady(index));
        }
        self.active = Some(Active { mem, queues, interrupt });
        Ok(())
    }

    fn is_activated(&self) -> bool {
        self.active.is_some()
    }

    /// Drops the queues, and has the event loop forget every inode and open file the guest had:
    /// after a reset the driver starts over with FUSE_INIT.
    fn reset(&mut self) -> bool {
        if self.active.take().is_some() {
            self.reset_pending = true;
        }
        self.acked_features = 0;
        true
    }
}

impl MutEventSubscriber for Fs {
    fn init(&mut self, ops: &mut EventOps) {
        for (index, event) in self.queue_events.iter().enumerate() {
            if let Err(e) = ops.add(Events::with_data(event, index as u32, EventSet::IN)) {
                log::warn!("virtio-fs {}: watching queue {index}: {e:?}", self.tag);
            }
        }
    }

    fn process(&mut self, events: Events, _ops: &mut EventOps) {
        let index = events.data() as usize;
        let Some(event) = self.queue_events.get(index) else {
            return;
        };
        // Clears the notification; EAGAIN means there was none pending.
        let _ = event.read();
        if std::mem::take(&mut self.reset_pending) {
            self.fs.destroy();
        }
        self.process_queue(index);
    }
}
