//! What subcommands print on stdout. A reader that stops early (`hull list | head -1`,
//! `hull state c1 | grep -q running`) is normal: the rest of the output is dropped quietly
//! and the command succeeds, as runc's does. `println!` would panic on the broken pipe.

use std::io::{ErrorKind, Write};

/// Writes `text` to stdout; a closed reader is not an error, any other failure is.
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != ErrorKind::BrokenPipe => Err(anyhow::Error::new(e).context("write to stdout")),
        _ => Ok(()),
    }
}

/// Writes `line` and a newline to stdout, as [`print`].
pub fn println(line: &str) -> anyhow::Result<()> {
    print(&format!("{line}\n"))
}
