//! What every lifecycle command is given besides its request: hull's own settings for this
//! run, built by the CLI from the global flags and the program's name. (Logging is set up
//! process-wide by the CLI before any command runs; the lifecycle only writes to it.)

use std::path::PathBuf;

use super::Backend;

#[derive(Debug, Clone)]
pub struct RuntimeContext {
    /// Directory holding the containers' state (`--root`).
    pub root: PathBuf,
    /// Rootless mode (`--rootless`, container/rootless.rs): a cgroup hull may not make is
    /// done without, not an error.
    pub rootless: bool,
    /// `--systemd-cgroup`: cgroups paths in systemd's slice:prefix:name form.
    pub systemd_cgroup: bool,
    /// `--backend`: the backend new containers get, above every other choice.
    pub backend_flag: Option<Backend>,
    /// The backend the program's name asks for (`hull-vm`), below the flag and the bundle's
    /// annotation.
    pub backend_of_program: Option<Backend>,
}
