//! The agent protocol: what `hull vm-run` (the host) and hull's agent mode (PID 1 in the guest)
//! say to each other over one vsock stream.
//!
//! A frame is `[u8 kind][u32 little-endian payload length][payload]`. Control frames carry JSON
//! (small, and easy to extend with optional fields); stdio frames carry raw bytes; a signal is
//! an i32. The payload length is bounded by [`MAX_PAYLOAD`] so a corrupt or hostile peer cannot
//! make the other side allocate without limit, and an unknown kind is an error rather than
//! something skipped: both ends are the same hull binary, so a mismatch is a bug.
//!
//! The conversation:
//!
//! ```text
//! agent -> host   Hello {version, uptime_ms}                 (right after connecting)
//! host  -> agent  Run {args, env, cwd}
//! agent -> host   Started {pid}                              (a VM container: its program runs)
//! host  -> agent  Stdin bytes ... StdinEof, Signal n         (any time while it runs)
//! host  -> agent  Resize {rows, cols}                        (with a terminal)
//! agent -> host   Stdout bytes, Stderr bytes                 (any time while it runs)
//! agent -> host   Oom kills                                  (the guest OOM-killed one of its processes)
//! agent -> host   Exit {code, signal}                        (once, after the output)
//! host  -> agent  Ack                                        (then the agent powers off)
//! agent -> host   Error {message}                            (instead, when the agent fails)
//! ```
//!
//! A VM container's `exec` opens one more stream per process, from the host to the agent's
//! exec port; on it the agent answers the Run with `Started {pid}` once the process runs (or
//! with `Error` when it cannot be started), and the rest is as above. Instead of a Run, the first
//! frame on such a stream can ask for one thing and get one answer: `Signal n` (`kill --all`:
//! answered with an Exit), `Update {resources}` (`update`: the container's cgroup in the guest;
//! Exit or Error), `QueryStats` (`events`: answered with `GuestStats {stats, oom}`) or
//! `Network {nics, routes}` (`start`: interfaces the container's network namespace gained
//! after `create`, for the spare NICs; Exit or Error).

use std::io::{self, Write};

use serde::{Deserialize, Serialize};

/// The largest payload either side sends or accepts.
pub const MAX_PAYLOAD: usize = 1 << 20;
/// How much stdio one frame carries: well under [`MAX_PAYLOAD`], one pipe buffer's worth.
pub const STDIO_CHUNK: usize = 64 * 1024;
/// `[kind][u32 length]`.
pub const HEADER_LEN: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("frame of {len} bytes is over the {max}-byte limit")]
    Oversize { len: usize, max: usize },
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    #[error("the stream ended inside a frame ({have} of {need} bytes)")]
    Truncated { have: usize, need: usize },
    #[error("bad {kind} frame: {msg}")]
    BadPayload { kind: &'static str, msg: String },
}

pub type Result<T> = std::result::Result<T, ProtocolError>;

/// The agent's greeting: sent as soon as it has connected to the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// hull's version in the guest (the same binary as the host's).
    pub version: String,
    /// The guest's CLOCK_BOOTTIME when the agent was ready, in milliseconds.
    pub uptime_ms: u64,
}

/// What to run in the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRequest {
    pub args: Vec<String>,
    /// `NAME=VALUE` entries: the command's whole environment.
    pub env: Vec<String>,
    /// Absolute, inside the shared root.
    pub cwd: String,
    /// Who the command runs as (a VM container's process.user); None: root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<GuestUser>,
    /// Run it on a pty in the guest (process.terminal): its stdout carries the terminal's
    /// output, stdin its input, and stderr nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub terminal: bool,
    /// A VM container's exec: the whole OCI process (capabilities, rlimits, no_new_privs...),
    /// which the agent runs through `native::exec`; the fields above say the same in brief.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<serde_json::Value>,
    /// `exec --cgroup`: sub-cgroups of the container's cgroup in the guest ("path", or
    /// "controller:path"), made there when missing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sub_cgroups: Vec<String>,
    /// `exec --preserve-fds`: the exec'd process gets a descriptor of each one's kind at its
    /// number; the agent answers with the port of the relay that serves them
    /// ([`Started::relay_port`], [`crate::fd_relay`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preserved: Vec<crate::fd_relay::Preserved>,
}

/// A terminal's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSize {
    pub rows: u16,
    pub cols: u16,
}

/// An exec'd process runs in the guest (its guest pid, for the record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    pub pid: i32,
    /// An exec with preserved fds: the guest vsock port on which its relay takes the host's
    /// streams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_port: Option<u32>,
}

/// The ids a command runs with in the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestUser {
    pub uid: u32,
    pub gid: u32,
    #[serde(default)]
    pub additional_gids: Vec<u32>,
}

/// How the command ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitReport {
    /// The exit code when it exited, else 128 + the signal that killed it (as shells report).
    pub code: i32,
    /// The signal that killed it, if one did.
    #[serde(default)]
    pub signal: Option<i32>,
    /// Set when something in the guest asked PID 1 to power off, reboot or halt while the
    /// command ran (busybox `poweroff` signals PID 1): "poweroff", "reboot" or "halt".
    #[serde(default)]
    pub shutdown: Option<String>,
}

/// The agent could not do its job (a mount failed, the command could not be set up).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReport {
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Hello(Hello),
    Run(RunRequest),
    Stdin(Vec<u8>),
    StdinEof,
    Signal(i32),
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Exit(ExitReport),
    Ack,
    Error(ErrorReport),
    Resize(WindowSize),
    Started(Started),
    /// `update`: the OCI `linux.resources` for the container's cgroup in the guest.
    Update(serde_json::Value),
    /// `events`: asks for the statistics of the container's cgroup in the guest.
    QueryStats,
    /// The answer to QueryStats: a [`GuestStats`] as JSON (kept as a value so that frames
    /// stay comparable; [`GuestStats::from_value`] reads it).
    GuestStats(serde_json::Value),
    /// agent -> host, on a VM container's main stream, any time while the workload runs: the
    /// OOM killer of the guest killed a process of the container; the payload is the guest
    /// cgroup's oom_kill count now (the host relays it: `vm::backend::oom_relay`).
    Oom(u64),
    /// host -> agent on the exec port, at `start`: a [`super::network::GuestNetwork`] as JSON
    /// whose NICs are the spare ones taking the interfaces that came after `create`.
    Network(serde_json::Value),
}

/// What the agent reports of the container's cgroup in the guest.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct GuestStats {
    pub stats: crate::cgroups::stats::Stats,
    /// None without a memory controller.
    #[serde(default)]
    pub oom: Option<crate::cgroups::stats::OomCounters>,
}

impl GuestStats {
    pub fn from_value(v: serde_json::Value) -> std::result::Result<GuestStats, String> {
        serde_json::from_value(v).map_err(|e| format!("bad GuestStats from the guest: {e}"))
    }
}

const HELLO: u8 = 1;
const RUN: u8 = 2;
const STDIN: u8 = 3;
const STDIN_EOF: u8 = 4;
const SIGNAL: u8 = 5;
const STDOUT: u8 = 6;
const STDERR: u8 = 7;
const EXIT: u8 = 8;
const ACK: u8 = 9;
const ERROR: u8 = 10;
const RESIZE: u8 = 11;
const STARTED: u8 = 12;
const UPDATE: u8 = 13;
const QUERY_STATS: u8 = 14;
const GUEST_STATS: u8 = 15;
const OOM: u8 = 16;
const NETWORK: u8 = 17;

fn kind_name(kind: u8) -> &'static str {
    match kind {
        HELLO => "Hello",
        RUN => "Run",
        STDIN => "Stdin",
        STDIN_EOF => "StdinEof",
        SIGNAL => "Signal",
        STDOUT => "Stdout",
        STDERR => "Stderr",
        EXIT => "Exit",
        ACK => "Ack",
        ERROR => "Error",
        RESIZE => "Resize",
        STARTED => "Started",
        UPDATE => "Update",
        QUERY_STATS => "QueryStats",
        GUEST_STATS => "GuestStats",
        OOM => "Oom",
        NETWORK => "Network",
        _ => "unknown",
    }
}

impl Frame {
    fn kind(&self) -> u8 {
        match self {
            Frame::Hello(_) => HELLO,
            Frame::Run(_) => RUN,
            Frame::Stdin(_) => STDIN,
            Frame::StdinEof => STDIN_EOF,
            Frame::Signal(_) => SIGNAL,
            Frame::Stdout(_) => STDOUT,
            Frame::Stderr(_) => STDERR,
            Frame::Exit(_) => EXIT,
            Frame::Ack => ACK,
            Frame::Error(_) => ERROR,
            Frame::Resize(_) => RESIZE,
            Frame::Started(_) => STARTED,
            Frame::Update(_) => UPDATE,
            Frame::QueryStats => QUERY_STATS,
            Frame::GuestStats(_) => GUEST_STATS,
            Frame::Oom(_) => OOM,
            Frame::Network(_) => NETWORK,
        }
    }

    /// The frame as bytes on the wire.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let json = |v: serde_json::Result<Vec<u8>>| {
            v.map_err(|e| ProtocolError::BadPayload { kind: kind_name(self.kind()), msg: e.to_string() })
        };
        let payload: Vec<u8> = match self {
            Frame::Hello(h) => json(serde_json::to_vec(h))?,
            Frame::Run(r) => json(serde_json::to_vec(r))?,
            Frame::Exit(e) => json(serde_json::to_vec(e))?,
            Frame::Error(e) => json(serde_json::to_vec(e))?,
            Frame::Resize(w) => json(serde_json::to_vec(w))?,
            Frame::Started(s) => json(serde_json::to_vec(s))?,
            Frame::Update(v) | Frame::GuestStats(v) | Frame::Network(v) => json(serde_json::to_vec(v))?,
            Frame::Stdin(b) | Frame::Stdout(b) | Frame::Stderr(b) => b.clone(),
            Frame::Signal(n) => n.to_le_bytes().to_vec(),
            Frame::Oom(kills) => kills.to_le_bytes().to_vec(),
            Frame::StdinEof | Frame::Ack | Frame::QueryStats => Vec::new(),
        };
        if payload.len() > MAX_PAYLOAD {
            return Err(ProtocolError::Oversize { len: payload.len(), max: MAX_PAYLOAD });
        }
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
        out.push(self.kind());
        // Fits: bounded by MAX_PAYLOAD above.
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&payload);
        Ok(out)
    }

    fn decode(kind: u8, payload: &[u8]) -> Result<Frame> {
        let name = kind_name(kind);
        let bad = |msg: String| ProtocolError::BadPayload { kind: name, msg };
        fn parse<T: for<'de> Deserialize<'de>>(p: &[u8]) -> std::result::Result<T, String> {
            serde_json::from_slice(p).map_err(|e| e.to_string())
        }
        let empty =
            |f: Frame| if payload.is_empty() { Ok(f) } else { Err(bad("expected no payload".into())) };
        match kind {
            HELLO => Ok(Frame::Hello(parse(payload).map_err(bad)?)),
            RUN => Ok(Frame::Run(parse(payload).map_err(bad)?)),
            EXIT => Ok(Frame::Exit(parse(payload).map_err(bad)?)),
            ERROR => Ok(Frame::Error(parse(payload).map_err(bad)?)),
            RESIZE => Ok(Frame::Resize(parse(payload).map_err(bad)?)),
            STARTED => Ok(Frame::Started(parse(payload).map_err(bad)?)),
            UPDATE => Ok(Frame::Update(parse(payload).map_err(bad)?)),
            GUEST_STATS => Ok(Frame::GuestStats(parse(payload).map_err(bad)?)),
            NETWORK => Ok(Frame::Network(parse(payload).map_err(bad)?)),
            STDIN => Ok(Frame::Stdin(payload.to_vec())),
            STDOUT => Ok(Frame::Stdout(payload.to_vec())),
            STDERR => Ok(Frame::Stderr(payload.to_vec())),
            SIGNAL => {
                let raw: [u8; 4] =
                    payload.try_into().map_err(|_| bad(format!("{} bytes, expected 4", payload.len())))?;
                Ok(Frame::Signal(i32::from_le_bytes(raw)))
            }
            OOM => {
                let raw: [u8; 8] =
                    payload.try_into().map_err(|_| bad(format!("{} bytes, expected 8", payload.len())))?;
                Ok(Frame::Oom(u64::from_le_bytes(raw)))
            }
            STDIN_EOF => empty(Frame::StdinEof),
            ACK => empty(Frame::Ack),
            QUERY_STATS => empty(Frame::QueryStats),
            other => Err(ProtocolError::UnknownKind(other)),
        }
    }
}

/// Checks a header; returns the payload length.
fn check_header(header: &[u8; HEADER_LEN]) -> Result<usize> {
    let kind = header[0];
    if kind_name(kind) == "unknown" {
        return Err(ProtocolError::UnknownKind(kind));
    }
    let len = u32::from_le_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(ProtocolError::Oversize { len, max: MAX_PAYLOAD });
    }
    Ok(len)
}

/// Turns bytes as they arrive (any split) back into frames: for poll loops that read whatever
/// a socket has.
#[derive(Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, or None until more bytes arrive. A bad header is an error as soon
    /// as its 5 bytes are in, without waiting for the payload it announces.
    pub fn next_frame(&mut self) -> Result<Option<Frame>> {
        let Some(header) = self.buf.first_chunk::<HEADER_LEN>() else { return Ok(None) };
        let len = check_header(header)?;
        if self.buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let frame = Frame::decode(self.buf[0], &self.buf[HEADER_LEN..HEADER_LEN + len])?;
        self.buf.drain(..HEADER_LEN + len);
        Ok(Some(frame))
    }

    /// At end of stream: an error if a frame was cut short.
    pub fn finish(&self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let need = match self.buf.first_chunk::<HEADER_LEN>() {
            Some(h) => HEADER_LEN + check_header(h)?,
            None => HEADER_LEN,
        };
        Err(ProtocolError::Truncated { have: self.buf.len(), need })
    }
}

/// Writes one frame whole.
pub fn write_frame(w: &mut impl Write, frame: &Frame) -> Result<()> {
    w.write_all(&frame.encode()?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every frame in `wire`, and an error for a bad or cut-short one.
    fn decode_all(wire: &[u8]) -> Result<Vec<Frame>> {
        let mut d = FrameDecoder::new();
        d.push(wire);
        let mut frames = Vec::new();
        while let Some(f) = d.next_frame()? {
            frames.push(f);
        }
        d.finish()?;
        Ok(frames)
    }

    fn all_kinds() -> Vec<Frame> {
        vec![
            Frame::Hello(Hello { version: "0.1.0".into(), uptime_ms: 412 }),
            Frame::Run(RunRequest {
                args: vec!["/bin/sh".into(), "-c".into(), "echo hi".into()],
                env: vec!["PATH=/bin".into()],
                cwd: "/".into(),
                user: Some(GuestUser { uid: 1000, gid: 1000, additional_gids: vec![10] }),
                terminal: true,
                process: None,
                sub_cgroups: vec!["sub".into()],
                preserved: vec![
                    crate::fd_relay::Preserved { index: 0, kind: crate::fd_relay::Kind::Write },
                    crate::fd_relay::Preserved {
                        index: 2,
                        kind: crate::fd_relay::Kind::Listen(crate::fd_relay::Family::Inet6),
                    },
                ],
            }),
            Frame::Resize(WindowSize { rows: 24, cols: 80 }),
            Frame::Started(Started { pid: 42, relay_port: None }),
            Frame::Started(Started { pid: 42, relay_port: Some(1 << 30) }),
            Frame::Stdin(b"input\n".to_vec()),
            Frame::StdinEof,
            Frame::Signal(15),
            Frame::Stdout(vec![0, 1, 2, 255]),
            Frame::Stderr(Vec::new()),
            Frame::Exit(ExitReport { code: 137, signal: Some(9), shutdown: None }),
            Frame::Ack,
            Frame::Error(ErrorReport { message: "mounting the share: ENODEV".into() }),
            Frame::Update(serde_json::json!({"pids": {"limit": 321}})),
            Frame::QueryStats,
            Frame::Network(serde_json::json!({"nics": [], "routes": []})),
            Frame::GuestStats(serde_json::json!({"stats": {"pids": {"current": 3}}, "oom": null})),
            Frame::Oom(2),
        ]
    }

    #[test]
    fn every_kind_round_trips() {
        let mut wire = Vec::new();
        for f in all_kinds() {
            write_frame(&mut wire, &f).unwrap();
        }
        assert_eq!(decode_all(&wire).unwrap(), all_kinds());
    }

    #[test]
    fn the_decoder_reassembles_frames_split_anywhere() {
        let mut wire = Vec::new();
        for f in all_kinds() {
            wire.extend(f.encode().unwrap());
        }
        for step in [1, 2, 3, 7, 64] {
            let mut d = FrameDecoder::new();
            let mut got = Vec::new();
            for chunk in wire.chunks(step) {
                d.push(chunk);
                while let Some(f) = d.next_frame().unwrap() {
                    got.push(f);
                }
            }
            d.finish().unwrap();
            assert_eq!(got, all_kinds(), "chunks of {step}");
        }
    }

    #[test]
    fn an_exit_report_without_optional_fields_parses() {
        let payload = br#"{"code":3}"#;
        let mut wire = vec![EXIT];
        wire.extend((payload.len() as u32).to_le_bytes());
        wire.extend(payload);
        let f = decode_all(&wire).unwrap();
        assert_eq!(f, [Frame::Exit(ExitReport { code: 3, signal: None, shutdown: None })]);
    }

    #[test]
    fn a_truncated_frame_is_an_error() {
        let wire = Frame::Stdout(b"hello".to_vec()).encode().unwrap();
        for cut in 1..wire.len() {
            let err = decode_all(&wire[..cut]).unwrap_err();
            let need = wire.len();
            assert!(
                matches!(err, ProtocolError::Truncated { have, need: n } if have == cut && (n == need || cut < HEADER_LEN)),
                "cut {cut}: {err}"
            );
            let mut d = FrameDecoder::new();
            d.push(&wire[..cut]);
            assert_eq!(d.next_frame().unwrap(), None);
            assert!(matches!(d.finish(), Err(ProtocolError::Truncated { .. })));
        }
    }

    #[test]
    fn an_oversize_frame_is_refused_both_ways() {
        let big = Frame::Stdout(vec![0; MAX_PAYLOAD + 1]);
        assert!(matches!(big.encode(), Err(ProtocolError::Oversize { .. })));
        assert!(Frame::Stdout(vec![0; MAX_PAYLOAD]).encode().is_ok());
        // A header announcing too much fails at once, before any payload arrives.
        let mut header = vec![STDOUT];
        header.extend(((MAX_PAYLOAD + 1) as u32).to_le_bytes());
        let mut d = FrameDecoder::new();
        d.push(&header);
        assert!(matches!(d.next_frame(), Err(ProtocolError::Oversize { .. })));
    }

    #[test]
    fn an_unknown_kind_is_an_error() {
        for kind in [0u8, 18, 200] {
            let wire = [kind, 0, 0, 0, 0];
            assert!(matches!(decode_all(&wire), Err(ProtocolError::UnknownKind(k)) if k == kind));
            let mut d = FrameDecoder::new();
            d.push(&wire);
            assert!(matches!(d.next_frame(), Err(ProtocolError::UnknownKind(_))));
        }
    }

    #[test]
    fn bad_payloads_are_errors() {
        let cases: [(u8, &[u8]); 4] = [(HELLO, b"not json"), (SIGNAL, &[1, 2]), (ACK, b"x"), (RUN, b"{}")];
        for (kind, payload) in cases {
            let mut wire = vec![kind];
            wire.extend((payload.len() as u32).to_le_bytes());
            wire.extend(payload);
            assert!(matches!(decode_all(&wire), Err(ProtocolError::BadPayload { .. })), "kind {kind}");
        }
    }
}
