//! A process `hull exec` starts in a VM container: one vsock stream from the host per process,
//! served by a process the agent forks for it, so that PID 1's loop stays the workload's and
//! each exec'd process has a parent that waits for it alone (PID 1 reaps the server, and the
//! orphans, and nothing else).
//!
//! On the stream: the host's Run, the agent's Started (or Error when the process cannot be
//! started), then stdio, signals and resizes as for the workload, the Exit and the host's Ack.
//! Or one request and its answer: for `kill --all` a Signal (the agent signals every process of
//! the container, answers with an Exit), for `update` an Update (the container's cgroup in the
//! guest takes the new limits: Exit, or Error saying why not), for `events` a QueryStats (the
//! guest cgroup's statistics and OOM counters: GuestStats).

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::unistd::{fork, ForkResult};

use super::console;
use super::power;
use super::protocol::{
    ErrorReport, ExitReport, Frame, FrameDecoder, GuestStats, RunRequest, Started, STDIO_CHUNK,
};
use super::session::{self, send, ExecPort, Session, ACK_TIMEOUT};
use super::vsock::VsockStream;
use std::os::unix::fs::MetadataExt;

/// How long the host has to send the Run after connecting.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// Forks a server for `stream`; the parent (PID 1) goes back to its loop at once. `close`:
/// PID 1's own streams, which the server must not hold open.
pub(super) fn serve_forked(stream: VsockStream, port: &ExecPort, close: &[RawFd]) {
    // SAFETY: the agent is single-threaded, so the child may run any code after fork.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { .. }) => drop(stream),
        Ok(ForkResult::Child) => {
            for fd in close.iter().chain([port.listener.as_fd().as_raw_fd()].iter()) {
                // SAFETY: closing PID 1's descriptors in this copy of its table; this
                // process never uses them.
                unsafe { libc::close(*fd) };
            }
            let code = match serve(stream, port) {
                Ok(()) => 0,
                Err(e) => {
                    console::warn(&format!("exec: {e:#}"));
                    1
                }
            };
            // SAFETY: _exit ends this forked copy without running PID 1's exit paths.
            unsafe { libc::_exit(code) }
        }
        Err(e) => console::warn(&format!("exec: fork: {e}")),
    }
}

fn serve(mut conn: VsockStream, port: &ExecPort) -> anyhow::Result<()> {
    // The forked server's signals: its own SIGCHLD, through a signalfd of its own.
    let signals = power::take_signals().context("blocking signals")?;
    let mut decoder = FrameDecoder::new();
    let req = match read_request(&mut conn, &mut decoder)? {
        Request::Run(req) => req,
        Request::SignalAll(signo) => {
            let report = signal_all(port, signo);
            send(&mut conn, &Frame::Exit(report))?;
            session::wait_for_close(&mut conn, &mut decoder, ACK_TIMEOUT);
            return Ok(());
        }
        Request::Update(resources) => {
            let answer = match update(port, resources) {
                Ok(()) => Frame::Exit(ExitReport { code: 0, signal: None, shutdown: None }),
                Err(e) => Frame::Error(ErrorReport { message: format!("{e:#}") }),
            };
            send(&mut conn, &answer)?;
            session::wait_for_close(&mut conn, &mut decoder, ACK_TIMEOUT);
            return Ok(());
        }
        Request::Network(net) => {
            let adopted = serde_json::from_value(net)
                .context("the network from the host")
                .and_then(|net| super::network::adopt(&net));
            let answer = match adopted {
                Ok(()) => Frame::Exit(ExitReport { code: 0, signal: None, shutdown: None }),
                Err(e) => Frame::Error(ErrorReport { message: format!("{e:#}") }),
            };
            send(&mut conn, &answer)?;
            session::wait_for_close(&mut conn, &mut decoder, ACK_TIMEOUT);
            return Ok(());
        }
        Request::Stats => {
            let answer = match stats(port) {
                Ok(v) => Frame::GuestStats(v),
                Err(e) => Frame::Error(ErrorReport { message: format!("{e:#}") }),
            };
            send(&mut conn, &answer)?;
            session::wait_for_close(&mut conn, &mut decoder, ACK_TIMEOUT);
            return Ok(());
        }
    };
    console::debug(&format!("exec {:?} in {}", req.args, req.cwd));
    // Only a VM container's agent serves exec, and its container exists from boot.
    let spawned = match (port.spec, port.workload, &req.process) {
        (Some(spec), Some(init), Some(process)) => serde_json::from_value(process.clone())
            .context("the process to exec")
            .and_then(|p| super::container::exec(&p, spec, init, &req.sub_cgroups, &req.preserved)),
        _ => Err(anyhow::anyhow!("no container to exec into")),
    };
    let (child, relay) = match spawned {
        Ok(made) => made,
        Err(err) => {
            let program = req.args.first().map(String::as_str).unwrap_or("");
            let message = format!("cannot run {program:?} in the guest: {err:#}");
            send(&mut conn, &Frame::Error(ErrorReport { message }))?;
            session::wait_for_close(&mut conn, &mut decoder, ACK_TIMEOUT);
            return Ok(());
        }
    };
    let relay_port = relay.as_ref().map(|(_, port)| *port);
    send(&mut conn, &Frame::Started(Started { pid: child.pid, relay_port }))?;
    let report = Session::new(child, &mut decoder, None).run(&mut conn, &signals, None)?;
    // What the process wrote last to its preserved fds goes to the host first.
    if let Some((relay, _)) = relay {
        relay.finish();
    }
    send(&mut conn, &Frame::Exit(report))?;
    session::wait_for_close(&mut conn, &mut decoder, ACK_TIMEOUT);
    Ok(())
}

/// What a connection to the exec port asks for.
enum Request {
    /// A process to run.
    Run(RunRequest),
    /// `kill --all`: a signal for every process of the container.
    SignalAll(i32),
    /// `update`: new limits (OCI `linux.resources`) for the container's cgroup.
    Update(serde_json::Value),
    /// `events`: the container cgroup's statistics.
    Stats,
    /// `start`: interfaces the container's network namespace gained after `create`.
    Network(serde_json::Value),
}

/// The container's cgroup in the guest, as its guest spec names it.
fn container_cgroup(port: &ExecPort) -> anyhow::Result<crate::cgroups::Cgroup> {
    let path =
        port.spec.and_then(container_cgroup_path).context("the container has no cgroup in the guest")?;
    crate::cgroups::Cgroup::open(path).with_context(|| format!("the guest cgroup {path}"))
}

/// The guest spec's cgroupsPath.
pub(super) fn container_cgroup_path(spec: &oci_spec::runtime::Spec) -> Option<&str> {
    spec.linux().as_ref()?.cgroups_path().as_ref()?.to_str()
}

/// `update`: the guest cgroup takes the limits it repeats from the spec (memory, cpu, pids;
/// the others are the host cgroup's alone, and the host side sends only these).
fn update(port: &ExecPort, resources: serde_json::Value) -> anyhow::Result<()> {
    let resources: oci_spec::runtime::LinuxResources =
        serde_json::from_value(resources).context("the resources from the host")?;
    container_cgroup(port)?.set(&resources).context("the container's cgroup in the guest")
}

/// `events`: what the guest cgroup counts, as JSON for the GuestStats frame.
fn stats(port: &ExecPort) -> anyhow::Result<serde_json::Value> {
    let cg = container_cgroup(port)?;
    let report = GuestStats { stats: cg.stats(), oom: cg.oom_counters() };
    serde_json::to_value(report).context("the guest's statistics")
}

/// `kill --all`: the signal goes to every process in the container's pid namespace (as
/// natively, the init included). Exit code 0, or 1 when there is no container to signal.
fn signal_all(port: &ExecPort, signo: i32) -> ExitReport {
    let done = |code| ExitReport { code, signal: None, shutdown: None };
    let (Some(init), Ok(sig)) = (port.workload, nix::sys::signal::Signal::try_from(signo)) else {
        return done(1);
    };
    let Ok(theirs) = std::fs::metadata(format!("/proc/{init}/ns/pid")) else { return done(1) };
    let Ok(entries) = std::fs::read_dir("/proc") else { return done(1) };
    for pid in entries.flatten().filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok())) {
        let same = std::fs::metadata(format!("/proc/{pid}/ns/pid"))
            .is_ok_and(|m| m.ino() == theirs.ino() && m.dev() == theirs.dev());
        if same {
            // One that exits meanwhile is no error.
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
        }
    }
    done(0)
}

/// The first frame: the process to run, or a signal for every process.
fn read_request(conn: &mut VsockStream, decoder: &mut FrameDecoder) -> anyhow::Result<Request> {
    let deadline = Instant::now() + RUN_TIMEOUT;
    let mut buf = vec![0u8; STDIO_CHUNK];
    loop {
        match decoder.next_frame().context("reading from the host")? {
            Some(Frame::Run(req)) => return Ok(Request::Run(req)),
            Some(Frame::Signal(signo)) => return Ok(Request::SignalAll(signo)),
            Some(Frame::Update(resources)) => return Ok(Request::Update(resources)),
            Some(Frame::QueryStats) => return Ok(Request::Stats),
            Some(Frame::Network(net)) => return Ok(Request::Network(net)),
            Some(other) => {
                bail!("expected a Run, Signal, Update, QueryStats or Network frame from the host, got {other:?}")
            }
            None => {}
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("the host sent no command within {} s", RUN_TIMEOUT.as_secs());
        }
        let mut fds = [PollFd::new(conn.as_fd(), PollFlags::POLLIN)];
        let ms =
            PollTimeout::try_from(left.as_millis().min(i32::MAX as u128) as u64).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, ms) {
            Err(Errno::EINTR) | Ok(0) => continue,
            r => r.context("poll")?,
        };
        let n = conn.read(&mut buf).context("reading from the host")?;
        if n == 0 {
            bail!("the host closed the exec stream before sending a command");
        }
        decoder.push(&buf[..n]);
    }
}
