//! `run`: create, start and wait, exiting with the container's exit code.
//!
//! The init is a grandchild (stage 1 exits after forking it), so `run` makes itself a child
//! subreaper first: the init is re-parented to it and can be waited for. Signals sent to
//! `run` are forwarded to the init, as runc does. With process.terminal and no console
//! socket, the container's pty is proxied to the caller's terminal.

use std::os::fd::{AsFd, OwnedFd};

use anyhow::Context;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::create::create;
use super::start::start_locked;
use super::tty;
use crate::cli::{CreateOpts, GlobalOpts};

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

pub fn run(g: &GlobalOpts, id: &str, opts: &CreateOpts, detach: bool, keep: bool) -> anyhow::Result<u8> {
    if !detach {
        // SAFETY: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    }
    // Block the signals we forward (and SIGCHLD) so none is lost between start and wait; the
    // init unblocks them before exec.
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    for s in FORWARDED {
        set.add(s);
    }
    if !detach {
        set.thread_block().context("block signals")?;
    }
    let mut created = create(g, id, opts, !detach)?;
    let master = match created.console.take() {
        Some(sock) => Some(crate::fdpass::recv_fd(sock.as_fd()).context("receive the pty master")?.0),
        None => None,
    };
    if let Err(e) = start_locked(&created.dir, &mut created.state) {
        drop(created); // releases the lock that delete takes
        let _ = super::delete::delete(g, id, true);
        return Err(e).with_context(|| format!("start {id}"));
    }
    let pid = created.state.pid;
    drop(created);
    if detach {
        return Ok(0);
    }
    let code = wait_forwarding(pid, &set, master)?;
    if !keep {
        super::delete::delete(g, id, true)?;
    }
    Ok(code)
}

/// Reaps children; returns the init's exit code once it has exited.
fn reap(pid: i32) -> anyhow::Result<Option<u8>> {
    loop {
        match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, code)) if p.as_raw() == pid => return Ok(Some(code as u8)),
            Ok(WaitStatus::Signaled(p, sig, _)) if p.as_raw() == pid => {
                return Ok(Some(128u8.wrapping_add(sig as i32 as u8)))
            }
            Ok(WaitStatus::StillAlive) => return Ok(None),
            Ok(_) => continue,
            Err(nix::errno::Errno::ECHILD) => anyhow::bail!("container init {pid} is not a child of hull run"),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).context("wait for container"),
        }
    }
}

/// Waits for `pid` to exit, forwarding signals to it and, with a pty, copying its terminal.
fn wait_forwarding(pid: i32, set: &SigSet, master: Option<OwnedFd>) -> anyhow::Result<u8> {
    let sfd = SignalFd::with_flags(set, SfdFlags::SFD_CLOEXEC).context("signalfd")?;
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
                while poll(&mut fds, PollTimeout::ZERO).unwrap_or(0) > 0 && tty::pump(m.as_fd(), stdout.as_fd()) {}
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
            Err(e) => return Err(e).context("poll"),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
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
