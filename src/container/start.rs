//! `start`: release the init blocked on the exec fifo (for every backend: the vm backend's
//! init is the VMM, which waits on the same fifo before it releases the workload).

use std::os::fd::AsFd;
use std::time::Duration;

use nix::fcntl::{open, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::stat::Mode;

use super::error::{During, Error, IoContext, Result};
use super::RuntimeContext;
use crate::hooks;
use crate::state::{ContainerDir, Phase, State, Status};

pub fn start(rt: &RuntimeContext, id: &str) -> Result<()> {
    let (dir, mut st) = super::open(rt, id).during("start", id)?;
    start_locked(&dir, &mut st).during("start", id)
}

/// Starts a container whose directory the caller holds locked.
pub fn start_locked(dir: &ContainerDir, st: &mut State) -> Result<()> {
    let refuse = |why: &str| Err(Error::WrongState(why.to_string()));
    match st.status() {
        Status::Created => {}
        Status::Stopped => return refuse("cannot start a container that has stopped"),
        Status::Running => return refuse("cannot start an already running container"),
        Status::Paused => return refuse("cannot start a paused container"),
        Status::Creating => return refuse("cannot start a container that is still being created"),
    }
    st.backend.before_start(st)?;
    // Non-blocking open: a reader needs no writer, and we never hang on a dead init.
    let fifo = open(&dir.fifo_path(), OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC, Mode::empty())
        .doing(|| "open exec fifo")?;
    // First the init's byte (it is going), then the end of the fifo: the init holds its write
    // end, close-on-exec, until the program replaces it (runc's start reads to the end too).
    let mut released = false;
    loop {
        let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
        let n = match poll(&mut fds, PollTimeout::from(100u16)) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).doing(|| "wait on exec fifo"),
        };
        if n > 0 {
            let mut buf = [0u8; 1];
            match nix::unistd::read(&fifo, &mut buf) {
                Ok(1) => released = true,
                // No writer left: before the byte, the init has not opened the fifo yet.
                Ok(_) if released => break,
                Ok(_) | Err(nix::errno::Errno::EAGAIN) => {}
                Err(e) => return Err(e).doing(|| "read exec fifo"),
            }
        }
        if !st.init_alive() {
            if released {
                break;
            }
            return refuse("container init exited before start");
        }
        if !released {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    st.phase = Phase::Started;
    dir.save(st)?;
    let _ = std::fs::remove_file(dir.fifo_path());
    // The runtime spec: a failing poststart hook is a warning, the container keeps running.
    let state = st.oci_as(Status::Running);
    hooks::run_in_warning(st.hooks(), hooks::Kind::Poststart, &state);
    Ok(())
}
