//! Where errors and debug lines go: stderr always, and `--log` in runc's text or JSON form.
//!
//! containerd and CRI-O read the last `"level":"error"` line of the JSON log and show its `msg`
//! to the user, so every error that ends a command is written there exactly once.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::cli::{GlobalOpts, LogFormat};

struct Sink {
    file: Option<File>,
    json: bool,
    debug: bool,
}

static SINK: Mutex<Sink> = Mutex::new(Sink { file: None, json: false, debug: false });

/// Opens `--log` (append) and remembers the format; a log that cannot be opened is reported
/// on stderr and otherwise ignored, like runc does.
pub fn init(opts: &GlobalOpts) {
    let file = opts.log.as_ref().and_then(|p| match OpenOptions::new().create(true).append(true).open(p) {
        Ok(f) => Some(f),
        Err(e) => {
            eprintln!("hull: warning: cannot open log file {}: {e}", p.display());
            None
        }
    });
    if let Ok(mut s) = SINK.lock() {
        s.file = file;
        s.json = matches!(opts.log_format, LogFormat::Json);
        s.debug = opts.debug;
    }
    // Fails only when a logger is already set, which is then the one to keep.
    let _ = log::set_logger(&FACADE);
    log::set_max_level(if opts.debug { log::LevelFilter::Debug } else { log::LevelFilter::Warn });
}

/// Routes the `log` facade (the vmm crate, fuse-backend-rs) to hull's own log: warnings and
/// errors always, the rest with --debug.
struct Facade;

impl log::Log for Facade {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Warn || SINK.lock().map(|s| s.debug).unwrap_or(false)
    }

    fn log(&self, r: &log::Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        // The crate is enough to say where it came from ("vmm: virtio-fs ...").
        let from = r.target().split("::").next().unwrap_or("");
        let msg = format!("{from}: {}", r.args());
        match r.level() {
            log::Level::Error => error(&msg),
            log::Level::Warn => warn(&msg),
            _ => debug(&msg),
        }
    }

    fn flush(&self) {}
}

static FACADE: Facade = Facade;

/// The log file's fd, which forked setup processes keep (they log with --debug too).
pub fn log_fd() -> Option<i32> {
    use std::os::fd::AsRawFd;
    SINK.lock().ok().and_then(|s| s.file.as_ref().map(|f| f.as_raw_fd()))
}

/// The final error of a command: stderr and the log. The word "error" is on the stderr line
/// too, as runc's `level=error` is: tools that scan a runtime's stderr look for it.
pub fn error(msg: &str) {
    eprintln!("hull: error: {msg}");
    write_log("error", msg);
}

/// A problem that does not stop the command (a failed poststart hook): stderr and the log.
pub fn warn(msg: &str) {
    eprintln!("hull: warning: {msg}");
    write_log("warning", msg);
}

/// A line that only `--debug` shows.
pub fn debug(msg: &str) {
    let enabled = SINK.lock().map(|s| s.debug).unwrap_or(false);
    if enabled {
        eprintln!("hull: debug: {msg}");
        write_log("debug", msg);
    }
}

fn write_log(level: &str, msg: &str) {
    let Ok(mut s) = SINK.lock() else { return };
    let json = s.json;
    let Some(f) = s.file.as_mut() else { return };
    let time = rfc3339_now();
    let line = if json {
        let v = serde_json::json!({ "level": level, "msg": msg, "time": time });
        format!("{v}\n")
    } else {
        format!("time=\"{time}\" level={level} msg=\"{}\"\n", msg.replace('"', "\\\""))
    };
    let _ = f.write_all(line.as_bytes());
}

/// UTC time as RFC 3339 with nanoseconds, the format runc's logrus writes.
pub fn rfc3339_now() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    rfc3339(now.as_secs() as i64, now.subsec_nanos())
}

pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm), valid for the proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{nanos:09}Z")
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_known_instants() {
        assert_eq!(super::rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(super::rfc3339(1_700_000_000, 5), "2023-11-14T22:13:20.000000005Z");
        assert_eq!(super::rfc3339(951_782_400, 0), "2000-02-29T00:00:00.000000000Z");
    }
}
