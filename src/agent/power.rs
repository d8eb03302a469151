//! How the guest ends, and the signals PID 1 listens to.
//!
//! vm-run boots the kernel with `reboot=k panic=-1`: a reboot pulses the i8042 reset line,
//! which the VMM sees as the guest stopping, and a panic reboots at once, so every way out of
//! the guest ends the VM. Powering off would need ACPI, which the guest kernel has not.

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// Blocks the signals PID 1 handles and returns a signalfd that delivers them: SIGCHLD (the
/// command and orphans to reap) and the requests busybox's `halt`, `poweroff` and `reboot`
/// (and others written for simple inits) send to PID 1.
pub fn take_signals() -> nix::Result<SignalFd> {
    let mut set = SigSet::empty();
    for s in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGUSR1, Signal::SIGUSR2] {
        set.add(s);
    }
    set.thread_block()?;
    SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
}

/// The request a signal to PID 1 stands for, by busybox init's convention.
pub fn shutdown_request(signo: i32) -> Option<&'static str> {
    match signo {
        libc::SIGUSR1 => Some("halt"),
        libc::SIGUSR2 => Some("poweroff"),
        libc::SIGTERM => Some("reboot"),
        _ => None,
    }
}

/// Flushes the filesystems (the share's writes must reach the host) and resets the guest.
pub fn reboot() -> ! {
    nix::unistd::sync();
    // SAFETY: reboot(2) with a constant command; on success it does not return.
    unsafe { libc::reboot(libc::RB_AUTOBOOT) };
    super::console::fatal("reboot(2) failed; waiting for the host to stop the VM");
    loop {
        // SAFETY: pause(2) has no arguments; PID 1 must never return.
        unsafe { libc::pause() };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busybox_init_signals_map_to_requests() {
        assert_eq!(shutdown_request(libc::SIGUSR2), Some("poweroff"));
        assert_eq!(shutdown_request(libc::SIGTERM), Some("reboot"));
        assert_eq!(shutdown_request(libc::SIGUSR1), Some("halt"));
        assert_eq!(shutdown_request(libc::SIGCHLD), None);
    }
}
