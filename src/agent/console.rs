//! Where the agent's own messages go: the guest console and the kernel log.
//!
//! The console is only seen with `vm-run --serial` (the serial port is off otherwise), so the
//! host also gets every fatal error over vsock when the connection is up. Writes open the
//! device each time: the agent runs before and after /dev is mounted, and keeps no fd that
//! the command could inherit.

use std::fs::OpenOptions;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static DEBUG: AtomicBool = AtomicBool::new(false);

pub fn set_debug(on: bool) {
    DEBUG.store(on, Ordering::Relaxed);
}

/// A progress line, shown only when the host asked for debug output.
pub fn debug(msg: &str) {
    if DEBUG.load(Ordering::Relaxed) {
        // Level 5 (notice): printed on the console unless the kernel runs with `quiet` (vm-run
        // passes it unless --serial).
        let _ = write_kmsg(5, &format!("hull-agent: {msg}"));
    }
}

/// A problem the agent works around.
pub fn warn(msg: &str) {
    print_line(4, &format!("hull-agent: warning: {msg}"));
}

/// The error that ends the agent: one clear line on the console, through the kernel log (level
/// 3 is printed even with `quiet`) so that it is also in the log, and written straight to the
/// console when the log cannot be opened (before /dev is mounted).
pub fn fatal(msg: &str) {
    print_line(3, &format!("hull-agent: error: {msg}"));
}

fn print_line(level: u8, line: &str) {
    if !write_kmsg(level, line) {
        write_console(line);
    }
}

fn write_console(line: &str) {
    if let Ok(mut f) = OpenOptions::new().write(true).open("/dev/console") {
        let _ = f.write_all(format!("{line}\n").as_bytes());
    }
}

/// /dev/kmsg takes one record per write, `<level>` first. False when it could not be written.
fn write_kmsg(level: u8, line: &str) -> bool {
    match OpenOptions::new().write(true).open("/dev/kmsg") {
        Ok(mut f) => f.write_all(format!("<{level}>{line}\n").as_bytes()).is_ok(),
        Err(_) => false,
    }
}
