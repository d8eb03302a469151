//! hull: a low-level OCI container runtime, called the way runc is.

use std::process::ExitCode;

use hull::{agent, cli, logging};

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
