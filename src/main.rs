//! hull: a low-level OCI container runtime, called the way runc is.

mod cgroups;
mod cli;
mod container;
mod fdpass;
mod hooks;
mod logging;
mod native;
mod signal;
mod spec;
mod state;

use std::process::ExitCode;

fn main() -> ExitCode {
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
