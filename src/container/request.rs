//! What the CLI asks of the lifecycle, in plain types (no clap): one struct per command
//! that takes more than an id.

use std::path::PathBuf;

/// `create`, and the creating half of `run`.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    /// The bundle directory (the one holding config.json).
    pub bundle: PathBuf,
    /// Where to write the init's pid, last.
    pub pid_file: Option<PathBuf>,
    /// Unix socket that gets the pty master when process.terminal is true.
    pub console_socket: Option<PathBuf>,
    /// Move the root with MS_MOVE and chroot instead of pivot_root.
    pub no_pivot: bool,
    /// Fds after stdio (3, 4, ...) passed into the container.
    pub preserve_fds: u32,
}

/// `run`: create, start and (unless detached) wait.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    pub create: CreateRequest,
    /// Return once the container runs instead of waiting for it.
    pub detach: bool,
    /// Keep the container's state after it exits.
    pub keep: bool,
}

/// `exec`: a process from a Process JSON, or the container's own with runc's flags applied.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    /// A runtime-spec Process JSON; "-" is stdin.
    pub process: Option<PathBuf>,
    pub tty: bool,
    pub console_socket: Option<PathBuf>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub cwd: Option<PathBuf>,
    /// KEY=VALUE, replacing the container's value of KEY.
    pub env: Vec<String>,
    /// uid[:gid] or name[:group].
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    /// CAP_... names added to the bounding, effective and permitted sets.
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub apparmor: Option<String>,
    pub process_label: Option<String>,
    pub preserve_fds: u32,
    pub ignore_paused: bool,
    /// Sub-cgroups of the container's ("path" or "controller:path").
    pub sub_cgroups: Vec<String>,
    /// The command and its arguments (without --process).
    pub command: Vec<String>,
}

/// `update`: a LinuxResources JSON and runc's flags (flags win). Sizes are bytes; -1 means
/// unlimited.
#[derive(Debug, Clone, Default)]
pub struct UpdateRequest {
    /// A LinuxResources JSON file; "-" is stdin.
    pub resources: Option<PathBuf>,
    pub blkio_weight: Option<u16>,
    pub cpu_period: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_share: Option<u64>,
    pub cpu_rt_period: Option<u64>,
    pub cpu_rt_runtime: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    /// Deprecated and ignored, with a warning.
    pub kernel_memory: Option<String>,
    pub kernel_memory_tcp: Option<i64>,
    pub memory: Option<i64>,
    pub memory_reservation: Option<i64>,
    pub memory_swap: Option<i64>,
    pub pids_limit: Option<i64>,
}
