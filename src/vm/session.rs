//! The host's side of the conversation with the agent, on a thread of its own while the VMM
//! runs on vm-run's main thread.
//!
//! One poll loop: first the vsock listener (the agent's connection is "agent ready"), then the
//! stream, vm-run's stdin and the signalfd for the signals vm-run forwards. The stream is
//! non-blocking with an output buffer, so the loop always keeps reading the guest's output
//! even when the guest is slow to take its input; stdin is read only while that buffer is
//! small. The loop ends when the main thread closes the quit pipe (the VM has stopped).
//!
//! A VM container's VMM runs the same session with a [`StartGate`]: the guest boots during
//! `hull create`, and the command is sent only once `hull start` released the exec fifo; and
//! with [`Relay::Every`], every signal the VMM gets goes to the command.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signalfd::SignalFd;

use crate::agent::protocol::{ExitReport, Frame, FrameDecoder, RunRequest, WindowSize, STDIO_CHUNK};
use crate::vm::backend::oom_relay::OomRelay;

/// How long the guest gets to stop after it reported the exit status (the agent syncs the
/// share first) or after it closed the connection, before vm-run stops the VM itself.
const STOP_GRACE: Duration = Duration::from_secs(30);
/// Stop reading stdin while this much is waiting to go to the guest.
const OUTBOX_HIGH: usize = 1 << 20;
/// How long a VM container's VMM, its workload gone, waits for the OOM relay's processes to
/// be killed (`OomRelay::finish`).
const OOM_RELAY_WAIT: Duration = Duration::from_secs(5);

/// What the session saw, for vm-run's exit status and the timeline.
#[derive(Debug, Default)]
pub struct Report {
    pub agent_ready: Option<Instant>,
    pub guest_uptime_ms: Option<u64>,
    pub command_started: Option<Instant>,
    pub command_done: Option<Instant>,
    pub exit: Option<ExitReport>,
    /// The agent's own failure, as it reported it.
    pub agent_error: Option<String>,
    /// vm-run's side failed: boot timeout, a protocol error.
    pub failure: Option<String>,
    /// A signal that made vm-run stop the VM: one before the command started, or a second one
    /// while it ran (the first is forwarded; a hung guest must not make vm-run unkillable).
    pub interrupted: Option<i32>,
    /// vm-run stopped the VM itself (a failure above, or the guest did not stop).
    pub stopped_vm: bool,
}

/// Holds the command back until the container is started.
pub struct StartGate {
    /// Called once, when the agent has greeted (the guest is up): `create` may return.
    pub on_ready: Box<dyn FnOnce() + Send>,
    /// Readable once the command may run (`hull start` opened the exec fifo).
    pub released: OwnedFd,
    /// Closed once the agent says the workload's program runs (its `Started`): the exec
    /// fifo's writer holds the fifo open until then, so `hull start` returns after it.
    pub started: OwnedFd,
}

/// Which signals go to the command, and what a second one does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relay {
    /// vm-run: the first signal goes to the command; a second one stops the VM (a hung guest
    /// must not make vm-run unkillable).
    FirstThenStop,
    /// A VM container: every signal goes to the command, as to a native container's init;
    /// SIGKILL is what stops the VMM. The VMM's own SIGPIPE and SIGCHLD are not relayed.
    Every,
}

pub struct Session {
    pub listener: UnixListener,
    pub vmm: vmm::VmmHandle,
    pub request: RunRequest,
    pub signals: SignalFd,
    /// Readable (end of file) once the VM has stopped.
    pub quit: OwnedFd,
    pub boot_timeout: Duration,
    /// What sets the boot timeout and shows the guest console, for the timeout's message.
    pub boot_hint: &'static str,
    /// None: send the command as soon as the agent greets (vm-run).
    pub gate: Option<StartGate>,
    pub relay: Relay,
    /// stdin is a terminal (a VM container's host-side pty): its size goes to the guest at
    /// the start and on each SIGWINCH.
    pub terminal: bool,
    /// A VM container's: makes the guest's OOM kills seen in the host cgroup.
    pub oom_relay: Option<OomRelay>,
    /// A VM container's preserved fds' relay: at end of file once every stream toward the
    /// host ended and was written; the exit status is acknowledged only then (bounded).
    pub preserved_drained: Option<OwnedFd>,
}

/// The connection once the agent is there.
struct Conn {
    stream: UnixStream,
    decoder: FrameDecoder,
    outbox: Vec<u8>,
    open: bool,
}

impl Session {
    pub fn run(mut self) -> Report {
        let mut report = Report::default();
        let (on_ready, released, started) = match self.gate.take() {
            Some(g) => (Some(g.on_ready), Some(g.released), Some(g.started)),
            None => (None, None, None),
        };
        let mut state = State {
            on_ready,
            released,
            started,
            report: &mut report,
            stdin_open: true,
            stdout_ok: true,
            stderr_ok: true,
            stop_at: None,
            forwarded: 0,
            oom_relay: self.oom_relay.take(),
        };
        if self.relay == Relay::Every {
            // Children that ended before the signals were blocked left no SIGCHLD pending.
            reap_children();
        }
        let boot_deadline = Instant::now() + self.boot_timeout;
        let Some(mut conn) = self.accept(&mut state, boot_deadline) else { return report };
        self.converse(&mut state, &mut conn, boot_deadline);
        if let Some(relay) = state.oom_relay.as_mut() {
            relay.finish(OOM_RELAY_WAIT);
        }
        report
    }

    /// Waits for the agent's connection; None when the VM ended or was stopped first.
    fn accept(&self, st: &mut State, deadline: Instant) -> Option<Conn> {
        if let Err(e) = self.listener.set_nonblocking(true) {
            st.fail(&self.vmm, format!("vsock listener: {e}"));
            self.wait_quit();
            return None;
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                st.fail(
                    &self.vmm,
                    format!(
                        "the guest agent did not connect within {} s ({})",
                        self.boot_timeout.as_secs(),
                        self.boot_hint
                    ),
                );
                self.wait_quit();
                return None;
            }
            let mut fds = [
                PollFd::new(self.listener.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.signals.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.quit.as_fd(), PollFlags::POLLIN),
            ];
            if poll_fds(&mut fds, Some(left)).is_err() {
                continue;
            }
            let (conn_ready, sig_ready, quit_ready) = (ready(&fds[0]), ready(&fds[1]), ready(&fds[2]));
            if quit_ready {
                return None;
            }
            if sig_ready {
                match next_signal(&self.signals) {
                    Some(info) if self.relays(&info) => {
                        st.report.interrupted = Some(info.ssi_signo as i32);
                        st.report.stopped_vm = true;
                        self.vmm.stop();
                        self.wait_quit();
                        return None;
                    }
                    Some(info) => self.on_own_signal(&info),
                    None => {}
                }
            }
            if conn_ready {
                match self.listener.accept() {
                    Ok((stream, _)) => {
                        st.report.agent_ready = Some(Instant::now());
                        if let Err(e) = stream.set_nonblocking(true) {
                            st.fail(&self.vmm, format!("vsock connection: {e}"));
                            self.wait_quit();
                            return None;
                        }
                        return Some(Conn {
                            stream,
                            decoder: FrameDecoder::new(),
                            outbox: Vec::new(),
                            open: true,
                        });
                    }
                    Err(e)
                        if e.kind() == io::ErrorKind::WouldBlock
                            || e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        st.fail(&self.vmm, format!("accepting the agent's connection: {e}"));
                        self.wait_quit();
                        return None;
                    }
                }
            }
        }
    }

    fn converse(&self, st: &mut State, conn: &mut Conn, boot_deadline: Instant) {
        let stdin = io::stdin();
        let mut buf = vec![0u8; STDIO_CHUNK];
        loop {
            // Until Hello, the boot deadline still runs; after the exit status or the end of
            // the stream, the guest has STOP_GRACE to stop.
            let deadline = if st.report.guest_uptime_ms.is_none() && conn.open {
                Some(boot_deadline)
            } else {
                st.stop_at
            };
            if let Some(d) = deadline {
                if Instant::now() >= d {
                    if st.report.guest_uptime_ms.is_none() && st.stop_at.is_none() {
                        st.fail(
                            &self.vmm,
                            format!(
                                "the guest agent connected but did not greet within {} s",
                                self.boot_timeout.as_secs()
                            ),
                        );
                    } else if !st.report.stopped_vm {
                        st.report.stopped_vm = true;
                        self.vmm.stop();
                    }
                    self.wait_quit();
                    return;
                }
            }
            let want_stdin = st.stdin_open
                && st.report.command_started.is_some()
                && st.report.exit.is_none()
                && conn.outbox.len() < OUTBOX_HIGH;
            let mut fds = vec![
                PollFd::new(self.signals.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.quit.as_fd(), PollFlags::POLLIN),
            ];
            // Between the greeting and `hull start`: wait for the release.
            let waiting_release = st.report.guest_uptime_ms.is_some() && st.report.command_started.is_none();
            let released_slot = match (&st.released, waiting_release) {
                (Some(fd), true) => {
                    fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                    Some(fds.len() - 1)
                }
                _ => None,
            };
            // A closed stream or stdin stays out of the set: poll reports their hangup for ever.
            let conn_slot = conn.open.then(|| {
                let mut flags = PollFlags::POLLIN;
                if !conn.outbox.is_empty() {
                    flags |= PollFlags::POLLOUT;
                }
                fds.push(PollFd::new(conn.stream.as_fd(), flags));
                fds.len() - 1
            });
            let stdin_slot = want_stdin.then(|| {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
                fds.len() - 1
            });
            if poll_fds(&mut fds, deadline.map(|d| d.saturating_duration_since(Instant::now()))).is_err() {
                continue;
            }
            let (sig_ready, quit_ready) = (ready(&fds[0]), ready(&fds[1]));
            let conn_rev = conn_slot.and_then(|i| fds[i].revents()).unwrap_or(PollFlags::empty());
            let stdin_ready = stdin_slot.is_some_and(|i| ready(&fds[i]));
            let release_ready = released_slot.is_some_and(|i| ready(&fds[i]));
            drop(fds);

            if release_ready {
                // One byte: `hull start` took the fifo's. End of file: the fifo could not be
                // opened, and the workload must not start behind the lifecycle's back.
                let mut byte = [0u8; 1];
                let got = st.released.as_ref().map(|fd| nix::unistd::read(fd, &mut byte));
                st.released = None;
                match got {
                    Some(Ok(1)) if conn.open => self.send_run(st, conn),
                    _ => st.fail(
                        &self.vmm,
                        "the exec fifo could not be opened; the workload was not started".into(),
                    ),
                }
            }

            if conn.open && conn_rev.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                self.read_conn(st, conn, &mut buf);
            }
            if conn.open && conn_rev.contains(PollFlags::POLLOUT) {
                flush(conn);
            }
            if stdin_ready {
                read_stdin(st, conn, stdin.as_fd(), &mut buf);
            }
            if sig_ready {
                while let Some(info) = next_signal(&self.signals) {
                    if self.relays(&info) {
                        self.on_signal(st, conn, info.ssi_signo as i32);
                    } else {
                        self.on_own_signal(&info);
                    }
                }
            }
            if quit_ready {
                // The VM has stopped: take what the guest sent last, and that is all.
                if conn.open {
                    self.read_conn(st, conn, &mut buf);
                }
                return;
            }
        }
    }

    /// Reads what the stream has and acts on each whole frame.
    fn read_conn(&self, st: &mut State, conn: &mut Conn, buf: &mut [u8]) {
        loop {
            match conn.stream.read(buf) {
                Ok(0) => {
                    conn.open = false;
                    if let Err(e) = conn.decoder.finish() {
                        st.fail_quietly(format!("the guest agent's stream: {e}"));
                    }
                    st.stop_at.get_or_insert(Instant::now() + STOP_GRACE);
                    break;
                }
                Ok(n) => conn.decoder.push(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    conn.open = false;
                    st.stop_at.get_or_insert(Instant::now() + STOP_GRACE);
                    break;
                }
            }
        }
        loop {
            match conn.decoder.next_frame() {
                Ok(Some(frame)) => self.on_frame(st, conn, frame),
                Ok(None) => break,
                Err(e) => {
                    st.fail(&self.vmm, format!("the guest agent sent a bad frame: {e}"));
                    conn.open = false;
                    st.stop_at.get_or_insert(Instant::now() + STOP_GRACE);
                    break;
                }
            }
        }
        flush(conn);
    }

    fn on_frame(&self, st: &mut State, conn: &mut Conn, frame: Frame) {
        match frame {
            Frame::Hello(hello) if st.report.guest_uptime_ms.is_none() => {
                st.report.guest_uptime_ms = Some(hello.uptime_ms);
                match st.on_ready.take() {
                    // The container's guest is up: the command waits for `hull start`.
                    Some(on_ready) => on_ready(),
                    None => self.send_run(st, conn),
                }
            }
            Frame::Stdout(bytes) => {
                if st.stdout_ok {
                    let mut out = io::stdout().lock();
                    st.stdout_ok = out.write_all(&bytes).and_then(|_| out.flush()).is_ok();
                }
            }
            Frame::Stderr(bytes) => {
                if st.stderr_ok {
                    let mut err = io::stderr().lock();
                    st.stderr_ok = err.write_all(&bytes).and_then(|_| err.flush()).is_ok();
                }
            }
            Frame::Exit(exit) if st.report.exit.is_none() => {
                st.report.command_done = Some(Instant::now());
                // The guest relay flushed the workload's last writes to the preserved fds
                // before the agent sent this: the Ack, which lets the guest power off, waits
                // until the host side has written them too.
                if let Some(drained) = &self.preserved_drained {
                    wait_readable(drained.as_fd(), crate::fd_relay::host::DRAIN_WAIT);
                }
                st.report.exit = Some(exit);
                queue(conn, &Frame::Ack);
                st.stop_at = Some(Instant::now() + STOP_GRACE);
            }
            Frame::Oom(kills) if st.oom_relay.is_some() => {
                crate::logging::debug(&format!("the guest's OOM killer killed a process ({kills} so far)"));
                if let Some(relay) = st.oom_relay.as_mut() {
                    relay.relay();
                }
            }
            Frame::Oom(_) => {}
            Frame::Started(_) if st.report.command_started.is_some() && st.started.is_some() => {
                // The workload's program runs in the guest: let `hull start` return.
                st.started = None;
            }
            Frame::Error(e) => {
                st.report.agent_error = Some(e.message);
                // The agent waits for this (or a timeout) before it powers off.
                queue(conn, &Frame::Ack);
                st.stop_at.get_or_insert(Instant::now() + STOP_GRACE);
            }
            other => {
                st.fail(&self.vmm, format!("unexpected frame from the guest agent: {other:?}"));
                conn.open = false;
            }
        }
    }

    fn send_run(&self, st: &mut State, conn: &mut Conn) {
        queue(conn, &Frame::Run(self.request.clone()));
        if self.terminal {
            queue_resize(conn);
        }
        flush(conn);
        st.report.command_started = Some(Instant::now());
    }

    fn on_signal(&self, st: &mut State, conn: &mut Conn, signo: i32) {
        let running = st.report.command_started.is_some() && st.report.exit.is_none() && conn.open;
        if self.terminal && signo == libc::SIGWINCH {
            // The caller's terminal changed size: the guest's pty follows, and the guest
            // kernel signals the command.
            if running {
                queue_resize(conn);
                flush(conn);
            }
            return;
        }
        if self.relay == Relay::Every && !running && harmless(signo) {
            // What would not end a native init waiting on the fifo does not end the VM.
            return;
        }
        if running && (st.forwarded == 0 || self.relay == Relay::Every) {
            st.forwarded += 1;
            queue(conn, &Frame::Signal(signo));
            flush(conn);
        } else if running {
            // A second signal: the command did not end on the first (or the guest is hung).
            st.report.interrupted = Some(signo);
            st.report.stopped_vm = true;
            self.vmm.stop();
        } else if st.report.command_started.is_none() {
            st.report.interrupted = Some(signo);
            st.report.stopped_vm = true;
            self.vmm.stop();
        } else {
            // The command is done and the guest is on its way down: do not wait for it.
            st.report.stopped_vm = true;
            self.vmm.stop();
        }
    }

    /// A signal that is the VMM's own: a VM container's VMM reaps its children on SIGCHLD.
    fn on_own_signal(&self, info: &nix::libc::signalfd_siginfo) {
        if self.relay == Relay::Every && info.ssi_signo as i32 == libc::SIGCHLD {
            reap_children();
        }
    }

    /// Whether a signal the VMM got is one for the command: with [`Relay::Every`] the VMM
    /// blocks nearly every signal, and those the kernel sends it about itself (SIGPIPE on a
    /// closed stdout, SIGCHLD) are not the caller's.
    fn relays(&self, info: &nix::libc::signalfd_siginfo) -> bool {
        match self.relay {
            Relay::FirstThenStop => true,
            Relay::Every => {
                let own = info.ssi_pid == std::process::id();
                let signo = info.ssi_signo as i32;
                signo != libc::SIGCHLD && !(own && signo == libc::SIGPIPE)
            }
        }
    }

    /// Waits for the main thread to say the VM has stopped.
    fn wait_quit(&self) {
        let mut fds = [PollFd::new(self.quit.as_fd(), PollFlags::POLLIN)];
        while poll_fds(&mut fds, None).is_err() || !ready(&fds[0]) {}
    }
}

struct State<'a> {
    /// The gate's parts, until used.
    on_ready: Option<Box<dyn FnOnce() + Send>>,
    released: Option<OwnedFd>,
    started: Option<OwnedFd>,
    report: &'a mut Report,
    stdin_open: bool,
    stdout_ok: bool,
    stderr_ok: bool,
    stop_at: Option<Instant>,
    /// Signals forwarded to the command so far.
    forwarded: u32,
    oom_relay: Option<OomRelay>,
}

impl State<'_> {
    /// Records the first failure and stops the VM.
    fn fail(&mut self, vmm: &vmm::VmmHandle, msg: String) {
        self.fail_quietly(msg);
        if !self.report.stopped_vm {
            self.report.stopped_vm = true;
            vmm.stop();
        }
    }

    fn fail_quietly(&mut self, msg: String) {
        self.report.failure.get_or_insert(msg);
    }
}

fn read_stdin(st: &mut State, conn: &mut Conn, stdin: BorrowedFd, buf: &mut [u8]) {
    match nix::unistd::read(stdin, buf) {
        Ok(0) | Err(Errno::EBADF | Errno::EIO | Errno::EINVAL) => {
            st.stdin_open = false;
            queue(conn, &Frame::StdinEof);
        }
        Ok(n) => queue(conn, &Frame::Stdin(buf[..n].to_vec())),
        Err(_) => {}
    }
    flush(conn);
}

/// Signals whose default action neither ends nor stops a process.
/// A VM container's VMM is pid 1 of its pid namespace (`vm::backend::pidns`): processes
/// orphaned there (a daemon a createContainer hook left) become its children, and so do the
/// OOM relay's. Reaps every one that ended, as an init does; the relay sees its own gone.
fn reap_children() {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

fn harmless(signo: i32) -> bool {
    [libc::SIGCHLD, libc::SIGCONT, libc::SIGURG, libc::SIGWINCH].contains(&signo)
}

/// Queues stdin's terminal size, when it has one.
fn queue_resize(conn: &mut Conn) {
    let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes a winsize to the pointer, which outlives the call.
    if unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_row > 0 {
        queue(conn, &Frame::Resize(WindowSize { rows: ws.ws_row, cols: ws.ws_col }));
    }
}

fn queue(conn: &mut Conn, frame: &Frame) {
    // Frames built here are within the size limit (stdio chunks are STDIO_CHUNK at most).
    if let Ok(bytes) = frame.encode() {
        conn.outbox.extend_from_slice(&bytes);
    }
}

/// Writes what the stream takes now.
fn flush(conn: &mut Conn) {
    while conn.open && !conn.outbox.is_empty() {
        match conn.stream.write(&conn.outbox) {
            Ok(0) => break,
            Ok(n) => {
                conn.outbox.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(_) => {
                // The guest side is gone; what was queued has no reader.
                conn.outbox.clear();
                break;
            }
        }
    }
}

/// Waits until `fd` is readable (or at end of file), for at most `limit`.
fn wait_readable(fd: BorrowedFd, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            crate::logging::debug("the preserved fds' last bytes were not all written in time");
            return;
        }
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        if poll_fds(&mut fds, Some(left)).is_ok_and(|n| n > 0) {
            return;
        }
    }
}

fn next_signal(signals: &SignalFd) -> Option<nix::libc::signalfd_siginfo> {
    signals.read_signal().ok().flatten()
}

fn ready(fd: &PollFd) -> bool {
    fd.revents().is_some_and(|r| !r.is_empty())
}

fn poll_fds(fds: &mut [PollFd], timeout: Option<Duration>) -> nix::Result<i32> {
    let t = match timeout {
        None => PollTimeout::NONE,
        Some(d) => PollTimeout::try_from(d.as_millis().saturating_add(1).min(i32::MAX as u128) as u64)
            .unwrap_or(PollTimeout::MAX),
    };
    poll(fds, t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_signals_that_end_nothing_are_harmless_before_start() {
        for s in [libc::SIGCHLD, libc::SIGCONT, libc::SIGURG, libc::SIGWINCH] {
            assert!(harmless(s), "{s}");
        }
        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGUSR1, libc::SIGQUIT] {
            assert!(!harmless(s), "{s}");
        }
    }
}
