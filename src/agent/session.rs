//! The agent's side of the conversation: greet the host, run the command it sends, pump its
//! stdio both ways, forward signals, report how it ended and wait for the host to have heard.
//!
//! One thread and one poll loop over the vsock stream, the command's stdout and stderr, its
//! stdin (when there is input to write) and the signalfd (SIGCHLD, shutdown requests). Writes
//! to the host block, which is safe because the host never stops reading; writes to the
//! command's stdin do not, since a command that ignores its input must not stall the rest.

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::console;
use super::oom_watch::OomWatch;
use super::power;
use super::protocol::{self, ExitReport, Frame, FrameDecoder, Hello, RunRequest, Started, STDIO_CHUNK};
use super::spawn::{self, Spawned};
use super::vsock::{VsockListener, VsockStream};
use super::AgentConfig;

/// How long the agent waits for the host's Ack before powering off anyway.
pub(super) const ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// After a shutdown request (busybox `poweroff` signals PID 1 and exits), how long the command
/// gets to end by itself before SIGTERM, and then before SIGKILL.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
const SHUTDOWN_KILL: Duration = Duration::from_secs(3);

/// A VM container's workload, made at boot from its spec ([`super::container`]).
pub(super) struct ContainerMode<'a> {
    pub spec: &'a oci_spec::runtime::Spec,
    pub created: super::container::Created,
}

pub(super) fn serve(
    conn: &mut VsockStream,
    config: &AgentConfig,
    signals: &SignalFd,
    execs: Option<&VsockListener>,
    container: Option<ContainerMode>,
) -> anyhow::Result<()> {
    let hello = Hello { version: crate::cli::VERSION.to_string(), uptime_ms: uptime_ms() };
    send(conn, &Frame::Hello(hello))?;
    let mut decoder = FrameDecoder::new();
    let mut container = container;
    let relay = container.as_mut().and_then(|c| c.created.relay.take());
    let exec = execs.map(|listener| ExecPort {
        listener,
        // A container's init exists from boot: exec before start joins it, as natively.
        workload: container.as_ref().map(|c| c.created.init.pid),
        spec: container.as_ref().map(|c| c.spec),
        private: relay.as_ref().map(|r| r.fds()),
    });
    let Some(req) = wait_for_run(conn, &mut decoder, signals, exec.as_ref())? else {
        bail!("the host closed the connection before sending a command");
    };
    let container_mode = container.is_some();
    // Started, or the exit code and message of a start that failed.
    let started: Result<Spawned, (i32, String)> = match container {
        // The spec holds the process: Run is `hull start`.
        Some(c) => super::container::start(c.created.init.pid)
            .map(|()| c.created.init)
            .map_err(|e| (255, format!("{e:#}"))),
        None => {
            console::debug(&format!("running {:?} in {}", req.args, req.cwd));
            spawn::spawn(&req, Path::new(&config.mount_point)).map_err(|err| {
                let program = req.args.first().map(String::as_str).unwrap_or("");
                (spawn::exit_code_for_spawn_error(&err), format!("cannot run {program:?}: {err}"))
            })
        }
    };
    let report = match started {
        Ok(child) => {
            if container_mode {
                // `hull start` on the host returns (and runs poststart hooks) on this.
                send(conn, &Frame::Started(Started { pid: child.pid, relay_port: None }))?;
            }
            let exec = exec.map(|e| ExecPort { workload: Some(child.pid), ..e });
            // A VM container's OOMs go to the host as they happen.
            let oom = exec
                .as_ref()
                .and_then(|e| e.spec)
                .and_then(super::exec::container_cgroup_path)
                .and_then(OomWatch::new);
            let report = Session::new(child, &mut decoder, oom).run(conn, signals, exec.as_ref())?;
            // What the workload wrote last to its preserved fds goes to the host first.
            if let Some(relay) = relay {
                relay.finish();
            }
            report
        }
        Err((code, msg)) => {
            send(conn, &Frame::Stderr(format!("hull-agent: {msg}\n").into_bytes()))?;
            ExitReport { code, signal: None, shutdown: None }
        }
    };
    console::debug(&format!("command ended: {report:?}"));
    send(conn, &Frame::Exit(report))?;
    wait_for_close(conn, &mut decoder, ACK_TIMEOUT);
    Ok(())
}

/// A VM container's exec port, served while the agent waits for the workload and while it
/// runs: each connection is a process `hull exec` starts ([`super::exec`]).
#[derive(Clone, Copy)]
pub(super) struct ExecPort<'a> {
    pub listener: &'a VsockListener,
    /// The container's init (from boot): exec'd processes join its namespaces.
    pub workload: Option<i32>,
    /// A VM container's guest spec: exec'd processes go through `native::exec`.
    pub spec: Option<&'a oci_spec::runtime::Spec>,
    /// PID 1's ends of the preserved fds' relay, which an exec server must not hold.
    pub private: Option<[RawFd; 2]>,
}

impl ExecPort<'_> {
    /// Takes one connection and serves it in a process of its own.
    fn accept(&self, conn: &VsockStream) {
        match self.listener.accept() {
            Ok(stream) => {
                let mut close = vec![conn.as_fd().as_raw_fd()];
                close.extend(self.private.iter().flatten());
                super::exec::serve_forked(stream, self, &close)
            }
            Err(e) => console::warn(&format!("accepting an exec connection: {e}")),
        }
    }
}

/// Waits (up to `timeout`) until the host acknowledges or closes the stream, so that what was
/// sent last has reached the host before the guest goes down. `decoder` holds what was read
/// of the stream so far (a frame may be half in).
pub fn wait_for_close(conn: &mut VsockStream, decoder: &mut FrameDecoder, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    loop {
        // Late stdin and signals are of no use now: skip to the Ack.
        loop {
            match decoder.next_frame() {
                Ok(Some(Frame::Ack)) | Err(_) => return,
                Ok(Some(_)) => {}
                Ok(None) => break,
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            console::warn("the host did not acknowledge the exit status; powering off anyway");
            return;
        }
        let mut fds = [PollFd::new(conn.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout_of(Some(left))) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Ok(_) => {}
            Err(_) => return,
        }
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => decoder.push(&buf[..n]),
        }
    }
}

fn wait_for_run(
    conn: &mut VsockStream,
    decoder: &mut FrameDecoder,
    signals: &SignalFd,
    exec: Option<&ExecPort>,
) -> anyhow::Result<Option<RunRequest>> {
    let mut buf = vec![0u8; STDIO_CHUNK];
    loop {
        match decoder.next_frame().context("reading from the host")? {
            Some(Frame::Run(req)) => return Ok(Some(req)),
            Some(other) => bail!("expected a Run frame from the host, got {other:?}"),
            None => {}
        }
        let mut fds = vec![
            PollFd::new(conn.as_fd(), PollFlags::POLLIN),
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
        ];
        if let Some(e) = exec {
            fds.push(PollFd::new(e.listener.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(Errno::EINTR) => continue,
            r => r.context("poll")?,
        };
        if let (Some(e), Some(true)) = (exec, fds.get(2).map(ready)) {
            e.accept(conn);
        }
        if ready(&fds[1]) {
            // No command yet: nothing to reap, and nothing to shut down.
            drain_signals(signals, |_| {});
            reap(None);
        }
        if ready(&fds[0]) {
            let n = conn.read(&mut buf).context("reading from the host")?;
            if n == 0 {
                decoder.finish().context("reading from the host")?;
                return Ok(None);
            }
            decoder.push(&buf[..n]);
        }
    }
}

/// A running command and the state of its stdio.
pub(super) struct Session<'d> {
    pid: i32,
    decoder: &'d mut FrameDecoder,
    stdin: Option<OwnedFd>,
    stdin_pending: Vec<u8>,
    stdin_eof: bool,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    exited: Option<ExitReport>,
    shutdown: Option<(&'static str, Instant)>,
    host_gone: bool,
    /// A VM container's cgroup in the guest, watched for OOM kills.
    oom: Option<OomWatch>,
}

impl<'d> Session<'d> {
    pub(super) fn new(child: Spawned, decoder: &'d mut FrameDecoder, oom: Option<OomWatch>) -> Session<'d> {
        // Writes to the command's stdin must never block the loop.
        let _ = set_nonblocking(&child.stdin);
        Session {
            pid: child.pid,
            decoder,
            stdin: Some(child.stdin),
            stdin_pending: Vec::new(),
            stdin_eof: false,
            stdout: Some(child.stdout),
            stderr: Some(child.stderr),
            exited: None,
            shutdown: None,
            host_gone: false,
            oom,
        }
    }

    pub(super) fn run(
        mut self,
        conn: &mut VsockStream,
        signals: &SignalFd,
        exec: Option<&ExecPort>,
    ) -> anyhow::Result<ExitReport> {
        let mut buf = vec![0u8; STDIO_CHUNK];
        // Frames that arrived together with Run.
        self.handle_frames()?;
        while self.exited.is_none() {
            self.escalate_shutdown();
            let (mut fds, slots) = self.poll_set(conn, signals, exec);
            match poll(&mut fds, timeout_of(self.next_deadline())) {
                Err(Errno::EINTR) => continue,
                r => r.context("poll")?,
            };
            let is_ready = |slot: Option<usize>| slot.is_some_and(|i| ready(&fds[i]));
            let (conn_ready, out_ready, err_ready, in_ready, sig_ready) = (
                is_ready(slots.conn),
                is_ready(slots.stdout),
                is_ready(slots.stderr),
                is_ready(slots.stdin),
                is_ready(slots.signals),
            );
            let exec_ready = is_ready(slots.exec);
            let oom_ready = is_ready(slots.oom);
            drop(fds);
            // Before the exit of a process the OOM killer ended: the host relays the OOM
            // before it hears of the exit.
            if oom_ready {
                if let Some(kills) = self.oom.as_mut().and_then(OomWatch::check) {
                    send(conn, &Frame::Oom(kills))?;
                }
            }
            if let (Some(e), true) = (exec, exec_ready) {
                e.accept(conn);
            }
            if conn_ready {
                self.read_host(conn, &mut buf)?;
            }
            if out_ready {
                self.pump_output(conn, &mut buf, false, false)?;
            }
            if err_ready {
                self.pump_output(conn, &mut buf, true, false)?;
            }
            if in_ready {
                self.write_stdin();
            }
            self.close_stdin_when_done();
            if sig_ready {
                self.handle_signals(signals);
            }
        }
        // A kill's count is in memory.events before its SIGKILL is sent, but the inotify
        // event for it comes from a kernel worker, maybe after the exit was seen: look once
        // more, so that the host hears of the OOM before the exit.
        if let Some(kills) = self.oom.as_mut().and_then(OomWatch::check) {
            send(conn, &Frame::Oom(kills))?;
        }
        // The command is gone; what it wrote is in the pipes. Read that much and no more:
        // a background process it left may hold the pipes open for ever.
        for fd in [&self.stdout, &self.stderr].into_iter().flatten() {
            let _ = set_nonblocking(fd);
        }
        self.pump_output(conn, &mut buf, false, true)?;
        self.pump_output(conn, &mut buf, true, true)?;
        if self.host_gone {
            bail!("the host closed the connection while the command ran");
        }
        let mut report = self.exited.take().unwrap_or(ExitReport { code: 255, signal: None, shutdown: None });
        report.shutdown = self.shutdown.map(|(what, _)| what.to_string());
        Ok(report)
    }

    fn poll_set<'a>(
        &'a self,
        conn: &'a VsockStream,
        signals: &'a SignalFd,
        exec: Option<&'a ExecPort>,
    ) -> (Vec<PollFd<'a>>, Slots) {
        let mut fds = Vec::with_capacity(7);
        let mut slot = |fd: PollFd<'a>| {
            fds.push(fd);
            Some(fds.len() - 1)
        };
        let slots = Slots {
            conn: if self.host_gone { None } else { slot(PollFd::new(conn.as_fd(), PollFlags::POLLIN)) },
            stdout: self.stdout.as_ref().and_then(|fd| slot(PollFd::new(fd.as_fd(), PollFlags::POLLIN))),
            stderr: self.stderr.as_ref().and_then(|fd| slot(PollFd::new(fd.as_fd(), PollFlags::POLLIN))),
            stdin: match &self.stdin {
                Some(fd) if !self.stdin_pending.is_empty() => {
                    slot(PollFd::new(fd.as_fd(), PollFlags::POLLOUT))
                }
                _ => None,
            },
            signals: slot(PollFd::new(signals.as_fd(), PollFlags::POLLIN)),
            exec: exec.and_then(|e| slot(PollFd::new(e.listener.as_fd(), PollFlags::POLLIN))),
            oom: self.oom.as_ref().and_then(|o| slot(PollFd::new(o.fd(), PollFlags::POLLIN))),
        };
        (fds, slots)
    }

    fn read_host(&mut self, conn: &mut VsockStream, buf: &mut [u8]) -> anyhow::Result<()> {
        let n = match conn.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(_) => 0,
        };
        if n == 0 {
            // The host is gone: nobody will see the output or the status. End the command.
            self.host_gone = true;
            let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
            return Ok(());
        }
        self.decoder.push(&buf[..n]);
        self.handle_frames()
    }

    fn handle_frames(&mut self) -> anyhow::Result<()> {
        while let Some(frame) = self.decoder.next_frame().context("reading from the host")? {
            match frame {
                Frame::Stdin(bytes) => {
                    if self.stdin.is_some() {
                        self.stdin_pending.extend_from_slice(&bytes);
                    }
                }
                Frame::StdinEof => self.stdin_eof = true,
                Frame::Resize(size) => {
                    // The pty's master, with a terminal; a pipe says ENOTTY, which is fine.
                    if let Some(fd) = &self.stdout {
                        let ws = libc::winsize {
                            ws_row: size.rows,
                            ws_col: size.cols,
                            ws_xpixel: 0,
                            ws_ypixel: 0,
                        };
                        // SAFETY: TIOCSWINSZ reads a winsize from the pointer, which outlives the call.
                        unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
                    }
                }
                Frame::Signal(signo) => match Signal::try_from(signo) {
                    Ok(sig) => {
                        let _ = kill(Pid::from_raw(self.pid), sig);
                    }
                    Err(_) => console::warn(&format!("the host sent an unknown signal {signo}")),
                },
                other => bail!("unexpected frame from the host while the command runs: {other:?}"),
            }
        }
        Ok(())
    }

    /// Sends what one stdio pipe has; at `drain`, everything it has without blocking.
    fn pump_output(
        &mut self,
        conn: &mut VsockStream,
        buf: &mut [u8],
        stderr: bool,
        drain: bool,
    ) -> anyhow::Result<()> {
        let slot = if stderr { &mut self.stderr } else { &mut self.stdout };
        loop {
            let Some(fd) = slot.as_ref() else { return Ok(()) };
            let n = match nix::unistd::read(fd, buf) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return Ok(()),
                Err(_) => 0,
            };
            if n == 0 {
                *slot = None;
                return Ok(());
            }
            if !self.host_gone {
                let bytes = buf[..n].to_vec();
                send(conn, &if stderr { Frame::Stderr(bytes) } else { Frame::Stdout(bytes) })?;
            }
            if !drain {
                return Ok(());
            }
        }
    }

    fn write_stdin(&mut self) {
        let Some(fd) = &self.stdin else { return };
        match nix::unistd::write(fd, &self.stdin_pending) {
            Ok(n) => {
                self.stdin_pending.drain(..n);
            }
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(_) => {
                // EPIPE: the command closed its stdin. The rest of the input has no reader.
                self.stdin = None;
                self.stdin_pending.clear();
            }
        }
    }

    fn close_stdin_when_done(&mut self) {
        if self.stdin_eof && self.stdin_pending.is_empty() {
            self.stdin = None;
        }
    }

    fn handle_signals(&mut self, signals: &SignalFd) {
        let mut requested = None;
        drain_signals(signals, |signo| {
            if let Some(what) = power::shutdown_request(signo) {
                requested = Some(what);
            }
        });
        if let (Some(what), None) = (requested, self.shutdown) {
            console::debug(&format!("{what} requested while the command runs"));
            self.shutdown = Some((what, Instant::now()));
        }
        if let Some(status) = reap(Some(self.pid)) {
            self.exited = Some(status);
        }
    }

    /// A shutdown was requested: give the command a moment to end on its own, then TERM, then
    /// KILL (signals to a process that is gone are harmless).
    fn escalate_shutdown(&self) {
        let Some((_, at)) = self.shutdown else { return };
        let waited = at.elapsed();
        if waited >= SHUTDOWN_KILL {
            let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
        } else if waited >= SHUTDOWN_GRACE {
            let _ = kill(Pid::from_raw(self.pid), Signal::SIGTERM);
        }
    }

    fn next_deadline(&self) -> Option<Duration> {
        let (_, at) = self.shutdown?;
        let waited = at.elapsed();
        let next = if waited < SHUTDOWN_GRACE { SHUTDOWN_GRACE } else { SHUTDOWN_KILL };
        Some(next.saturating_sub(waited).max(Duration::from_millis(50)))
    }
}

/// Indexes into the poll set, for the fds that are in it this round.
struct Slots {
    conn: Option<usize>,
    stdout: Option<usize>,
    stderr: Option<usize>,
    stdin: Option<usize>,
    signals: Option<usize>,
    exec: Option<usize>,
    oom: Option<usize>,
}

/// Reaps every exited child (PID 1 inherits all orphans); returns `pid`'s status if it was
/// among them.
fn reap(pid: Option<i32>) -> Option<ExitReport> {
    let mut found = None;
    loop {
        match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, code)) => {
                if Some(p.as_raw()) == pid {
                    found = Some(ExitReport { code, signal: None, shutdown: None });
                }
            }
            Ok(WaitStatus::Signaled(p, sig, _)) => {
                if Some(p.as_raw()) == pid {
                    let signo = sig as i32;
                    found = Some(ExitReport { code: 128 + signo, signal: Some(signo), shutdown: None });
                }
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return found,
            Ok(_) => {}
        }
    }
}

fn drain_signals(signals: &SignalFd, mut each: impl FnMut(i32)) {
    while let Ok(Some(info)) = signals.read_signal() {
        each(info.ssi_signo as i32);
    }
}

pub(super) fn send(conn: &mut VsockStream, frame: &Frame) -> anyhow::Result<()> {
    protocol::write_frame(conn, frame).context("writing to the host")
}

fn ready(fd: &PollFd) -> bool {
    fd.revents().is_some_and(|r| !r.is_empty())
}

fn set_nonblocking(fd: &OwnedFd) -> nix::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map(|_| ())
}

fn timeout_of(d: Option<Duration>) -> PollTimeout {
    match d {
        None => PollTimeout::NONE,
        // Rounded up so a deadline 0.4 ms away is not a busy loop of zero timeouts.
        Some(d) => PollTimeout::try_from(d.as_millis().saturating_add(1).min(i32::MAX as u128) as u64)
            .unwrap_or(PollTimeout::MAX),
    }
}

/// The guest's CLOCK_BOOTTIME in milliseconds: how long the kernel took to get here.
fn uptime_ms() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(|t| t.tv_sec() as u64 * 1000 + t.tv_nsec() as u64 / 1_000_000)
        .unwrap_or(0)
}
