//! The host process that stands for a process exec'd into a VM container (as runsc's exec
//! waiter and Kata 1.x's kata-shim do): it lives exactly as long as the guest process, carries
//! its stdin, stdout and stderr on its own stdio (or its terminal on a host pty whose master
//! went out over the console socket), relays every catchable signal it gets and every resize
//! of that pty, and ends with the guest process's status: its exit code, or death by the same
//! signal.
//!
//! It talks to the agent over one vsock stream: the VMM's socket, `CONNECT <exec port>`, the
//! Run, and the agent's Started (or Error); `hull exec` learns which through the report pipe.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signalfd::SignalFd;

use super::{init, signals};
use crate::agent::protocol::{self, ExitReport, Frame, FrameDecoder, RunRequest, WindowSize, STDIO_CHUNK};

/// How long the guest gets to answer the connection and start the process. The emulated test
/// machine takes seconds for what hardware does in a millisecond.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// The report byte that says the process runs.
pub const STARTED: u8 = b'+';
/// The longest line the vsock device answers `CONNECT` with (`OK <port>\n`).
const CONNECT_REPLY_MAX: usize = 32;

/// What the stand-in needs, worked out by `hull exec` before the fork.
pub struct StandIn {
    /// The VMM's vsock socket.
    pub socket: PathBuf,
    pub request: RunRequest,
    /// The connected console socket, with a terminal.
    pub console: Option<OwnedFd>,
    /// process.consoleSize: (rows, cols).
    pub console_size: Option<(u16, u16)>,
    /// The container's cgroup.procs files.
    pub cgroup_procs: Vec<PathBuf>,
    /// `exec --preserve-fds`: fds 3.. of `hull exec`, relayed to the process in the guest
    /// ([`crate::fd_relay`]).
    pub preserved: Vec<crate::fd_relay::Preserved>,
}

/// The stand-in's whole life; it never returns to `hull exec`'s code.
pub fn main(standin: StandIn, report: OwnedFd) -> ! {
    let terminal = standin.request.terminal;
    let (conn, decoder, signals, drained) = match start(standin, &report) {
        Ok(started) => {
            let _ = nix::unistd::write(&report, &[STARTED]);
            drop(report);
            started
        }
        Err(msg) => {
            let _ = nix::unistd::write(&report, msg.as_bytes());
            std::process::exit(255)
        }
    };
    let ended = relay(conn, decoder, &signals, terminal);
    // The guest's relay sent the process's last writes to its preserved fds before its exit
    // status: they are written here before the stand-in ends.
    if let Some(drained) = drained {
        let mut fds = [PollFd::new(drained.as_fd(), PollFlags::POLLIN)];
        let deadline = Instant::now() + crate::fd_relay::host::DRAIN_WAIT;
        while Instant::now() < deadline {
            let ms = u16::try_from(deadline.saturating_duration_since(Instant::now()).as_millis())
                .unwrap_or(u16::MAX);
            if poll(&mut fds, PollTimeout::from(ms)).is_ok_and(|n| n > 0) {
                break;
            }
        }
    }
    match ended {
        Some(ExitReport { signal: Some(signo), .. }) => signals::die_of(signo),
        Some(report) => std::process::exit(report.code.clamp(0, 255)),
        // The VM went away under the process: as a native exec'd process dies with its
        // container's init, by SIGKILL.
        None => signals::die_of(libc::SIGKILL),
    }
}

/// Everything up to the guest's Started: the stream, what was read after it, the signals, and
/// with preserved fds the read end of their relay's `drained` pipe.
type Started = (UnixStream, FrameDecoder, SignalFd, Option<OwnedFd>);

fn start(standin: StandIn, report: &OwnedFd) -> Result<Started, String> {
    for procs in &standin.cgroup_procs {
        std::fs::write(procs, std::process::id().to_string())
            .map_err(|e| format!("join cgroup {}: {e}", procs.display()))?;
    }
    if let Some(socket) = standin.console {
        init::take_terminal(socket, standin.console_size)?;
    }
    // Out of the range 3..3+N before it is closed.
    let preserved = crate::fd_relay::host::take(&standin.preserved)?;
    let mut keep = vec![report.as_raw_fd()];
    keep.extend(crate::logging::log_fd());
    keep.extend(crate::fd_relay::host::raw_fds(&preserved));
    init::close_inherited(&keep)?;
    // Before anything can arrive: each relayed signal waits on the signalfd until the guest
    // process exists.
    let signals = signals::block_relayed().map_err(|e| format!("blocking signals: {e}"))?;
    let mut conn = connect(&standin.socket)?;
    let mut wire = Frame::Run(standin.request.clone()).encode().map_err(|e| e.to_string())?;
    if standin.request.terminal {
        if let Some(size) = window_size() {
            wire.extend(Frame::Resize(size).encode().map_err(|e| e.to_string())?);
        }
    }
    conn.write_all(&wire).map_err(|e| format!("sending the process to the guest: {e}"))?;
    let (decoder, relay_port) = wait_started(&mut conn)?;
    conn.set_read_timeout(None).map_err(|e| e.to_string())?;
    let drained = match (relay_port, preserved.is_empty()) {
        (_, true) => None,
        (Some(port), false) => Some(start_relay(standin.socket, port, preserved)?),
        (None, false) => return Err("the guest agent did not start a relay for the preserved fds".into()),
    };
    Ok((conn, decoder, signals, drained))
}

/// The preserved fds' relay, on a thread: a stream to the guest relay's `port` for each fd,
/// and one for each client a preserved listener accepts. Returns the read end of its
/// `drained` pipe.
fn start_relay(
    socket: PathBuf,
    port: u32,
    preserved: Vec<crate::fd_relay::host::Taken>,
) -> Result<OwnedFd, String> {
    let (drained_r, drained_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    let open = move |header: crate::fd_relay::Header| -> Result<OwnedFd, String> {
        let mut conn = connect_to(&socket, port)?;
        conn.write_all(&header.encode()).map_err(|e| format!("a preserved fd's stream: {e}"))?;
        conn.set_nonblocking(true).map_err(|e| e.to_string())?;
        Ok(OwnedFd::from(conn))
    };
    std::thread::Builder::new()
        .name("fd-relay".into())
        .spawn(move || {
            if let Err(e) = crate::fd_relay::host::run_opening(preserved, open, drained_w) {
                crate::logging::warn(&format!("exec: the preserved fds' relay: {e}"));
            }
        })
        .map_err(|e| format!("starting the preserved fds' relay: {e}"))?;
    Ok(drained_r)
}

/// Connects to the guest's exec port through the VMM's vsock socket.
pub(super) fn connect(socket: &Path) -> Result<UnixStream, String> {
    connect_to(socket, crate::vm::EXEC_PORT)
}

/// Connects to a guest port through the VMM's vsock socket.
fn connect_to(socket: &Path, port: u32) -> Result<UnixStream, String> {
    let mut conn = super::socket_dir::connect(socket).map_err(|e| {
        format!("connecting to the VM's socket {}: {e} (is the VM still running?)", socket.display())
    })?;
    conn.set_read_timeout(Some(START_TIMEOUT)).map_err(|e| e.to_string())?;
    conn.write_all(format!("CONNECT {port}\n").as_bytes())
        .map_err(|e| format!("connecting to the guest's exec port: {e}"))?;
    // Byte by byte: what follows the line is the agent's.
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.len() < CONNECT_REPLY_MAX {
        match conn.read(&mut byte) {
            Ok(0) => return Err("the guest refused the exec connection (its agent is gone)".into()),
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => line.push(byte[0]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // The read timeout ran out (SO_RCVTIMEO reads as EAGAIN): say so, not "resource
            // temporarily unavailable".
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err(format!(
                    "the guest did not answer the connection to its port {port} within {} s (is its agent stuck?)",
                    START_TIMEOUT.as_secs()
                ))
            }
            Err(e) => return Err(format!("connecting to the guest's exec port: {e}")),
        }
    }
    if !line.starts_with(b"OK ") {
        return Err(format!(
            "the VM's socket answered {:?} to the exec connection",
            String::from_utf8_lossy(&line)
        ));
    }
    Ok(conn)
}

/// Waits for Started (and its relay port); an Error is the reason the process could not start.
fn wait_started(conn: &mut UnixStream) -> Result<(FrameDecoder, Option<u32>), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    let mut decoder = FrameDecoder::new();
    let mut buf = vec![0u8; STDIO_CHUNK];
    loop {
        match decoder.next_frame().map_err(|e| format!("the guest's answer: {e}"))? {
            Some(Frame::Started(s)) => return Ok((decoder, s.relay_port)),
            Some(Frame::Error(e)) => {
                let _ = protocol::write_frame(conn, &Frame::Ack);
                return Err(e.message);
            }
            Some(other) => return Err(format!("unexpected answer from the guest agent: {other:?}")),
            None => {}
        }
        if Instant::now() >= deadline {
            return Err(format!("the guest did not start the process within {} s", START_TIMEOUT.as_secs()));
        }
        match conn.read(&mut buf) {
            Ok(0) => return Err("the guest agent closed the exec stream before the process started".into()),
            Ok(n) => decoder.push(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err(format!(
                    "the guest did not start the process within {} s",
                    START_TIMEOUT.as_secs()
                ))
            }
            Err(e) => return Err(format!("reading the guest's answer: {e}")),
        }
    }
}

/// Carries stdio, signals and resizes until the guest process ends; its exit report, or None
/// when the stream ended first. The stream is non-blocking with an outbox, so output from the
/// guest is always read even while the guest is slow to take input; stdin is read only while
/// the outbox is small.
fn relay(
    mut conn: UnixStream,
    mut decoder: FrameDecoder,
    signals: &SignalFd,
    terminal: bool,
) -> Option<ExitReport> {
    conn.set_nonblocking(true).ok()?;
    let stdin = io::stdin();
    let mut stdin_open = true;
    let (mut stdout_ok, mut stderr_ok) = (true, true);
    let mut outbox: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; STDIO_CHUNK];
    loop {
        // Frames first: Started may have come with output.
        loop {
            match decoder.next_frame() {
                Ok(Some(Frame::Stdout(bytes))) => stdout_ok = stdout_ok && write_out(io::stdout(), &bytes),
                Ok(Some(Frame::Stderr(bytes))) => stderr_ok = stderr_ok && write_out(io::stderr(), &bytes),
                Ok(Some(Frame::Exit(report))) => {
                    queue(&mut outbox, &Frame::Ack);
                    let _ = conn.set_nonblocking(false).and_then(|()| conn.write_all(&outbox));
                    return Some(report);
                }
                Ok(Some(_)) | Err(_) => return None,
                Ok(None) => break,
            }
        }
        let mut conn_flags = PollFlags::POLLIN;
        if !outbox.is_empty() {
            conn_flags |= PollFlags::POLLOUT;
        }
        let mut fds =
            vec![PollFd::new(conn.as_fd(), conn_flags), PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        if stdin_open && outbox.len() < OUTBOX_HIGH {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(_) => return None,
        }
        let revents = |i: usize| fds.get(i).and_then(|f| f.revents()).unwrap_or(PollFlags::empty());
        let (conn_rev, sig_ready, stdin_ready) = (revents(0), !revents(1).is_empty(), !revents(2).is_empty());
        drop(fds);
        if conn_rev.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            match conn.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => decoder.push(&buf[..n]),
                Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock) => {}
                Err(_) => return None,
            }
        }
        if sig_ready {
            while let Ok(Some(info)) = signals.read_signal() {
                let signo = info.ssi_signo as i32;
                let own = info.ssi_pid == std::process::id();
                match signo {
                    libc::SIGCHLD => {}
                    libc::SIGPIPE if own => {}
                    libc::SIGWINCH if terminal => {
                        if let Some(size) = window_size() {
                            queue(&mut outbox, &Frame::Resize(size));
                        }
                    }
                    _ => queue(&mut outbox, &Frame::Signal(signo)),
                }
            }
        }
        if stdin_ready {
            match nix::unistd::read(&stdin, &mut buf) {
                Ok(0) | Err(Errno::EBADF | Errno::EIO | Errno::EINVAL) => {
                    stdin_open = false;
                    queue(&mut outbox, &Frame::StdinEof);
                }
                Ok(n) => queue(&mut outbox, &Frame::Stdin(buf[..n].to_vec())),
                Err(_) => {}
            }
        }
        if !flush(&mut conn, &mut outbox) {
            return None;
        }
    }
}

/// Stop reading stdin while this much waits to go to the guest.
const OUTBOX_HIGH: usize = 1 << 20;

fn queue(outbox: &mut Vec<u8>, frame: &Frame) {
    // Frames built here are within the size limit (stdio chunks are STDIO_CHUNK at most).
    if let Ok(bytes) = frame.encode() {
        outbox.extend_from_slice(&bytes);
    }
}

/// Writes what the stream takes now; false when the guest side is gone.
fn flush(conn: &mut UnixStream, outbox: &mut Vec<u8>) -> bool {
    while !outbox.is_empty() {
        match conn.write(outbox) {
            Ok(0) => return false,
            Ok(n) => {
                outbox.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
    true
}

/// Writes output whole; false once the reader is gone (the rest is dropped, as a closed pipe
/// would drop it for a native process).
fn write_out(mut w: impl Write, bytes: &[u8]) -> bool {
    w.write_all(bytes).and_then(|()| w.flush()).is_ok()
}

/// stdin's terminal size, when it is a terminal.
fn window_size() -> Option<WindowSize> {
    let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes a winsize to the pointer, which outlives the call.
    let ok = unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) } == 0;
    (ok && ws.ws_row > 0).then_some(WindowSize { rows: ws.ws_row, cols: ws.ws_col })
}
