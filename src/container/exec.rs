//! `exec`: a new process in a running container, from a Process JSON or runc's flags.

use std::os::fd::{AsFd, OwnedFd};

use anyhow::{bail, Context};
use oci_spec::runtime::{Capability, LinuxCapabilities, Process, Spec, User};

use super::create::write_pid_file;
use super::wait::Waiter;
use crate::cli::exec::Args;
use crate::cli::GlobalOpts;
use crate::state::{Status, Store};

pub fn exec(g: &GlobalOpts, a: Args) -> anyhow::Result<u8> {
    let id = a.id.clone();
    exec_inner(g, a).with_context(|| format!("exec {id}"))
}

fn exec_inner(g: &GlobalOpts, a: Args) -> anyhow::Result<u8> {
    let st = Store::existing(&g.root).read(&a.id)?;
    match st.status() {
        Status::Running | Status::Created => {}
        Status::Paused if a.ignore_paused => {}
        Status::Paused => {
            bail!("cannot exec in a paused container (resume it first, or pass --ignore-paused)")
        }
        _ => bail!("container not running"),
    }
    let cgroup_procs = match &st.cgroup {
        Some(p) => crate::cgroups::Cgroup::open(p)?.procs_files(&a.cgroup),
        None => Vec::new(),
    };
    let config = st.config.clone().unwrap_or_default();
    let process = build_process(&a, &config, st.pid)?;
    let terminal = process.terminal().unwrap_or(false);
    let (console, keep) = match (terminal, &a.console_socket) {
        (false, _) => (None, None),
        (true, Some(p)) => {
            let s = std::os::unix::net::UnixStream::connect(p)
                .with_context(|| format!("connect to console socket {}", p.display()))?;
            (Some(OwnedFd::from(s)), None)
        }
        (true, None) if !a.detach => {
            let (x, y) = std::os::unix::net::UnixStream::pair().context("console socketpair")?;
            (Some(OwnedFd::from(x)), Some(OwnedFd::from(y)))
        }
        (true, None) => bail!("--tty with --detach needs --console-socket"),
    };
    let waiter = if a.detach { None } else { Some(Waiter::prepare()?) };
    let pid = crate::native::exec(crate::native::ExecConfig {
        init_pid: st.pid,
        process: &process,
        linux: config.linux().as_ref(),
        preserve_fds: a.preserve_fds,
        console,
        cgroup_procs,
        join_after_exec: st.status() == Status::Paused,
    })?;
    if let Some(p) = &a.pid_file {
        write_pid_file(p, pid)?;
    }
    let Some(waiter) = waiter else { return Ok(0) };
    let master = match keep {
        Some(sock) => Some(crate::fdpass::recv_fd(sock.as_fd()).context("receive the pty master")?.0),
        None => None,
    };
    waiter.wait(pid, master)
}

/// The Process to run: --process as given, or the container's own process with the flags'
/// changes (what runc does).
fn build_process(a: &Args, config: &Spec, init_pid: i32) -> anyhow::Result<Process> {
    if let Some(path) = &a.process {
        let text = if path.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin()).context("read process JSON from stdin")?
        } else {
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?
        };
        let p: Process = serde_json::from_str(&text).with_context(|| format!("parse {}", path.display()))?;
        if p.args().as_ref().is_none_or(|v| v.is_empty()) {
            bail!("{}: process.args is empty", path.display());
        }
        return Ok(p);
    }
    if a.command.is_empty() {
        bail!("no command given (and no --process)");
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
        p.set_user(resolve_user(u, init_pid)?);
    }
    if !a.additional_gids.is_empty() {
        let mut u = p.user().clone();
        u.set_additional_gids(Some(a.additional_gids.clone()));
        p.set_user(u);
    }
    if !a.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_else(empty_caps);
        for name in &a.cap {
            let short = name.trim_start_matches("CAP_");
            let c: Capability = short.parse().map_err(|_| anyhow::anyhow!("unknown capability {name}"))?;
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

/// uid[:gid] or name[:group], names looked up in the container's /etc/passwd and /etc/group
/// (through the init's root, never the host's files).
fn resolve_user(spec: &str, init_pid: i32) -> anyhow::Result<User> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let root = format!("/proc/{init_pid}/root");
    let lookup = |file: &str, name: &str| -> anyhow::Result<(u32, Option<u32>)> {
        let text = std::fs::read_to_string(format!("{root}/etc/{file}")).unwrap_or_default();
        for line in text.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() >= 3 && f[0] == name {
                let id = f[2].parse().with_context(|| format!("bad id for {name} in /etc/{file}"))?;
                let gid = f.get(3).and_then(|g| g.parse().ok());
                return Ok((id, gid));
            }
        }
        bail!(
            "no {} {name:?} in the container's /etc/{file}",
            if file == "passwd" { "user" } else { "group" }
        )
    };
    let (uid, primary) = match u.parse::<u32>() {
        Ok(n) => (n, None),
        Err(_) => lookup("passwd", u)?,
    };
    let gid = match g {
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => lookup("group", g)?.0,
        },
        None => primary.unwrap_or(0),
    };
    let mut user = User::default();
    user.set_uid(uid);
    user.set_gid(gid);
    Ok(user)
}
