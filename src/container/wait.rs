//! Waiting for a container process in the foreground (`run`, `exec`): hull is its subreaper,
//! forwards the signals it gets, returns its exit code (128+N for signal N), and with a pty
//! copies the terminal between the caller and the process.

use std::os::fd::{AsFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::error::{Error, IoContext, Result};
use super::tty;

const FORWARDED: [Signal; 9] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
    Signal::SIGPWR,
];

/// Set up before the process is made, so no signal or exit is missed.
pub struct Waiter {
    set: SigSet,
}

impl Waiter {
    /// Becomes a child subreaper (the process is a grandchild and gets re-parented to us)
    /// and blocks the forwarded signals; the new process unblocks them before exec.
    pub fn prepare() -> Result<Waiter> {
        // Without it the process would be re-parented to init and never reaped here.
        nix::sys::prctl::set_child_subreaper(true).doing(|| "become a child subreaper")?;
        let mut set = SigSet::empty();
        set.add(Signal::SIGCHLD);
        for s in FORWARDED {
            set.add(s);
        }
        set.thread_block().doing(|| "block signals")?;
        Ok(Waiter { set })
    }

    /// Waits for `pid` to exit, forwarding signals to it and, with a pty, copying its terminal.
    pub fn wait(&self, pid: i32, master: Option<OwnedFd>) -> Result<u8> {
        wait_forwarding(pid, &self.set, master)
    }
}

/// Reaps children; returns the init's exit code once it has exited.
fn reap(pid: i32) -> Result<Option<u8>> {
    loop {
        match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, code)) if p.as_raw() == pid => return Ok(Some(code as u8)),
            Ok(WaitStatus::Signaled(p, sig, _)) if p.as_raw() == pid => {
                return Ok(Some(128u8.wrapping_add(sig as i32 as u8)))
            }
            Ok(WaitStatus::StillAlive) => return Ok(None),
            Ok(_) => continue,
            Err(nix::errno::Errno::ECHILD) => {
                return Err(Error::WrongState(format!("container init {pid} is not a child of hull run")))
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).doing(|| "wait for container"),
        }
    }
}

/// Waits for `pid` to exit, forwarding signals to it and, with a pty, copying its terminal.
fn wait_forwarding(pid: i32, set: &SigSet, master: Option<OwnedFd>) -> Result<u8> {
    let sfd = SignalFd::with_flags(set, SfdFlags::SFD_CLOEXEC).doing(|| "signalfd")?;
    let _raw = master.as_ref().map(|_| tty::RawMode::enter());
    if let Some(m) = &master {
        tty::copy_size(m);
    }
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut stdin_open = master.is_some();
    let mut master_open = master.is_some();
    loop {
        if let Some(code) = reap(pid)? {
            // Drain what the program wrote last.
            if let (Some(m), true) = (&master, master_open) {
                let mut fds = [PollFd::new(m.as_fd(), PollFlags::POLLIN)];
                while poll(&mut fds, PollTimeout::ZERO).unwrap_or(0) > 0
                    && tty::pump(m.as_fd(), stdout.as_fd())
                {}
            }
            return Ok(code);
        }
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if let Some(m) = &master {
            if master_open {
                fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
            }
            if stdin_open {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).doing(|| "poll"),
        }
        let ready: Vec<bool> = fds.iter().map(|f| f.revents().is_some_and(|r| !r.is_empty())).collect();
        if ready[0] {
            while let Ok(Some(info)) = sfd.read_signal() {
                let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else { continue };
                match sig {
                    Signal::SIGCHLD => {}
                    Signal::SIGWINCH if master.is_some() => {
                        if let Some(m) = &master {
                            tty::copy_size(m);
                        }
                    }
                    s => {
                        let _ = kill(Pid::from_raw(pid), s);
                    }
                }
                let mut probe = [PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
                if poll(&mut probe, PollTimeout::ZERO).unwrap_or(0) == 0 {
                    break;
                }
            }
        }
        if let Some(m) = &master {
            let mut i = 1;
            if master_open {
                if ready.get(i).copied().unwrap_or(false) && !tty::pump(m.as_fd(), stdout.as_fd()) {
                    master_open = false;
                }
                i += 1;
            }
            if stdin_open && ready.get(i).copied().unwrap_or(false) && !tty::pump(stdin.as_fd(), m.as_fd()) {
                stdin_open = false;
            }
        }
    }
}
