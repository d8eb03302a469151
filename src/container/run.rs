//! `run`: create, start and wait, exiting with the container's exit code.
//!
//! The init is a grandchild (stage 1 exits after forking it), so `run` makes itself a child
//! subreaper first: the init is re-parented to it and can be waited for. Signals sent to
//! `run` are forwarded to the init, as runc does.

use anyhow::Context;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::create::create;
use super::start::start_locked;
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
    let mut created = create(g, id, opts)?;
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
    let code = wait_forwarding(pid, &set)?;
    if !keep {
        super::delete::delete(g, id, true)?;
    }
    Ok(code)
}

/// Waits for `pid` to exit, forwarding signals to it; reaps any other orphan on the way.
fn wait_forwarding(pid: i32, set: &SigSet) -> anyhow::Result<u8> {
    loop {
        // Reap first: the init may have exited before we got here.
        loop {
            match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, code)) if p.as_raw() == pid => return Ok(code as u8),
                Ok(WaitStatus::Signaled(p, sig, _)) if p.as_raw() == pid => {
                    return Ok(128u8.wrapping_add(sig as i32 as u8))
                }
                Ok(WaitStatus::StillAlive) => break,
                Ok(_) => continue,
                Err(nix::errno::Errno::ECHILD) => {
                    anyhow::bail!("container init {pid} is not a child of hull run")
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e).context("wait for container"),
            }
        }
        let sig = set.wait().context("wait for signals")?;
        if sig != Signal::SIGCHLD {
            let _ = kill(Pid::from_raw(pid), sig);
        }
    }
}
