//! `exec` in a VM container, `hull exec`'s side: the process runs in the guest, and a host
//! process stands for it ([`super::standin`]): that is the pid `exec` returns, writes to
//! `--pid-file` and (without `--detach`) waits for, so containerd-shim-runc-v2 and conmon
//! track a VM container's exec exactly as a native one's.
//!
//! `exec` returns once the guest has started the process; when it cannot be started (no such
//! program, a bad cwd), `exec` fails with the guest's reason, as a native exec does.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult};

use super::error::VmError;
use super::prepare;
use super::standin::{self, StandIn};
use crate::cgroups::Cgroup;
use crate::container::backend::ProcessSpec;
use crate::container::{Error, Result};
use crate::state::State;

/// How long `exec` waits for the stand-in's word, beyond the stand-in's own limits.
const REPORT_TIMEOUT: Duration = Duration::from_secs(standin::START_TIMEOUT.as_secs() + 15);

pub fn exec(st: &State, spec: ProcessSpec) -> Result<i32> {
    if spec.paused {
        return Err(Error::WrongState(
            "cannot exec in a paused VM container: its vCPUs are frozen, so the guest cannot start the process \
             (resume it first)"
                .into(),
        ));
    }
    // An fd that cannot be relayed is refused, naming it, before anything starts.
    let preserved = crate::fd_relay::classify_preserved(spec.preserve_fds).map_err(|why| {
        Error::backend(VmError::Unsupported(format!("--preserve-fds {}: {why}", spec.preserve_fds)))
    })?;
    let socket = st
        .vm_socket
        .clone()
        .ok_or_else(|| Error::backend(VmError::Exec("the container's state names no VMM socket".into())))?;
    let mut request = prepare::request_for(spec.process)?;
    // The process joins them in the guest; the stand-in joins the host's, below.
    request.sub_cgroups = spec.sub_cgroups.to_vec();
    request.preserved = preserved.clone();
    // The stand-in joins the container's cgroup, so `ps` lists it, `kill --all` reaches it
    // (and through it the guest process) and `delete --force` ends it.
    let cgroup_procs = match &st.cgroup {
        Some(p) => Cgroup::open(p).map_err(Error::backend)?.procs_files(spec.sub_cgroups),
        None => Vec::new(),
    };
    let console_size = spec.process.console_size().map(|b| (b.height() as u16, b.width() as u16));
    let standin = StandIn { socket, request, console: spec.console, console_size, cgroup_procs, preserved };
    let (report_rx, report_tx) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
        .map_err(|e| Error::backend(VmError::Exec(format!("pipe: {e}"))))?;
    // `ps` and `podman top` read the VMM's /proc: the stand-in is in its pid namespace. An
    // ordinary user may not join it: it belongs to the VMM's user namespace, whose
    // /proc/PID/ns the non-dumpable VMM keeps from its own user, and setns needs
    // CAP_SYS_ADMIN. The stand-in stays in hull's (the process still runs in the guest).
    if super::userns::unprivileged() {
        crate::logging::debug("rootless: the exec stand-in stays out of the VMM's pid namespace");
    } else {
        super::pidns::next_child_in_vmms(st.pid).map_err(|e| Error::backend(VmError::Exec(e)))?;
    }
    // SAFETY: `hull exec` is single-threaded: no other thread holds a lock the child could
    // need.
    match unsafe { fork() }.map_err(|e| Error::backend(VmError::Exec(format!("fork: {e}"))))? {
        ForkResult::Child => {
            drop(report_rx);
            standin::main(standin, report_tx)
        }
        ForkResult::Parent { child } => {
            drop(report_tx);
            drop(standin);
            match wait_started(&report_rx) {
                Ok(()) => Ok(child.as_raw()),
                Err(msg) => {
                    let _ = kill(child, Signal::SIGKILL);
                    let _ = waitpid(child, None);
                    Err(Error::backend(VmError::Exec(msg)))
                }
            }
        }
    }
}

/// Reads the stand-in's report: `+` once the guest process runs, else why it does not.
fn wait_started(report: &OwnedFd) -> std::result::Result<(), String> {
    let deadline = Instant::now() + REPORT_TIMEOUT;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "the process did not start in the guest within {} s",
                REPORT_TIMEOUT.as_secs()
            ));
        }
        let mut fds = [PollFd::new(report.as_fd(), PollFlags::POLLIN)];
        let ms =
            PollTimeout::try_from(left.as_millis().min(i32::MAX as u128) as u64).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, ms) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(format!("waiting for the exec stand-in: {e}")),
        }
        match nix::unistd::read(report, &mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(format!("reading the exec stand-in's report: {e}")),
        }
    }
    match got.as_slice() {
        [standin::STARTED] => Ok(()),
        [] => Err("the exec stand-in ended before the process started".into()),
        text => Err(String::from_utf8_lossy(text).into_owned()),
    }
}
