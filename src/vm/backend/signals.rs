//! The VMM init's signals: it blocks every catchable one before any thread exists (so each
//! arrives through the session's signalfd and is relayed to the workload), and at the end it
//! dies of the signal that killed the workload, so that a shim or conmon waiting on the VMM
//! reads the same wait status as from a runc container ("killed by signal N").

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// Signals the VMM keeps for itself: those that cannot be caught, and those the kernel sends
/// a thread for its own fault (blocked, they would kill the process without a word).
const NOT_RELAYED: [Signal; 8] = [
    Signal::SIGKILL,
    Signal::SIGSTOP,
    Signal::SIGSEGV,
    Signal::SIGBUS,
    Signal::SIGFPE,
    Signal::SIGILL,
    Signal::SIGTRAP,
    Signal::SIGSYS,
];

/// Blocks every relayed signal in this (still single) thread, so every thread made after
/// inherits the mask, and returns the signalfd they arrive on. Real-time signals stay as they
/// are: the vcpu threads are kicked with SIGRTMIN.
pub fn block_relayed() -> nix::Result<SignalFd> {
    let mut set = SigSet::empty();
    for sig in Signal::iterator().filter(|s| !NOT_RELAYED.contains(s)) {
        set.add(sig);
    }
    set.thread_block()?;
    SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
}

/// Ends the VMM as if `signo` had killed it. No core dump (it would hold guest RAM). A
/// signal whose default action is not to terminate (a stop signal), or any signal when the
/// VMM is pid 1 of its pid namespace (the kernel drops what pid 1 sends itself with the
/// default action: [`super::pidns`]), ends it with 128 + N, which containerd's shim and
/// conmon report as they report death by N.
pub fn die_of(signo: i32) -> ! {
    let no_core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: setrlimit reads a valid local struct; signal() installs the default action;
    // raise() signals this thread, which the unblock below lets the signal reach.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        libc::signal(signo, libc::SIG_DFL);
    }
    if let Ok(sig) = Signal::try_from(signo) {
        let mut set = SigSet::empty();
        set.add(sig);
        let _ = set.thread_unblock();
    }
    // SAFETY: see above.
    unsafe { libc::raise(signo) };
    std::process::exit(128 + (signo & 0x7f))
}
