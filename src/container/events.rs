//! `events`: the container's cgroup statistics in runc's JSON shape, once (`--stats`) or as
//! a stream of one line per interval with `{"type":"oom"}` lines when the memory controller
//! records an OOM, until the container stops.

use std::io::Write;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::error::{During, Error, IoContext, Result};
use super::RuntimeContext;
use crate::cgroups::stats::Stats;
use crate::state::{Status, Store};

/// One line of output, as runc's types.Event encodes it.
#[derive(Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    typ: &'a str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Stats>,
}

/// How often the stream looks for OOMs and for the container's end.
const POLL: Duration = Duration::from_millis(100);

pub fn events(rt: &RuntimeContext, id: &str, stats_once: bool, interval: Duration) -> Result<()> {
    events_inner(rt, id, stats_once, interval).during("events", id)
}

fn events_inner(rt: &RuntimeContext, id: &str, stats_once: bool, interval: Duration) -> Result<()> {
    let store = Store::existing(&rt.root);
    let st = store.read(id)?;
    if st.status() == Status::Stopped {
        return Err(Error::WrongState("container not running".into()));
    }
    let cg = st.backend.monitor(&st)?;
    if stats_once {
        emit(&Event { typ: "stats", id, data: Some(cg.stats()) })?;
        return Ok(());
    }
    if interval.is_zero() {
        return Err(Error::Invalid("--interval must be more than zero".into()));
    }
    let mut last_oom = cg.oom_counters().unwrap_or_default();
    let mut next_stats = Instant::now();
    loop {
        // The container's end is noted before the last OOM check, so an OOM that killed it
        // is still reported.
        let stopped = match store.read(id) {
            Ok(s) => s.status() == Status::Stopped,
            Err(_) => true,
        };
        if let Some(now) = cg.oom_counters() {
            if now.new_since(&last_oom) {
                emit(&Event { typ: "oom", id, data: None })?;
            }
            last_oom = now;
        }
        if stopped {
            return Ok(());
        }
        if Instant::now() >= next_stats {
            emit(&Event { typ: "stats", id, data: Some(cg.stats()) })?;
            next_stats = Instant::now() + interval;
        }
        std::thread::sleep(POLL.min(interval));
    }
}

/// One JSON line on stdout, in one write with its newline (a stats line is longer than
/// stdout's buffer: written in pieces, a reader tailing the file could see half a line); a
/// reader that went away ends the stream without an error.
fn emit(e: &Event) -> Result<()> {
    let mut line = serde_json::to_string(e).map_err(std::io::Error::from).doing(|| "encode event")?;
    line.push('\n');
    let mut out = std::io::stdout().lock();
    match out.write_all(line.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(err) => Err(err).doing(|| "write event"),
    }
}
