//! The seccomp filters of a VM container's VMM, per kind of thread. The vcpu and event-loop
//! filters are the vmm crate's ([`vmm::seccomp`]); the two kinds of thread hull adds are here:
//!
//! - the session thread: the conversation with the agent over the vsock's unix socket, the
//!   container's stdio, the signals it relays (a signalfd), `hull create`'s sync socket; it
//!   makes the exec-fifo thread, which starts under this filter (so openat is here too), and
//!   the OOM relay's processes, which keep it;
//! - the exec-fifo thread: opens the exec fifo for writing (that blocks until `hull start`),
//!   writes a byte, and ends;
//! - the preserved fds' relay (`crate::fd_relay::host`), with preserved fds only: accepts
//!   the guest relay's streams and a preserved listener's clients, reads and writes them.
//!
//! A call outside a thread's list kills the VMM (SIGSYS; the kernel logs the call number, see
//! [`vmm::seccomp::Mismatch`]). `HULL_VM_SECCOMP=log` lets such calls through and only logs
//! them: for finding one a list misses.

use seccompiler::BpfProgram;
use vmm::seccomp::{self as filters, FilterError, Mismatch, COMMON, SPAWN};

/// The environment variable that turns refusals into log lines.
pub const MODE_ENV: &str = "HULL_VM_SECCOMP";

/// What a call outside a list gets, from [`MODE_ENV`].
pub fn mismatch() -> Mismatch {
    match std::env::var(MODE_ENV).as_deref() {
        Ok("log") => Mismatch::Log,
        _ => Mismatch::KillProcess,
    }
}

/// The filters of every kind of thread, built before the jail.
pub struct Filters {
    pub vcpu: BpfProgram,
    pub event_loop: BpfProgram,
    pub session: BpfProgram,
    pub exec_fifo: BpfProgram,
    pub fd_relay: BpfProgram,
}

impl Filters {
    pub fn build(mismatch: Mismatch) -> Result<Filters, FilterError> {
        Ok(Filters {
            vcpu: filters::vcpu(mismatch)?,
            event_loop: filters::event_loop(mismatch)?,
            session: session(mismatch)?,
            exec_fifo: exec_fifo(mismatch)?,
            fd_relay: fd_relay(mismatch)?,
        })
    }
}

/// Serving unix streams: wait, accept, read, send and receive. The session's and the fd
/// relay's.
const STREAMS: &[i64] = &[
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_read,
    libc::SYS_accept4,
    libc::SYS_sendto,
    libc::SYS_recvfrom,
];

/// The session thread's own calls, beyond the common ones and [`STREAMS`].
const SESSION: &[i64] = &[
    // The exec-fifo thread's, which starts under this filter.
    libc::SYS_openat,
    // The OOM relay (`super::super::oom_relay`): the host cgroup's limit, read at offset 0,
    // and the relay's processes, reaped (they are forked with clone3, which SPAWN has, and
    // make only mmap, memory writes and exit_group, all in COMMON).
    libc::SYS_pread64,
    libc::SYS_wait4,
];

fn session(mismatch: Mismatch) -> Result<BpfProgram, FilterError> {
    let mut rules = filters::allow_all(&[COMMON, SPAWN, STREAMS, SESSION]);
    let error = |msg| FilterError::new("session", msg);
    filters::allow_spawn_args(&mut rules).map_err(error)?;
    // set_nonblocking on the vsock listener and stream; the terminal's size.
    filters::allow_with_arg(&mut rules, libc::SYS_ioctl, 1, &[libc::FIONBIO, libc::TIOCGWINSZ])
        .map_err(error)?;
    filters::compile("session", rules, mismatch)
}

fn exec_fifo(mismatch: Mismatch) -> Result<BpfProgram, FilterError> {
    // open and write the fifo; then wait on the session's pipe (poll, read) to close it.
    let own = [libc::SYS_openat, libc::SYS_poll, libc::SYS_ppoll, libc::SYS_read];
    filters::compile("exec fifo", filters::allow_all(&[COMMON, &own]), mismatch)
}

/// The relay makes no socket and opens no file: it accepts (the vsock's streams, a preserved
/// listener's clients), reads, writes, half-closes and closes what it was given.
fn fd_relay(mismatch: Mismatch) -> Result<BpfProgram, FilterError> {
    filters::compile("fd relay", filters::allow_all(&[COMMON, STREAMS, &[libc::SYS_shutdown]]), mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_thread_has_a_filter() {
        let f = Filters::build(Mismatch::KillProcess).unwrap();
        for (name, prog) in [
            ("vcpu", &f.vcpu),
            ("event loop", &f.event_loop),
            ("session", &f.session),
            ("fifo", &f.exec_fifo),
            ("fd relay", &f.fd_relay),
        ] {
            assert!(!prog.is_empty(), "{name}");
        }
    }

    #[test]
    fn the_exec_fifo_thread_opens_and_writes_but_makes_no_socket() {
        let filter = exec_fifo(Mismatch::Errno(libc::EPERM as u32)).unwrap();
        let (open, socket) = std::thread::spawn(move || {
            vmm::seccomp::apply_filter(&filter).unwrap();
            let open = std::fs::File::open("/").map(drop).map_err(|e| e.raw_os_error());
            // SAFETY: a plain system call on constant arguments.
            let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) };
            (open, (fd < 0).then(|| std::io::Error::last_os_error().raw_os_error()))
        })
        .join()
        .unwrap();
        assert_eq!(open, Ok(()));
        assert_eq!(socket, Some(Some(libc::EPERM)));
    }
}
