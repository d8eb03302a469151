//! `pause` / `resume`: freeze and thaw every process of the container. `state` derives
//! "paused" from the freezer, so a paused container that was never started is "created"
//! again once resumed (as in runc), and `start` refuses it while it is paused.

use super::error::{During, Error, Result};
use super::RuntimeContext;
use crate::state::Status;

pub fn pause(rt: &RuntimeContext, id: &str) -> Result<()> {
    let (_dir, st) = super::open(rt, id).during("pause", id)?;
    // runc pauses a created container too (its init, blocked on the exec fifo, freezes).
    if !matches!(st.status(), Status::Running | Status::Created) {
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
