//! `delete`: remove a stopped container (or, with --force, stop it first).

use super::error::{During, Error, Result};
use super::RuntimeContext;
use crate::hooks;
use crate::state::{Status, Store, StoreError};

pub fn delete(rt: &RuntimeContext, id: &str, force: bool) -> Result<()> {
    let dir = match Store::existing(&rt.root).lock(id) {
        Ok(d) => d,
        // runc: deleting with --force what does not exist is not an error.
        Err(StoreError::NotFound(_)) if force => return Ok(()),
        Err(e) => return Err(e).during("delete", id),
    };
    let st = match dir.load() {
        Ok(st) => st,
        // A create that died before writing its state: nothing runs, remove what is there.
        Err(StoreError::Corrupt { .. }) => return dir.remove().during("delete", id),
        Err(e) => return Err(e).during("delete", id),
    };
    let status = st.status();
    crate::logging::debug(&format!(
        "delete {id}: {status}, init pid {}, cgroup {:?} (hull made from {:?})",
        st.pid, st.cgroup, st.cgroup_created_from
    ));
    match status {
        Status::Stopped => {}
        // A created container has not run anything yet: runc deletes it without --force.
        Status::Created => st.backend.stop(&st).during("delete", id)?,
        s @ (Status::Running | Status::Creating | Status::Paused) => {
            if !force {
                return Err(Error::WrongState(format!(
                    "cannot delete container that is not stopped: {s} (use --force)"
                )))
                .during("delete", id);
            }
            st.backend.stop(&st).during("delete", id)?;
        }
    }
    // The runtime spec: a failing poststop hook is a warning; delete goes on.
    let state = st.oci_as(Status::Stopped);
    hooks::run_in_warning(st.hooks(), hooks::Kind::Poststop, &state);
    st.backend.release(&st).during("delete", id)?;
    dir.remove().during("delete", id)
}
