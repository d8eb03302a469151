//! `run`: create, start and wait, exiting with the container's exit code.
//!
//! The init is a grandchild (stage 1 exits after forking it), so `run` makes itself a child
//! subreaper first: the init is re-parented to it and can be waited for. Signals sent to
//! `run` are forwarded to the init, as runc does. With process.terminal and no console
//! socket, the container's pty is proxied to the caller's terminal.

use std::os::fd::AsFd;

use super::create::create;
use super::error::{During, IoContext, Result};
use super::start::start_locked;
use super::wait::Waiter;
use super::{RunRequest, RuntimeContext};

pub fn run(rt: &RuntimeContext, id: &str, req: &RunRequest) -> Result<u8> {
    let waiter = if req.detach { None } else { Some(Waiter::prepare()?) };
    let mut created = create(rt, id, &req.create, !req.detach)?;
    let master = match created.console.take() {
        Some(sock) => Some(crate::fdpass::recv_fd(sock.as_fd()).doing(|| "receive the pty master")?.0),
        None => None,
    };
    if let Err(e) = start_locked(&created.dir, &mut created.state) {
        drop(created); // releases the lock that delete takes
        let _ = super::delete::delete(rt, id, true);
        return Err(e).during("start", id);
    }
    let pid = created.state.pid;
    drop(created);
    let Some(waiter) = waiter else { return Ok(0) };
    let code = waiter.wait(pid, master)?;
    if !req.keep {
        super::delete::delete(rt, id, true)?;
    }
    Ok(code)
}
