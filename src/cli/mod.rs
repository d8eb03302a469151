//! Command-line parsing, shaped like runc's so containerd-shim-runc-v2, conmon and the OCI
//! validation tools can call hull unchanged. One file per subcommand; no container logic here.

mod create;
mod delete;
mod events;
mod exec;
mod features;
mod kill;
mod list;
mod output;
mod pause;
mod ps;
mod resume;
mod run;
mod spec;
mod start;
mod state;
mod update;
mod vm_run;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::container::{backend_of_program, Backend, CreateRequest, RootlessFlag, RuntimeContext};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const COMMIT: &str = match option_env!("HULL_COMMIT") {
    Some(c) => c,
    None => "unknown",
};

#[derive(Parser, Debug)]
#[command(name = "hull", about = "A low-level OCI container runtime", disable_version_flag = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    /// Print the version, commit and OCI runtime-spec version, then exit.
    #[arg(short = 'v', long = "version", global = true)]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct GlobalOpts {
    /// Directory holding the containers' state [default: /run/hull; rootless:
    /// $XDG_RUNTIME_DIR/hull].
    #[arg(long, global = true)]
    pub root: Option<PathBuf>,
    /// Also write log lines to this file.
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Format of the --log file.
    #[arg(long = "log-format", global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log debug lines too.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use systemd's cgroup path form (slice:prefix:name).
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// Rootless mode: true, false or auto (the default: rootless when not root, or in a user
    /// namespace). A rootless hull keeps its state under $XDG_RUNTIME_DIR/hull and runs a
    /// container without a cgroup where it may not make one. `spec --rootless` writes a spec
    /// for an ordinary user.
    #[arg(long, global = true, num_args = 0..=1, default_missing_value = "true", require_equals = true,
          value_name = "true|false|auto", value_parser = RootlessFlag::parse)]
    pub rootless: Option<RootlessFlag>,
    /// The backend of the containers `create` and `run` make: native or vm. Without it: the
    /// bundle's hull.backend annotation, then the program's name (hull-vm), then `backend`
    /// under [runtime] in /etc/hull/config.toml, then native. Other commands use the
    /// backend the container was created with.
    #[arg(long, global = true, value_name = "native|vm", value_parser = Backend::parse)]
    pub backend: Option<Backend>,
}

impl GlobalOpts {
    /// The lifecycle's view of the global flags, and of the program's name.
    pub fn runtime(&self) -> RuntimeContext {
        let rootless = RootlessFlag::resolve(self.rootless);
        RuntimeContext {
            root: self.root.clone().unwrap_or_else(|| crate::container::default_root(rootless)),
            rootless,
            systemd_cgroup: self.systemd_cgroup,
            backend_flag: self.backend,
            backend_of_program: std::env::args_os().next().and_then(|a| backend_of_program(&a)),
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a container from a bundle; its program waits for `start`.
    Create(create::Args),
    /// Run the program of a created container.
    Start(start::Args),
    /// Print the OCI state of a container as JSON.
    State(state::Args),
    /// Send a signal to the container's init (or all its processes).
    Kill(kill::Args),
    /// Remove a container and what hull made for it.
    Delete(delete::Args),
    /// Run a new process inside a running container.
    Exec(exec::Args),
    /// Create, start and wait: exits with the container's exit code.
    Run(run::Args),
    /// List the containers under --root.
    #[command(alias = "ls")]
    List(list::Args),
    /// Write a default config.json into a bundle.
    Spec(spec::Args),
    /// Print the runtime-spec features document: what this hull supports.
    Features(features::Args),
    /// Freeze every process of a running container.
    Pause(pause::Args),
    /// Thaw a paused container.
    Resume(resume::Args),
    /// Change the resource limits of a live container.
    Update(update::Args),
    /// Print the container's resource statistics, once (--stats) or as a stream with OOM events.
    Events(events::Args),
    /// List the container's processes.
    Ps(ps::Args),
    /// Boot a microVM and run one command in a shared directory (tests, debugging).
    VmRun(vm_run::Args),
}

pub fn parse() -> Cli {
    Cli::parse()
}

/// Runs the command and returns the process exit code.
pub fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    if cli.version {
        print_version();
        return Ok(0);
    }
    let g = cli.global;
    match cli.command {
        None => {
            use clap::CommandFactory;
            Cli::command().print_help()?;
            Ok(0)
        }
        Some(Command::Create(a)) => create::run(&g, a),
        Some(Command::Start(a)) => start::run(&g, a),
        Some(Command::State(a)) => state::run(&g, a),
        Some(Command::Kill(a)) => kill::run(&g, a),
        Some(Command::Delete(a)) => delete::run(&g, a),
        Some(Command::Run(a)) => run::run(&g, a),
        Some(Command::Exec(a)) => exec::run(&g, a),
        Some(Command::List(a)) => list::run(&g, a),
        Some(Command::Spec(a)) => spec::run(&g, a),
        Some(Command::Features(a)) => features::run(&g, a),
        Some(Command::Pause(a)) => pause::run(&g, a),
        Some(Command::Resume(a)) => resume::run(&g, a),
        Some(Command::Update(a)) => update::run(&g, a),
        Some(Command::Events(a)) => events::run(&g, a),
        Some(Command::Ps(a)) => ps::run(&g, a),
        Some(Command::VmRun(a)) => vm_run::run(&g, a),
    }
}

fn print_version() {
    // Nothing to report if even this fails.
    let _ = output::print(&format!(
        "hull version {VERSION}\ncommit: {COMMIT}\nspec: {}\n",
        crate::spec::OCI_VERSION
    ));
}

/// Flags shared by `create` and `run`.
#[derive(clap::Args, Debug, Clone)]
pub struct CreateOpts {
    /// Path to the bundle (the directory holding config.json).
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// Write the container init's pid to this file.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master when process.terminal is true.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Move the root with MS_MOVE and chroot instead of pivot_root (for ramfs roots).
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Accepted for compatibility: hull makes no session keyring for the container.
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass this many fds after stdio (3, 4, ...) into the container.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
}

impl CreateOpts {
    pub fn request(&self) -> CreateRequest {
        CreateRequest {
            bundle: self.bundle.clone(),
            pid_file: self.pid_file.clone(),
            console_socket: self.console_socket.clone(),
            no_pivot: self.no_pivot,
            preserve_fds: self.preserve_fds,
        }
    }
}

/// The container id argument, validated where it is used.
#[derive(clap::Args, Debug, Clone)]
pub struct IdArg {
    /// The container's id.
    pub id: String,
}
