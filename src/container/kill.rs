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
    st.backend.signal(&st, sig, all).during("kill", id)
}
