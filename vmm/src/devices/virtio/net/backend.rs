//! What a virtio-net device's frames go to and come from on the host.

use std::io;
use std::os::fd::RawFd;

/// One frame per call, each with its 12-byte virtio-net header in front ([`super::header`]).
pub trait Backend: Send {
    /// Polled for readability by the event loop.
    fn fd(&self) -> RawFd;
    /// The next frame into `buf`; `WouldBlock` when there is none.
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Sends one frame.
    fn send(&mut self, frame: &[u8]) -> io::Result<()>;
    /// The driver accepted `features`: the backend may now hand it what they allow (checksum
    /// and segmentation offloads, [`super::header::tap_offloads`]).
    fn set_offloads(&mut self, features: u64) -> io::Result<()>;
}
