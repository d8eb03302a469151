//! The lifecycle both backends share: create, start, state, kill, delete, run, list.

mod create;
mod delete;
mod events;
mod exec;
mod kill;
mod list;
mod pause;
mod ps;
mod run;
mod start;
mod systemd;
mod tty;
mod update;
mod wait;

use anyhow::Context;

use crate::cli::GlobalOpts;
use crate::state::{ContainerDir, OciState, State, Store};

pub use create::create;
pub use delete::delete;
pub use events::events;
pub use exec::exec;
pub use kill::kill;
pub use list::list;
pub use pause::{pause, resume};
pub use ps::{pids as ps_pids, table as ps_table};
pub use run::run;
pub use start::start;
pub use update::update;

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
