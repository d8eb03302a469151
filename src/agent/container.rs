//! A VM container's workload in the guest, made by the same native code as a native
//! container's: the host sends the container's spec made for the guest (root on the share,
//! host bind sources replaced by their entries in the binds share, a guest cgroup with the
//! memory, cpu and pids limits, of the hooks only startContainer, no network namespace: see
//! `crate::vm::backend::guest_spec`), and the agent runs `native::create` with it at boot, so
//! that `hull create` fails when the container cannot be made, and the workload gets the
//! spec's namespaces, mounts, devices, masked paths, cgroup limits, user, capabilities,
//! rlimits, no_new_privs and seccomp filter. `start` is the native exec-fifo
//! release; `exec` is `native::exec` into the container's init.
//!
//! The initramfs is the guest's root, where pivot_root cannot work: the container's root is
//! entered with MS_MOVE and chroot (`runc --no-pivot`).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::stat::Mode;
use oci_spec::runtime::{Process, Spec};

use super::spawn::Spawned;
use crate::spec::Bundle;

/// The container's state directory in the guest (on the guest's /run tmpfs).
const STATE_DIR: &str = "/run/hull-container";
/// How long `start` waits for the init to take the fifo's byte.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The container made at boot: its init waits on the exec fifo.
pub struct Created {
    pub init: Spawned,
    /// The preserved fds' relay, when the host preserved any.
    pub relay: Option<crate::fd_relay::guest::Running>,
}

/// `native::create` with the guest spec; the init's stdio are pipes (or, with
/// process.terminal, a pty whose master comes back over a console socket) whose other ends
/// the agent keeps.
/// `host_state` is the state the host's hooks got: the guest's hooks see the same container
/// (its id, bundle and annotations), with the guest's pid.
/// `preserved`: the host's preserved fds; the workload gets one of the same kind at each one's
/// number, which the relay this forks carries to the host ([`crate::fd_relay::guest`]).
pub fn create(
    spec: &Spec,
    root: &Path,
    host_state: Option<&serde_json::Value>,
    preserved: &[crate::fd_relay::Preserved],
) -> anyhow::Result<Created> {
    let state_dir = PathBuf::from(STATE_DIR);
    std::fs::create_dir_all(&state_dir).with_context(|| format!("making {STATE_DIR}"))?;
    let fifo = state_dir.join(crate::state::EXEC_FIFO);
    // 0622 whatever the umask: an init in a user namespace must be able to write it.
    crate::state::make_exec_fifo(&fifo).context("making the exec fifo")?;
    let bundle = Bundle { dir: state_dir.clone(), rootfs: root.to_path_buf(), spec: spec.clone() };
    let terminal = spec.process().as_ref().and_then(|p| p.terminal()).unwrap_or(false);
    let io = Stdio::new(terminal)?;
    let state_for = |pid: i32| {
        let mut state = host_state.cloned().unwrap_or_else(
            || serde_json::json!({"ociVersion": spec.version(), "id": "guest", "bundle": STATE_DIR}),
        );
        if let Some(o) = state.as_object_mut() {
            o.insert("status".into(), "creating".into());
            o.insert("pid".into(), pid.into());
        }
        state
    };
    let mut cgroup = guest_cgroup(spec)?;
    let fds = crate::fd_relay::guest::make(preserved)?;
    let pid = fds.as_fds_of_the_caller(|| {
        io.as_stdio_of_the_caller(|console| {
            crate::native::create(crate::native::CreateConfig {
                bundle: &bundle,
                state_dir: &state_dir,
                no_pivot: true,
                preserve_fds: fds.count(),
                console,
                cgroup: cgroup.as_mut().map(crate::native::Placement::Join),
                state_for: &state_for,
            })
            .map_err(anyhow::Error::from)
        })
    })??;
    let relay = if preserved.is_empty() { None } else { Some(fds.start_relay()?) };
    Ok(Created { init: io.ours(pid)?, relay })
}

/// The container's cgroup in the guest, made with the spec's limits (the guest spec names
/// it); None when the spec names none.
fn guest_cgroup(spec: &Spec) -> anyhow::Result<Option<crate::cgroups::Cgroup>> {
    let Some(path) = spec.linux().as_ref().and_then(|l| l.cgroups_path().as_ref()).and_then(|p| p.to_str())
    else {
        return Ok(None);
    };
    // With the allow rules every container gets (/dev/null and the like), as natively.
    let resources = crate::cgroups::with_default_devices(spec);
    let (cgroup, _) = crate::cgroups::Cgroup::create(path, resources.as_ref())
        .with_context(|| format!("the container's cgroup in the guest ({path})"))?;
    Ok(Some(cgroup))
}

/// Releases the init (what `hull start` does on a native container's fifo): takes its byte,
/// then waits for the fifo's end, which comes when the program replaced the init (it holds
/// the write end, close-on-exec) or the init died, so that the host hears "started" only
/// once the program runs, as `hull start` natively returns.
pub fn start(init_pid: i32) -> anyhow::Result<()> {
    let fifo_path = Path::new(STATE_DIR).join(crate::state::EXEC_FIFO);
    let fifo =
        nix::fcntl::open(&fifo_path, OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC, Mode::empty())
            .context("opening the exec fifo")?;
    let deadline = Instant::now() + START_TIMEOUT;
    let mut released = false;
    loop {
        let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, PollTimeout::from(100u16)).is_ok_and(|n| n > 0) {
            let mut byte = [0u8; 1];
            match nix::unistd::read(&fifo, &mut byte) {
                Ok(1) => released = true,
                // No writer left after the byte: the program runs (or the init died).
                Ok(_) if released => break,
                // No writer yet: the init has not opened the fifo.
                _ => std::thread::sleep(Duration::from_millis(1)),
            }
        }
        if !released && nix::sys::signal::kill(nix::unistd::Pid::from_raw(init_pid), None).is_err() {
            bail!("the container's init exited before start");
        }
        if Instant::now() >= deadline {
            if released {
                // Released, but still not executed: the workload goes on; say so.
                super::console::warn(
                    "the container's init took the exec fifo but has not executed its program yet",
                );
                break;
            }
            bail!("the container's init did not take the exec fifo within {} s", START_TIMEOUT.as_secs());
        }
    }
    let _ = std::fs::remove_file(&fifo_path);
    Ok(())
}

/// `native::exec` of `process` into the container whose init is `init_pid`, from this
/// process (the exec server), which becomes its subreaper and so waits for it. `sub_cgroups`
/// (`exec --cgroup`, below the container's cgroup: `hull exec` refused any `..`) are made in
/// the guest when missing: the guest's cgroup tree is the VM's own, and the host's sub-cgroup,
/// which the stand-in joins, had to exist already.
/// `preserved` (`exec --preserve-fds`): the process gets a descriptor of each one's kind at its
/// number, served by a relay forked here, whose handle and vsock port come back with it.
pub fn exec(
    process: &Process,
    spec: &Spec,
    init_pid: i32,
    sub_cgroups: &[String],
    preserved: &[crate::fd_relay::Preserved],
) -> anyhow::Result<(Spawned, Option<(crate::fd_relay::guest::Running, u32)>)> {
    if let Some(why) = sub_cgroups.iter().find_map(|s| crate::cgroups::sub_cgroup_refusal(s)) {
        bail!(why);
    }
    nix::sys::prctl::set_child_subreaper(true).context("becoming a child subreaper")?;
    let io = Stdio::new(process.terminal().unwrap_or(false))?;
    let linux = spec.linux().as_ref();
    // The container's cgroup in the guest, as natively.
    let cgroup_procs = match linux.and_then(|l| l.cgroups_path().as_ref()).and_then(|p| p.to_str()) {
        Some(path) => match crate::cgroups::Cgroup::open(path) {
            Ok(cg) => {
                let files = cg.procs_files(sub_cgroups);
                if !sub_cgroups.is_empty() {
                    for file in &files {
                        if let Some(dir) = file.parent() {
                            std::fs::create_dir_all(dir)
                                .with_context(|| format!("making the sub-cgroup {}", dir.display()))?;
                        }
                    }
                }
                files
            }
            Err(_) => Vec::new(),
        },
        None => Vec::new(),
    };
    let fds = crate::fd_relay::guest::make(preserved)?;
    let pid = fds.as_fds_of_the_caller(|| {
        io.as_stdio_of_the_caller(|console| {
            crate::native::exec(crate::native::ExecConfig {
                init_pid,
                process,
                linux,
                preserve_fds: fds.count(),
                console,
                cgroup_procs,
                join_after_exec: false,
            })
            .map_err(anyhow::Error::from)
        })
    })??;
    let relay = if preserved.is_empty() { None } else { Some(fds.start_serving()?) };
    Ok((io.ours(pid)?, relay))
}

/// The new process's stdio, both ends.
enum Stdio {
    Pipes {
        theirs: [OwnedFd; 3],
        ours: [OwnedFd; 3],
    },
    /// The console socket: theirs goes to native code, the master comes back on ours.
    Terminal {
        theirs: UnixStream,
        ours: UnixStream,
    },
}

impl Stdio {
    fn new(terminal: bool) -> anyhow::Result<Stdio> {
        if terminal {
            let (ours, theirs) = UnixStream::pair().context("console socketpair")?;
            return Ok(Stdio::Terminal { theirs, ours });
        }
        let pipe = || nix::unistd::pipe2(OFlag::O_CLOEXEC).context("stdio pipe");
        let (in_r, in_w) = pipe()?;
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        Ok(Stdio::Pipes { theirs: [in_r, out_w, err_w], ours: [in_w, out_r, err_r] })
    }

    /// Runs `make` (native create or exec, which hand the caller's stdio to the process)
    /// with this process's fds 0-2 on the new process's ends, and puts its own back after.
    fn as_stdio_of_the_caller(
        &self,
        make: impl FnOnce(Option<OwnedFd>) -> anyhow::Result<i32>,
    ) -> anyhow::Result<i32> {
        match self {
            Stdio::Terminal { theirs, .. } => {
                let console = OwnedFd::from(theirs.try_clone().context("console socket")?);
                make(Some(console))
            }
            Stdio::Pipes { theirs, .. } => {
                let saved: Vec<OwnedFd> = (0..3)
                    .map(|fd| {
                        // SAFETY: fds 0-2 are open (init::ensure_stdio); dup of one is a new fd
                        // that only this OwnedFd owns.
                        let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
                        if new < 0 {
                            return Err(std::io::Error::last_os_error()).context("saving stdio");
                        }
                        // SAFETY: `new` is a fresh descriptor owned by nothing else.
                        Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(new) })
                    })
                    .collect::<anyhow::Result<_>>()?;
                let swap = |from: &[OwnedFd]| {
                    for (fd, src) in from.iter().enumerate() {
                        // SAFETY: dup2 onto a standard fd number this process owns; the old
                        // one is saved above (or is the one being restored).
                        unsafe { libc::dup2(src.as_raw_fd(), fd as i32) };
                    }
                };
                swap(theirs);
                let made = make(None);
                swap(&saved);
                made
            }
        }
    }

    /// Our ends, as the session pumps them, once the process exists.
    fn ours(self, pid: i32) -> anyhow::Result<Spawned> {
        match self {
            Stdio::Pipes { ours: [stdin, stdout, stderr], .. } => Ok(Spawned { pid, stdin, stdout, stderr }),
            Stdio::Terminal { ours, theirs } => {
                drop(theirs);
                let (master, _) = crate::fdpass::recv_fd(ours.as_fd()).context("receiving the pty master")?;
                let stdin = master.try_clone().context("pty master")?;
                // Everything comes on the pty: stderr is a pipe already at its end.
                let (stderr, writer) = nix::unistd::pipe2(OFlag::O_CLOEXEC).context("pipe")?;
                drop(writer);
                Ok(Spawned { pid, stdin, stdout: master, stderr })
            }
        }
    }
}
