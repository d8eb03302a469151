//! The last steps before the user's program runs: find it, become its user, enter its cwd,
//! leave nothing of hull's behind (fds, signal state), exec.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow};
use nix::unistd::{chdir, execve, setgroups, setresgid, setresuid, Gid, Uid};
use oci_spec::runtime::{Linux, LinuxIOPriority, LinuxPersonality, PosixRlimit, Process, Scheduler};

use super::capabilities::CapPlan;
use super::error::{msg, Context, Result};
use super::{lsm, rlimits, scheduling};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Everything exec needs, checked inside the container before `create` reports success.
pub struct Prepared {
    program: CString,
    args: Vec<CString>,
    env: Vec<CString>,
    cwd: PathBuf,
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
    umask: Option<u32>,
    no_new_privs: bool,
    preserve_fds: u32,
    seccomp: Option<super::seccomp::Filter>,
    caps: CapPlan,
    rlimits: Vec<PosixRlimit>,
    personality: Option<LinuxPersonality>,
    mempolicy: Option<super::mempolicy::Policy>,
    io_priority: Option<LinuxIOPriority>,
    scheduler: Option<Scheduler>,
    affinity: Option<String>,
    apparmor: Option<String>,
    selinux: Option<String>,
}

fn cstr(s: &str, what: &str) -> Result<CString> {
    CString::new(s).map_err(|_| super::error::Error::Msg(format!("{what} contains a NUL byte")))
}

/// Finds the program the way execvp would, but in the container's PATH, and checks cwd.
pub fn prepare(
    p: &Process,
    linux: Option<&Linux>,
    preserve_fds: u32,
    seccomp: Option<super::seccomp::Filter>,
) -> Result<Prepared> {
    let args = p.args().clone().unwrap_or_default();
    let Some(arg0) = args.first() else { return msg("process.args is empty") };
    let env: Vec<String> = p.env().clone().unwrap_or_default();
    let path_var = env.iter().find_map(|e| e.strip_prefix("PATH=")).unwrap_or(DEFAULT_PATH).to_string();
    let cwd = p.cwd().clone();
    if cwd.starts_with("/proc/self/fd") || cwd.starts_with("/proc/thread-self/fd") {
        return msg(format!("process.cwd {}: a path through /proc/self/fd is refused", cwd.display()));
    }
    let meta = std::fs::metadata(&cwd).ctx(|| format!("process.cwd {}", cwd.display()))?;
    if !meta.is_dir() {
        return msg(format!("process.cwd {}: not a directory", cwd.display()));
    }
    let program = find_program(arg0, &path_var, &cwd)?;
    let mempolicy = match linux.and_then(|l| l.memory_policy().as_ref()) {
        Some(p) => {
            let p = super::mempolicy::Policy::from_spec(p)?;
            p.check()?;
            Some(p)
        }
        None => None,
    };
    let user = p.user();
    Ok(Prepared {
        program: CString::new(program.as_os_str().as_bytes())
            .map_err(|_| super::error::Error::Msg("program path contains a NUL byte".into()))?,
        args: args.iter().map(|a| cstr(a, "process.args")).collect::<Result<_>>()?,
        env: env.iter().map(|e| cstr(e, "process.env")).collect::<Result<_>>()?,
        cwd,
        uid: user.uid(),
        gid: user.gid(),
        groups: user.additional_gids().clone().unwrap_or_default(),
        umask: user.umask(),
        no_new_privs: p.no_new_privileges().unwrap_or(false),
        preserve_fds,
        seccomp,
        caps: CapPlan::from_spec(p.capabilities().as_ref())?,
        rlimits: p.rlimits().clone().unwrap_or_default(),
        personality: linux.and_then(|l| l.personality().clone()),
        mempolicy,
        io_priority: *p.io_priority(),
        scheduler: p.scheduler().clone(),
        affinity: p.exec_cpu_affinity().as_ref().and_then(|a| a.cpu_affinity_final().clone()),
        apparmor: p.apparmor_profile().clone().filter(|s| !s.is_empty()),
        selinux: p.selinux_label().clone().filter(|s| !s.is_empty()),
    })
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

fn find_program(arg0: &str, path_var: &str, cwd: &Path) -> Result<PathBuf> {
    if arg0.contains('/') {
        let p = if Path::new(arg0).is_absolute() { PathBuf::from(arg0) } else { cwd.join(arg0) };
        return match std::fs::metadata(&p) {
            Err(e) => msg(format!("exec: {arg0:?}: {e}")),
            Ok(m) if m.is_dir() => msg(format!("exec: {arg0:?}: is a directory")),
            Ok(_) if !is_executable(&p) => msg(format!("exec: {arg0:?}: permission denied")),
            Ok(_) => Ok(p),
        };
    }
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let cand = Path::new(dir).join(arg0);
        if is_executable(&cand) {
            return Ok(cand);
        }
    }
    msg(format!("exec: {arg0:?}: executable file not found in $PATH"))
}

impl Prepared {
    /// Becomes the user, enters cwd and replaces this process with the program.
    /// Returns only on failure.
    pub fn exec(self) -> super::error::Error {
        match self.exec_inner() {
            Ok(never) => match never {},
            Err(e) => e,
        }
    }

    fn exec_inner(self) -> Result<std::convert::Infallible> {
        // While still fully privileged: limits, personality and scheduling (raising some of
        // them needs capabilities the program may not get).
        rlimits::apply(&self.rlimits)?;
        if let Some(p) = &self.personality {
            scheduling::set_personality(p)?;
        }
        if let Some(p) = &self.io_priority {
            scheduling::set_io_priority(p)?;
        }
        if let Some(s) = &self.scheduler {
            scheduling::set_scheduler(s)?;
        }
        if let Some(list) = &self.affinity {
            scheduling::set_affinity(list)?;
        }
        // The NUMA policy is for the program's memory: set it last of the kernel settings,
        // right before the program (the init checked at create that the kernel takes it).
        if let Some(p) = &self.mempolicy {
            p.set()?;
        }
        // Without no_new_privs, installing a filter needs CAP_SYS_ADMIN, which the capability
        // drop and the user switch below take away: install it here, as runc does (it then
        // covers the rest of this setup). With no_new_privs: last, right before execve.
        let mut seccomp = self.seccomp;
        if !self.no_new_privs {
            if let Some(f) = seccomp.take() {
                f.install()?;
            }
        }
        self.caps.before_setuid()?;
        let gids: Vec<Gid> = self.groups.iter().map(|g| Gid::from_raw(*g)).collect();
        match setgroups(&gids) {
            // A user namespace whose gid map an ordinary user wrote has setgroups denied
            // (native/idmap.rs): with no groups asked for, the ones it has stay, as in runc.
            Err(nix::errno::Errno::EPERM) if gids.is_empty() && setgroups_denied() => {}
            Err(nix::errno::Errno::EPERM) if setgroups_denied() => {
                return msg(
                    "process.user.additionalGids: setgroups is denied in this user namespace (an ordinary \
                     user's own gid mapped alone; map ranges from /etc/subgid to allow it)",
                )
            }
            r => r.ctx(|| "setgroups (process.user.additionalGids)".to_string())?,
        }
        setresgid(Gid::from_raw(self.gid), Gid::from_raw(self.gid), Gid::from_raw(self.gid))
            .ctx(|| format!("setgid {}", self.gid))?;
        setresuid(Uid::from_raw(self.uid), Uid::from_raw(self.uid), Uid::from_raw(self.uid))
            .ctx(|| format!("setuid {}", self.uid))?;
        self.caps.after_setuid()?;
        let mask = self.umask.unwrap_or(0o022);
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
        chdir(&self.cwd).ctx(|| format!("chdir {}", self.cwd.display()))?;
        // A cwd such as /proc/self/fd/N can lead out of the container through an fd hull
        // still holds (CVE-2024-21626): the kernel then reports the directory as unreachable.
        match std::env::current_dir() {
            Ok(d) if d.starts_with("/") => {}
            _ => return msg(format!("process.cwd {}: outside the container's root", self.cwd.display())),
        }
        if self.no_new_privs {
            nix::sys::prctl::set_no_new_privs().ctx(|| "set no_new_privs".to_string())?;
        }
        lsm::set_exec_labels(self.apparmor.as_deref(), self.selinux.as_deref())?;
        reset_signals();
        close_fds_from(3 + self.preserve_fds)?;
        // Last: from here on every syscall is filtered, execve included.
        if let Some(f) = seccomp {
            f.install()?;
        }
        execve(&self.program, &self.args, &self.env)
            .ctx(|| format!("exec {}", self.program.to_string_lossy()))
    }
}

/// The program gets every signal's default action and an empty mask. Rust ignores SIGPIPE,
/// hull may have blocked signals, and whatever started hull may have ignored some (nohup's
/// SIGHUP, a supervisor's SIGPIPE or SIGINT): an ignored signal stays ignored across execve,
/// and a shell cannot even `trap` a signal that was ignored when it started. crun resets them
/// all the same way (podman's kill tests trap every signal).
fn reset_signals() {
    // The kernel's struct sigaction on x86_64 (and the other arches without their own
    // layout). The system call, not libc's sigaction: glibc refuses to touch signals 32 and
    // 33, which it keeps for itself, and a caller that ignored them would pass that on.
    #[repr(C)]
    struct KernelSigaction {
        handler: libc::sighandler_t,
        flags: libc::c_ulong,
        restorer: usize,
        mask: u64,
    }
    let default = KernelSigaction { handler: libc::SIG_DFL, flags: 0, restorer: 0, mask: 0 };
    for signo in 1..=64 {
        if signo == libc::SIGKILL || signo == libc::SIGSTOP {
            continue;
        }
        // SAFETY: rt_sigaction reads a valid local struct of the kernel's layout (sigsetsize
        // 8) and writes nothing (null old action); SIG_DFL installs no handler code, and
        // this process is single-threaded here, about to exec.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                signo,
                &default,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            )
        };
    }
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

/// Marks every fd from `first` on close-on-exec, so none of hull's reaches the program.
fn close_fds_from(first: u32) -> Result<()> {
    // SAFETY: close_range only changes flags of this process's fds; no pointers involved.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    if rc == 0 {
        return Ok(());
    }
    // Older kernels: walk /proc/self/fd.
    let entries = std::fs::read_dir("/proc/self/fd").ctx(|| "list /proc/self/fd".to_string())?;
    for e in entries.flatten() {
        if let Some(fd) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) {
            if fd >= first as i32 {
                // SAFETY: setting FD_CLOEXEC on an fd number touches no memory.
                unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
            }
        }
    }
    Ok(())
}

/// True when this process's user namespace refuses setgroups (/proc/self/setgroups "deny").
fn setgroups_denied() -> bool {
    std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny")
}
