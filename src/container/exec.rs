//! `exec`: a new process in a running container, from a Process JSON or runc's flags.

use std::os::fd::{AsFd, OwnedFd};

use oci_spec::runtime::{Capability, LinuxCapabilities, Process, Spec};

use super::backend::ProcessSpec;
use super::create::write_pid_file;
use super::error::{During, Error, IoContext, Result};
use super::wait::Waiter;
use super::{ExecRequest, RuntimeContext};
use crate::state::{State, Status, Store};

pub fn exec(rt: &RuntimeContext, id: &str, req: &ExecRequest) -> Result<u8> {
    exec_inner(rt, id, req).during("exec", id)
}

fn exec_inner(rt: &RuntimeContext, id: &str, req: &ExecRequest) -> Result<u8> {
    let st = Store::existing(&rt.root).read(id)?;
    let paused = match st.status() {
        Status::Running | Status::Created => false,
        Status::Paused if req.ignore_paused => true,
        Status::Paused => {
            return Err(Error::WrongState(
                "cannot exec in a paused container (resume it first, or pass --ignore-paused)".into(),
            ))
        }
        _ => return Err(Error::WrongState("container not running".into())),
    };
    check_sub_cgroups(&req.sub_cgroups)?;
    let config = st.config.clone().unwrap_or_default();
    let process = build_process(req, &config, &st)?;
    let terminal = process.terminal().unwrap_or(false);
    let (console, keep) = match (terminal, &req.console_socket) {
        (false, _) => (None, None),
        (true, Some(p)) => {
            let s = std::os::unix::net::UnixStream::connect(p)
                .doing(|| format!("connect to console socket {}", p.display()))?;
            (Some(OwnedFd::from(s)), None)
        }
        (true, None) if !req.detach => {
            let (x, y) = std::os::unix::net::UnixStream::pair().doing(|| "console socketpair")?;
            (Some(OwnedFd::from(x)), Some(OwnedFd::from(y)))
        }
        (true, None) => return Err(Error::Invalid("--tty with --detach needs --console-socket".into())),
    };
    let waiter = if req.detach { None } else { Some(Waiter::prepare()?) };
    let pid = st.backend.exec(
        &st,
        ProcessSpec {
            process: &process,
            preserve_fds: req.preserve_fds,
            console,
            sub_cgroups: &req.sub_cgroups,
            paused,
        },
    )?;
    if let Some(p) = &req.pid_file {
        write_pid_file(p, pid)?;
    }
    let Some(waiter) = waiter else { return Ok(0) };
    let master = match keep {
        Some(sock) => Some(crate::fdpass::recv_fd(sock.as_fd()).doing(|| "receive the pty master")?.0),
        None => None,
    };
    waiter.wait(pid, master)
}

/// `--cgroup` names a cgroup below the container's: a path that climbs out of it (`..`) would
/// put the process outside the container's limits, so it is refused, as runc refuses it.
fn check_sub_cgroups(subs: &[String]) -> Result<()> {
    match subs.iter().find_map(|s| crate::cgroups::sub_cgroup_refusal(s)) {
        Some(why) => Err(Error::Invalid(why)),
        None => Ok(()),
    }
}

/// The Process to run: --process as given, or the container's own process with the flags'
/// changes (what runc does).
fn build_process(a: &ExecRequest, config: &Spec, st: &State) -> Result<Process> {
    if let Some(path) = &a.process {
        let text = if path.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin()).doing(|| "read process JSON from stdin")?
        } else {
            std::fs::read_to_string(path).doing(|| format!("read {}", path.display()))?
        };
        let p: Process = serde_json::from_str(&text)
            .map_err(|e| Error::Invalid(format!("parse {}: {e}", path.display())))?;
        if p.args().as_ref().is_none_or(|v| v.is_empty()) {
            return Err(Error::Invalid(format!("{}: process.args is empty", path.display())));
        }
        return Ok(p);
    }
    if a.command.is_empty() {
        return Err(Error::Invalid("no command given (and no --process)".into()));
    }
    let mut p = config.process().clone().unwrap_or_default();
    p.set_args(Some(a.command.clone()));
    p.set_terminal(Some(a.tty));
    p.set_console_size(None);
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    let mut env = p.env().clone().unwrap_or_default();
    for e in &a.env {
        let key = e.split('=').next().unwrap_or("");
        env.retain(|x| x.split('=').next() != Some(key));
        env.push(e.clone());
    }
    p.set_env(Some(env));
    if let Some(u) = &a.user {
        p.set_user(st.backend.resolve_user(st, u)?);
    }
    if !a.additional_gids.is_empty() {
        let mut u = p.user().clone();
        u.set_additional_gids(Some(a.additional_gids.clone()));
        p.set_user(u);
    }
    if !a.caps.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_else(empty_caps);
        for name in &a.caps {
            let short = name.trim_start_matches("CAP_");
            let c: Capability =
                short.parse().map_err(|_| Error::Invalid(format!("unknown capability {name}")))?;
            // runc adds --cap to the bounding, effective and permitted sets.
            let with = |set: &Option<oci_spec::runtime::Capabilities>| {
                let mut s = set.clone().unwrap_or_default();
                s.insert(c);
                Some(s)
            };
            let (b, e, pm) = (with(caps.bounding()), with(caps.effective()), with(caps.permitted()));
            caps.set_bounding(b);
            caps.set_effective(e);
            caps.set_permitted(pm);
        }
        p.set_capabilities(Some(caps));
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(prof) = &a.apparmor {
        p.set_apparmor_profile(Some(prof.clone()));
    }
    if let Some(l) = &a.process_label {
        p.set_selinux_label(Some(l.clone()));
    }
    Ok(p)
}

fn empty_caps() -> LinuxCapabilities {
    let mut c = LinuxCapabilities::default();
    c.set_bounding(None);
    c.set_effective(None);
    c.set_permitted(None);
    c.set_inheritable(None);
    c.set_ambient(None);
    c
}
