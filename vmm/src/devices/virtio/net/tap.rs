//! A tap interface as a virtio-net backend: opened with IFF_VNET_HDR and a header size of 12,
//! so each frame the tap reads or writes carries the same header as the guest's, and frames
//! cross between the tap and the queues as they are, with their checksum and segmentation
//! offloads (the host kernel completes a partial checksum or splits a 64 KiB segment when a
//! frame leaves the host, as it does for any tap).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use super::backend::Backend;
use super::header::{tap_offloads, HEADER_SIZE};

/// `struct ifreq` with the part TUNSETIFF uses: the name, then the flags (40 bytes in all).
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _rest: [u8; 22],
}

#[derive(Debug)]
pub struct Tap {
    file: File,
    name: String,
}

impl Tap {
    /// Opens the tap called `name` in the calling thread's network namespace, creating it
    /// when it does not exist (that needs CAP_NET_ADMIN there).
    pub fn open(name: &str) -> io::Result<Tap> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(['/', ' ', '\0']) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name:?} is not an interface name"),
            ));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(|e| io::Error::new(e.kind(), format!("/dev/net/tun: {e}")))?;
        let mut req = IfReq { name: [0; libc::IFNAMSIZ], flags: 0, _rest: [0; 22] };
        req.name[..name.len()].copy_from_slice(name.as_bytes());
        req.flags = (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes a `struct ifreq`, which `req` is laid out as and
        // large enough for; the fd is the tun device just opened.
        if unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) } < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("TUNSETIFF {name}: {e}")));
        }
        let size = HEADER_SIZE as libc::c_int;
        // SAFETY: TUNSETVNETHDRSZ reads one int through the pointer, which is valid.
        if unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETVNETHDRSZ, &size) } < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("TUNSETVNETHDRSZ {name}: {e}")));
        }
        let len = req.name.iter().position(|&b| b == 0).unwrap_or(req.name.len());
        Ok(Tap { file, name: String::from_utf8_lossy(&req.name[..len]).into_owned() })
    }

    /// The interface's name (the kernel's, which a pattern such as `tap%d` resolves to).
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Backend for Tap {
    fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        // A tap takes a frame per write, whole or not at all.
        self.file.write(frame).map(drop)
    }

    fn set_offloads(&mut self, features: u64) -> io::Result<()> {
        let flags = libc::c_ulong::from(tap_offloads(features));
        // SAFETY: TUNSETOFFLOAD takes its flags as the argument's value, not a pointer.
        if unsafe { libc::ioctl(self.file.as_raw_fd(), libc::TUNSETOFFLOAD, flags) } < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("TUNSETOFFLOAD {}: {e}", self.name)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::virtio::net::header::OFFERED;

    /// Runs `f` on a thread of its own in a new network namespace (the taps it makes go with
    /// it); None where this process may not make one.
    fn in_new_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        std::thread::spawn(move || {
            // SAFETY: unshare on a constant flag; it changes only this thread's namespace.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return None;
            }
            Some(f())
        })
        .join()
        .unwrap()
    }

    #[test]
    fn a_tap_is_made_with_headers_and_takes_offloads() {
        let Some(result) = in_new_netns(|| -> io::Result<(String, u32)> {
            let mut tap = Tap::open("hulltap0")?;
            tap.set_offloads(OFFERED)?;
            tap.set_offloads(0)?;
            let mut req = IfReq { name: [0; libc::IFNAMSIZ], flags: 0, _rest: [0; 22] };
            // SAFETY: TUNGETIFF fills a `struct ifreq`, which `req` is laid out as.
            if unsafe { libc::ioctl(tap.fd(), libc::TUNGETIFF, &mut req) } < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok((tap.name().to_string(), req.flags as u16 as u32))
        }) else {
            eprintln!("skipped: no network namespace for this test (not root?)");
            return;
        };
        let (name, flags) = result.unwrap();
        assert_eq!(name, "hulltap0");
        let want = (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as u32;
        assert_eq!(flags & want, want, "tun_flags {flags:#x}");
    }

    #[test]
    fn bad_names_are_refused_before_the_kernel_is_asked() {
        for name in ["", "a/b", "a name", "sixteen-chars-xx"] {
            assert_eq!(
                Tap::open(name).err().map(|e| e.kind()),
                Some(io::ErrorKind::InvalidInput),
                "{name:?}"
            );
        }
    }
}
