//! The lifecycle both backends share: create, start, state, kill, delete, run, list.

mod create;
mod delete;
mod exec;
mod kill;
mod list;
mod run;
mod start;
mod systemd;
mod tty;
mod wait;

use anyhow::Context;

use crate::cli::GlobalOpts;
use crate::state::{ContainerDir, OciState, State, Store};

pub use create::create;
pub use delete::delete;
pub use exec::exec;
pub use kill::kill;
pub use list::list;
pub use run::run;
pub use start::start;

/// Locks and loads an existing container.
fn open(g: &GlobalOpts, id: &str) -> anyhow::Result<(ContainerDir, State)> {
    let dir = Store::existing(&g.root).lock(id)?;
    let st = dir.load()?;
    Ok((dir, st))
}

/// The OCI state of one container.
pub fn state(g: &GlobalOpts, id: &str) -> anyhow::Result<OciState> {
    let st = Store::existing(&g.root).read(id).with_context(|| format!("state {id}"))?;
    Ok(st.oci())
}
