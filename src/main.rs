//! hull: a low-level OCI container runtime, called the way runc is.

mod agent;
mod cgroups;
mod cli;
mod config;
mod container;
mod fdpass;
mod hooks;
mod logging;
mod native;
mod signal;
mod spec;
mod state;
mod vm;

use std::process::ExitCode;

fn main() -> ExitCode {
    // PID 1 of a vm-run guest, started by the kernel as /init: agent mode, which never returns.
    if agent::is_guest_init() {
        agent::main();
    }
    let args = cli::parse();
    logging::init(&args.global);
    match cli::dispatch(args) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let msg = format!("{err:#}");
            logging::error(&msg);
            ExitCode::FAILURE
        }
    }
}
