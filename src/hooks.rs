//! OCI hooks: programs the spec names, run at fixed points of the lifecycle with the
//! container's state JSON on stdin.
//!
//! Where each kind runs (who calls [`run`]):
//! - prestart, createRuntime: `hull create` (runtime namespace), after the container's
//!   namespaces and mounts exist, before pivot_root;
//! - createContainer: the init, in the container's namespaces, before pivot_root (a VM
//!   container's: the VMM init, on the host, in the namespaces the VMM holds);
//! - startContainer: the init, after `start`, right before exec of the program (a VM
//!   container's: the init in the guest);
//! - poststart: `hull start`, after the program has been released;
//! - poststop: `hull delete`, after the container has stopped.

use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{signal, SigHandler, Signal};
use nix::sys::stat::{umask, Mode};
use oci_spec::runtime::{Hook, Hooks, Spec};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Prestart => "prestart",
            Kind::CreateRuntime => "createRuntime",
            Kind::CreateContainer => "createContainer",
            Kind::StartContainer => "startContainer",
            Kind::Poststart => "poststart",
            Kind::Poststop => "poststop",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{kind} hook {path}: {msg}")]
    Failed { kind: &'static str, path: String, msg: String },
}

/// The hooks of one kind in the spec.
pub fn of_kind(spec: &Spec, kind: Kind) -> Vec<Hook> {
    of_kind_in(spec.hooks().as_ref(), kind)
}

/// The hooks of one kind in a hooks section (as kept in the container's state).
pub fn of_kind_in(hooks: Option<&Hooks>, kind: Kind) -> Vec<Hook> {
    let Some(h) = hooks else { return vec![] };
    #[allow(deprecated)]
    let list = match kind {
        Kind::Prestart => h.prestart(),
        Kind::CreateRuntime => h.create_runtime(),
        Kind::CreateContainer => h.create_container(),
        Kind::StartContainer => h.start_container(),
        Kind::Poststart => h.poststart(),
        Kind::Poststop => h.poststop(),
    };
    list.clone().unwrap_or_default()
}

/// True when the container's init must stop for the parent's hooks and the state JSON: the
/// spec has a hook that runs at create, or a startContainer hook (which needs that state).
pub fn init_needs_state(hooks: Option<&Hooks>) -> bool {
    [Kind::Prestart, Kind::CreateRuntime, Kind::CreateContainer, Kind::StartContainer]
        .iter()
        .any(|k| !of_kind_in(hooks, *k).is_empty())
}

/// Runs the spec's hooks of `kind` in order, each with `state` (the OCI state JSON) on stdin;
/// the first failure stops the rest and is returned.
pub fn run(spec: &Spec, kind: Kind, state: &serde_json::Value) -> Result<(), HookError> {
    run_in(spec.hooks().as_ref(), kind, state)
}

/// [`run`] for a hooks section kept in the container's state.
pub fn run_in(hooks: Option<&Hooks>, kind: Kind, state: &serde_json::Value) -> Result<(), HookError> {
    for hook in of_kind_in(hooks, kind) {
        run_one(kind, &hook, state)?;
    }
    Ok(())
}

/// Runs every hook of `kind` in order and warns about each one that fails: for poststart and
/// poststop the runtime spec says a failure is a warning and "the remaining hooks and lifecycle
/// continue as if the hook had succeeded".
pub fn run_in_warning(hooks: Option<&Hooks>, kind: Kind, state: &serde_json::Value) {
    for hook in of_kind_in(hooks, kind) {
        if let Err(e) = run_one(kind, &hook, state) {
            crate::logging::warn(&e.to_string());
        }
    }
}

/// The state JSON for a hook that runs inside the container (createContainer,
/// startContainer): the spec wants the pid as the container sees it, and runc reports
/// "creating" for createContainer and "created" for startContainer.
pub fn in_container(state: &serde_json::Value, status: &str) -> serde_json::Value {
    let mut s = state.clone();
    if let Some(o) = s.as_object_mut() {
        o.insert("pid".into(), std::process::id().into());
        o.insert("status".into(), status.into());
    }
    s
}

/// How much of a hook's stdout and stderr is kept for the error message (the tail of each).
const KEEP: usize = 8 * 1024;

/// One end of a pipe to or from the hook, non-blocking.
struct Pipe<T> {
    end: Option<T>,
    buf: Vec<u8>,
    truncated: bool,
}

impl<T: AsFd> Pipe<T> {
    fn new(end: Option<T>) -> Pipe<T> {
        if let Some(e) = &end {
            // A pipe we cannot make non-blocking still works, only a stuck hook could block us
            // on it; the spawn just made it, so this does not fail in practice.
            let _ = fcntl(e.as_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
        }
        Pipe { end, buf: Vec::new(), truncated: false }
    }

    /// Reads what is there now; closes the pipe at end-of-file or error.
    fn drain(&mut self) {
        let Some(e) = &self.end else { return };
        let mut chunk = [0u8; 4096];
        loop {
            match nix::unistd::read(e.as_fd(), &mut chunk) {
                Ok(0) => {
                    self.end = None;
                    return;
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    if self.buf.len() > 2 * KEEP {
                        let cut = self.buf.len() - KEEP;
                        self.buf.drain(..cut);
                        self.truncated = true;
                    }
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return,
                Err(_) => {
                    self.end = None;
                    return;
                }
            }
        }
    }

    /// The captured text, trimmed, for a message; None when there is none.
    fn text(&self) -> Option<String> {
        let start = self.buf.len().saturating_sub(KEEP);
        let t = String::from_utf8_lossy(&self.buf[start..]).trim().to_string();
        if t.is_empty() {
            return None;
        }
        Some(if self.truncated || start > 0 { format!("...{t}") } else { t })
    }
}

/// Writes as much of `data[*done..]` as the pipe takes now; closes the pipe when all is
/// written or the hook closed its end (EPIPE: a hook need not read its stdin).
fn feed(stdin: &mut Option<ChildStdin>, data: &[u8], done: &mut usize) {
    while let Some(w) = stdin.as_ref() {
        if *done >= data.len() {
            *stdin = None;
            return;
        }
        match nix::unistd::write(w.as_fd(), &data[*done..]) {
            Ok(n) => *done += n,
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => return,
            // EPIPE and anything else: the hook does not want (the rest of) its input.
            Err(_) => *stdin = None,
        }
    }
}

/// A pidfd for the child, readable once it exits; None on kernels without pidfd_open (then
/// the loop polls with a short tick).
fn pidfd(child: &Child) -> Option<OwnedFd> {
    let pid = libc::pid_t::try_from(child.id()).ok()?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; no pointers.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    let fd = i32::try_from(fd).ok()?;
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Keeps SIGPIPE ignored while a hook runs (Rust's runtime ignores it already; this holds even
/// if something reset it), so a hook that closes its stdin cannot kill hull.
struct IgnoreSigpipe(Option<SigHandler>);

impl IgnoreSigpipe {
    fn new() -> IgnoreSigpipe {
        // SAFETY: SIG_IGN installs no handler code; hull runs hooks from a single thread.
        IgnoreSigpipe(unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) }.ok())
    }
}

impl Drop for IgnoreSigpipe {
    fn drop(&mut self) {
        if let Some(old) = self.0 {
            if !matches!(old, SigHandler::SigIgn) {
                // SAFETY: restores the disposition that was in place before `new`.
                let _ = unsafe { signal(Signal::SIGPIPE, old) };
            }
        }
    }
}

fn describe(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    match status.signal() {
        Some(sig) => match Signal::try_from(sig) {
            Ok(s) => format!("killed by signal {s}"),
            Err(_) => format!("killed by signal {sig}"),
        },
        None => format!("{status}"),
    }
}

fn run_one(kind: Kind, hook: &Hook, state: &serde_json::Value) -> Result<(), HookError> {
    let fail =
        |msg: String| HookError::Failed { kind: kind.name(), path: hook.path().display().to_string(), msg };
    let input = serde_json::to_vec(state).map_err(|e| fail(format!("encode state: {e}")))?;
    let mut cmd = Command::new(hook.path());
    // args[0] is argv[0]; without args, argv[0] is the path (Command's default).
    if let Some([arg0, rest @ ..]) = hook.args().as_deref() {
        cmd.arg0(arg0).args(rest);
    }
    cmd.env_clear();
    for e in hook.env().as_deref().unwrap_or_default() {
        // Validation let only KEY=VALUE through.
        if let Some((k, v)) = e.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let _sigpipe = IgnoreSigpipe::new();
    // The init runs with umask 0 (device nodes get exactly their modes); a hook must not
    // create world-writable files because of that: it gets the usual 022 there.
    // Anywhere else the hook inherits hull's umask.
    let old_mask = umask(Mode::from_bits_truncate(0o022));
    if !old_mask.is_empty() {
        umask(old_mask);
    }
    let spawned = cmd.spawn();
    umask(old_mask);
    let mut child = spawned.map_err(|e| fail(format!("cannot run: {e}")))?;
    let mut stdin = child.stdin.take();
    if let Some(w) = &stdin {
        let _ = fcntl(w.as_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
    }
    let mut out = Pipe::new(child.stdout.take());
    let mut err = Pipe::new(child.stderr.take());
    let pidfd = pidfd(&child);
    let timeout = hook.timeout().and_then(|t| u64::try_from(t).ok()).map(Duration::from_secs);
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut written = 0usize;
    let status = loop {
        feed(&mut stdin, &input, &mut written);
        out.drain();
        err.drain();
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => {}
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!("wait: {e}")));
            }
        }
        let left = match deadline {
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    let _ = child.kill();
                    let _ = child.wait();
                    out.drain();
                    err.drain();
                    let secs = timeout.map(|t| t.as_secs()).unwrap_or_default();
                    return Err(fail(with_output(format!("timed out after {secs}s (killed)"), &out, &err)));
                }
                Some(d - now)
            }
            None => None,
        };
        // Sleep until the hook exits, writes, takes input, or the deadline; without a pidfd,
        // wake up every 10 ms to look at the child.
        let cap = if pidfd.is_some() { Duration::from_secs(1) } else { Duration::from_millis(10) };
        let wait = left.map_or(cap, |l| l.min(cap));
        let ms = u16::try_from(wait.as_millis().max(1)).unwrap_or(u16::MAX);
        let mut fds = Vec::with_capacity(4);
        if let Some(w) = &stdin {
            fds.push(PollFd::new(w.as_fd(), PollFlags::POLLOUT));
        }
        if let Some(r) = &out.end {
            fds.push(PollFd::new(r.as_fd(), PollFlags::POLLIN));
        }
        if let Some(r) = &err.end {
            fds.push(PollFd::new(r.as_fd(), PollFlags::POLLIN));
        }
        if let Some(p) = &pidfd {
            fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!("poll: {e}")));
            }
        }
    };
    // What the hook wrote before it exited; a child it left behind may keep the pipes open,
    // so take what is there and do not wait for end-of-file.
    out.drain();
    err.drain();
    if status.success() {
        return Ok(());
    }
    Err(fail(with_output(describe(status), &out, &err)))
}

/// `msg`, then the hook's stderr and stdout when it wrote any (runc shows both).
fn with_output<A: AsFd, B: AsFd>(msg: String, out: &Pipe<A>, err: &Pipe<B>) -> String {
    let mut m = msg;
    if let Some(t) = err.text() {
        m.push_str(&format!("; stderr: {t}"));
    }
    if let Some(t) = out.text() {
        m.push_str(&format!("; stdout: {t}"));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sh_hook(script: &str, timeout: Option<i64>) -> Hook {
        serde_json::from_value(json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", script],
            "env": ["PATH=/usr/bin:/bin"],
            "timeout": timeout,
        }))
        .unwrap()
    }

    fn msg(r: Result<(), HookError>) -> String {
        match r {
            Ok(()) => panic!("the hook should fail"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn state_reaches_stdin_and_success_is_ok() {
        let state = json!({"id": "abc", "pid": 42});
        let hook = sh_hook(r#"read -r line; [ "$line" = '{"id":"abc","pid":42}' ]"#, None);
        run_one(Kind::CreateRuntime, &hook, &state).unwrap();
    }

    #[test]
    fn failure_names_kind_path_status_and_output() {
        let hook = sh_hook("echo out; echo err >&2; exit 3", None);
        let m = msg(run_one(Kind::Prestart, &hook, &json!({})));
        assert_eq!(m, "prestart hook /bin/sh: exit status 3; stderr: err; stdout: out");
    }

    #[test]
    fn death_by_signal_is_a_failure() {
        let hook = sh_hook("kill -TERM $$", None);
        let m = msg(run_one(Kind::Poststop, &hook, &json!({})));
        assert!(m.contains("killed by signal SIGTERM"), "{m}");
    }

    #[test]
    fn timeout_kills_the_hook() {
        let hook = sh_hook("exec sleep 30", Some(1));
        let t = Instant::now();
        let m = msg(run_one(Kind::CreateRuntime, &hook, &json!({})));
        assert!(m.contains("timed out after 1s"), "{m}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_hook_that_ignores_a_big_stdin_is_fine() {
        let state = json!({"big": "x".repeat(1 << 20)});
        run_one(Kind::Poststart, &sh_hook("exit 0", None), &state).unwrap();
        // And one that reads only a little, then fails: the failure is what is reported.
        let m = msg(run_one(Kind::Poststart, &sh_hook("head -c 10 >/dev/null; exit 4", None), &state));
        assert!(m.contains("exit status 4"), "{m}");
    }

    #[test]
    fn output_is_capped() {
        let hook = sh_hook("head -c 1000000 /dev/zero | tr '\\0' a >&2; exit 1", None);
        let m = msg(run_one(Kind::Poststart, &hook, &json!({})));
        assert!(m.len() < 2 * KEEP, "{}", m.len());
        assert!(m.contains("stderr: ...aaa"), "{}", &m[..100]);
    }

    #[test]
    fn missing_program_is_reported() {
        let hook: Hook = serde_json::from_value(json!({"path": "/nonexistent/hook"})).unwrap();
        let m = msg(run_one(Kind::CreateRuntime, &hook, &json!({})));
        assert!(m.starts_with("createRuntime hook /nonexistent/hook: cannot run:"), "{m}");
    }

    #[test]
    fn in_container_sets_pid_and_status() {
        let s = in_container(&json!({"id": "x", "pid": 77, "status": "creating"}), "created");
        assert_eq!(s["pid"], std::process::id());
        assert_eq!(s["status"], "created");
        assert_eq!(s["id"], "x");
    }
}
