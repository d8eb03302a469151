//! virtio-net on a tap: the guest's NIC. Layout: [`device`] (the virtio device, its queues and
//! how frames are placed), [`header`] (the virtio-net header, the features offered and the
//! offloads they allow), [`used_batch`] (a received frame's used entries, published at once),
//! [`backend`] (what the frames go to), [`tap`] (the tap backend).
//!
//! The vm backend gives a container's guest one NIC per interface of the container's network
//! namespace; the tap sits in that namespace, and traffic is mirrored between it and the
//! interface (issue 14; docs/vm.md).

mod backend;
mod device;
mod header;
mod tap;
mod used_batch;

pub use backend::Backend;
pub use device::{Dropped, Net, RX_QUEUE, TX_QUEUE};
pub use header::{HEADER_SIZE, MAX_FRAME};
pub use tap::Tap;

#[cfg(test)]
mod tests;
