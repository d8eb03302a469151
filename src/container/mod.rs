//! The lifecycle both backends share: create, start, state, kill, delete, run, exec, list,
//! pause, resume, update, events, ps. It drives a [`Backend`] (see backend.rs) and knows
//! nothing of either: no host pids, /proc or cgroup files here. The CLI calls it with a
//! [`RuntimeContext`] and plain request structs; errors are [`Error`]s.

pub mod backend;
mod choose;
mod context;
mod create;
mod delete;
mod error;
mod events;
mod exec;
mod kill;
mod list;
mod pause;
mod ps;
mod request;
mod rootless;
mod run;
mod start;
mod systemd;
mod tty;
mod update;
mod wait;

use crate::state::{ContainerDir, OciState, State, Store};

pub use backend::Backend;
pub use choose::backend_of_program;
pub use context::RuntimeContext;
pub use create::create;
pub use delete::delete;
pub use error::{Chain, Error, Result};
pub use events::events;
pub use exec::exec;
pub use kill::kill;
pub use list::list;
pub use pause::{pause, resume};
pub use ps::{pids as ps_pids, table as ps_table};
pub use request::{CreateRequest, ExecRequest, RunRequest, UpdateRequest};
pub use rootless::{default_root, RootlessFlag};
pub use run::run;
pub use start::start;
pub use update::update;

use error::During;

/// Locks and loads an existing container.
fn open(rt: &RuntimeContext, id: &str) -> Result<(ContainerDir, State)> {
    let dir = Store::existing(&rt.root).lock(id)?;
    let st = dir.load()?;
    Ok((dir, st))
}

/// The OCI state of one container.
pub fn state(rt: &RuntimeContext, id: &str) -> Result<OciState> {
    let st = Store::existing(&rt.root).read(id).during("state", id)?;
    Ok(st.oci())
}
