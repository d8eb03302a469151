//! virtio-fs (virtio 1.2, 5.11): a host directory shared with the guest under a tag
//! (`mount -t virtiofs TAG DIR` in the guest).
//!
//! The FUSE requests the guest driver puts on the queues are served in-process by
//! fuse-backend-rs: its `Server` decodes each request and calls its passthrough file system,
//! which performs it on the host directory. No vhost-user daemon, no DAX window: data is copied
//! through the descriptors.
//!
//! - [`config`]: the config space (tag and number of request queues) and the tag's rules.
//! - [`shared_dir`]: the file system the server calls: the passthrough fs and the read-only
//!   policy, and the cache policy the guest is told.
//! - [`request`]: one descriptor chain in, one FUSE reply out, whatever the guest sent.
//! - [`device`]: [`Fs`], the virtio device and its event-loop side.
//!
//! Where it runs: the passthrough fs opens `/proc/self/fd` and `/proc/self/mountinfo` when
//! [`Fs::new`] runs and reopens the shared directory by its path whenever the guest mounts
//! (FUSE_INIT) and unmounts (FUSE_DESTROY). In the vm backend the VMM is the container's init
//! after pivot_root, so build the device there with the directory `/`, after /proc is mounted
//! in the container; `/proc` may be masked or unmounted afterwards (the fd is kept).

mod config;
mod device;
mod error;
mod request;
mod shared_dir;

#[cfg(test)]
mod tests;

pub use device::Fs;
pub use error::Error;

/// The longest tag, in bytes (the config space field is 36 bytes, NUL padded).
pub const TAG_MAX_LEN: usize = 36;

/// One request queue: the event loop serves requests one at a time anyway.
const NUM_REQUEST_QUEUES: usize = 1;
/// Queue 0 is the high-priority queue (FORGET, INTERRUPT), then the request queues.
const NUM_QUEUES: usize = 1 + NUM_REQUEST_QUEUES;

/// Each queue's largest size. A 1 MiB read or write (the max_pages the server negotiates) takes
/// about 260 descriptors, so 1024 leaves room for several requests in flight.
const QUEUE_SIZE: u16 = 1024;
