//! virtio-vsock in userspace, with Firecracker's hybrid host side: unix sockets instead of the
//! host's vhost-vsock, so nothing depends on that module.
//!
//! - A host program connects to the unix socket at `uds_path` and sends `CONNECT <port>\n`;
//!   the device asks the guest for a stream to `port` and, once the guest accepts, answers
//!   `OK <host_port>\n`. From then on the unix stream is the guest socket's peer.
//! - A guest connecting to the host (CID 2) on port P reaches the unix socket
//!   `<uds_path>_P`; nothing listening there means "connection refused" (RST).
//!
//! Only stream sockets. Layout: [`device`] (the virtio device and its queues), [`muxer`] (the
//! connection table and the rx queue), [`connection`] (one stream: credit, half-close,
//! teardown), [`unix`] (the host sockets and the CONNECT line), [`packet`] (the header).

mod connection;
mod device;
mod muxer;
pub mod packet;
mod unix;

use std::io;
use std::path::PathBuf;

pub use device::Vsock;
pub use muxer::MAX_CONNECTIONS;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("vsock guest CID {0} is reserved: use 3 or more (and less than 4294967295)")]
    InvalidCid(u32),
    #[error("removing the stale vsock socket {path}: {source}")]
    RemoveStale {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("binding the vsock socket {path}: {source}")]
    Bind {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("creating the vsock eventfds: {0}")]
    EventFd(#[source] io::Error),
}

#[cfg(test)]
mod tests;
