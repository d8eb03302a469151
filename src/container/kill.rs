//! `kill`: signal the init, or every process of the container.

use nix::sys::signal::Signal;

use super::error::{During, Error, Result};
use super::RuntimeContext;
use crate::state::{Status, Store};

pub fn kill(rt: &RuntimeContext, id: &str, sig: Signal, all: bool) -> Result<()> {
    let st = Store::existing(&rt.root).read(id).during("kill", id)?;
    match st.status() {
        Status::Created | Status::Running | Status::Paused => {}
        _ => return Err(Error::WrongState("container not running".into())).during("kill", id),
    }
    match st.backend.signal(&st, sig, all) {
        // kill reads the state without the lock: the init may have died since (a delete
        // --force at the same time, or it exited). That is "container not running", the words
        // containerd's kill path looks for, not the kernel's ESRCH.
        Err(_) if !st.init_alive() => {
            Err(Error::WrongState("container not running".into())).during("kill", id)
        }
        r => r.during("kill", id),
    }
}
