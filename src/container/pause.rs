//! `pause` / `resume`: freeze and thaw every process of the container. `state` derives
//! "paused" from the freezer.

use super::error::{During, Error, Result};
use super::RuntimeContext;
use crate::state::Status;

pub fn pause(rt: &RuntimeContext, id: &str) -> Result<()> {
    let (_dir, st) = super::open(rt, id).during("pause", id)?;
    if st.status() != Status::Running {
        return Err(Error::WrongState("container not running".into())).during("pause", id);
    }
    st.backend.freeze(&st, true).during("pause", id)
}

pub fn resume(rt: &RuntimeContext, id: &str) -> Result<()> {
    let (_dir, st) = super::open(rt, id).during("resume", id)?;
    if st.status() != Status::Paused {
        return Err(Error::WrongState("container not paused".into())).during("resume", id);
    }
    st.backend.freeze(&st, false).during("resume", id)
}
