//! Starting the command inside the share, as if the share were the whole machine.
//!
//! The child gets its own mount namespace, the guest's /proc, /sys and /dev bound onto the
//! share's own directories of those names (where it has them), then chroot(share) and
//! chdir(cwd). The binds live in the child's namespace only, so nothing is mounted over the
//! host's directory as far as the rest of the guest is concerned, and they vanish with it.
//!
//! The command runs as root but without CAP_SYS_BOOT (as containers do): `poweroff -f` would
//! halt the guest kernel, which without ACPI cannot power the VM off and would leave it hung.
//! busybox's plain `poweroff` and `reboot` signal PID 1 instead, which the agent handles.

use std::ffi::CString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use super::protocol::{GuestUser, RunRequest};

/// The command's pid and our ends of its stdio pipes.
pub struct Spawned {
    pub pid: i32,
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// linux/capability.h; dropped from the command's bounding set.
const CAP_SYS_BOOT: libc::c_ulong = 22;

/// What the guest shares with the command, when the share has a directory for it.
const GUEST_MOUNTS: [&str; 3] = ["proc", "sys", "dev"];

/// The exit code a shell gives a command that could not be started: 127 when it is not
/// there, 126 when it is there but cannot be run.
pub fn exit_code_for_spawn_error(err: &io::Error) -> i32 {
    match err.kind() {
        io::ErrorKind::NotFound => 127,
        _ => 126,
    }
}

/// Starts `req` with `root` as its root (vm-run's command; a VM container's workload goes
/// through `native::create`, see `container.rs`).
pub fn spawn(req: &RunRequest, root: &Path) -> io::Result<Spawned> {
    let Some(program) = req.args.first() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no command given"));
    };
    let binds = guest_mount_binds(root)?;
    let root_c = cstring(root.as_os_str().as_bytes())?;
    let cwd_c = cstring(req.cwd.as_bytes())?;
    let user = req.user.clone();

    let mut cmd = Command::new(program);
    cmd.args(&req.args[1..]).env_clear();
    // With a terminal: the pty's slave is the command's stdio and controlling terminal, and
    // the agent keeps the master (its stdout and stdin); stderr is a pipe that is at its end.
    let pty = if req.terminal {
        let pty = nix::pty::openpty(None, None).map_err(io::Error::from)?;
        // Neither end leaks into the command past its stdio (dup2 clears the flag there).
        for fd in [&pty.master, &pty.slave] {
            nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC))
                .map_err(io::Error::from)?;
        }
        let slave = || pty.slave.try_clone().map(Stdio::from);
        cmd.stdin(slave()?).stdout(slave()?).stderr(slave()?);
        Some(pty)
    } else {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        None
    };
    let controlling_tty = pty.is_some();
    for entry in &req.env {
        match entry.split_once('=') {
            Some((k, v)) if !k.is_empty() => cmd.env(k, v),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("bad environment entry {entry:?}"),
                ))
            }
        };
    }
    // SAFETY: the closure runs in the forked child before exec; it makes only system calls,
    // on C strings and ids built above, and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if controlling_tty {
                take_terminal()?;
            }
            enter_root(&binds, &root_c, &cwd_c)?;
            match &user {
                Some(u) => become_user(u),
                None => Ok(()),
            }
        });
    }
    // The program is looked up (execvp) after the chroot, with the command's own PATH.
    let mut child = cmd.spawn()?;
    if let Some(pty) = pty {
        drop(pty.slave);
        let pid = i32::try_from(child.id()).map_err(|_| io::Error::other("pid out of range"))?;
        let (stderr, writer) = nix::unistd::pipe().map_err(io::Error::from)?;
        drop(writer);
        let stdin = pty.master.try_clone()?;
        return Ok(Spawned { pid, stdin, stdout: pty.master, stderr });
    }
    let missing = || io::Error::other("the command's stdio pipes were not created");
    let stdin = child.stdin.take().ok_or_else(missing)?;
    let stdout = child.stdout.take().ok_or_else(missing)?;
    let stderr = child.stderr.take().ok_or_else(missing)?;
    let pid = i32::try_from(child.id()).map_err(|_| io::Error::other("pid out of range"))?;
    // PID 1 reaps the child itself (waitpid(-1), with the orphans), so `child` is not waited.
    Ok(Spawned { pid, stdin: stdin.into(), stdout: stdout.into(), stderr: stderr.into() })
}

/// (guest path, path in the share) for each guest filesystem the share has a directory for.
/// A symlink in the share is not followed: it could point anywhere in the guest.
fn guest_mount_binds(root: &Path) -> io::Result<Vec<(CString, CString)>> {
    let mut binds = Vec::new();
    for name in GUEST_MOUNTS {
        let target = root.join(name);
        if target.symlink_metadata().is_ok_and(|m| m.is_dir()) {
            binds.push((cstring(format!("/{name}").as_bytes())?, cstring(target.as_os_str().as_bytes())?));
        }
    }
    Ok(binds)
}

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path contains a NUL byte"))
}

/// In the child: a default signal mask (PID 1 blocks some), no CAP_SYS_BOOT, a private mount
/// namespace with the guest's filesystems bound in, then the share as root.
fn enter_root(binds: &[(CString, CString)], root: &CString, cwd: &CString) -> io::Result<()> {
    let check = |rc: libc::c_int| if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) };
    // SAFETY: plain system calls on valid, NUL-terminated strings and a local sigset.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        check(libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()))?;
        check(libc::prctl(libc::PR_CAPBSET_DROP, CAP_SYS_BOOT, 0, 0, 0))?;
        // The guest's mounts are private (nothing makes them shared, as systemd does on
        // hosts), so the binds below stay in this namespace.
        check(libc::unshare(libc::CLONE_NEWNS))?;
        for (source, target) in binds {
            check(libc::mount(
                source.as_ptr(),
                target.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            ))?;
        }
        check(libc::chroot(root.as_ptr()))?;
        check(libc::chdir(cwd.as_ptr()))?;
    }
    Ok(())
}

/// In the child: a session of its own whose controlling terminal is its stdin (the pty).
fn take_terminal() -> io::Result<()> {
    // SAFETY: setsid and an ioctl that takes an int by value.
    unsafe {
        if libc::setsid() < 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// In the child, after the chroot (which needs root): the command's groups, gid and uid.
/// Changing the uid away from 0 drops every capability, as it does for a native container's
/// process without ambient capabilities.
fn become_user(user: &GuestUser) -> io::Result<()> {
    let check = |rc: libc::c_int| if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) };
    let groups: &[libc::gid_t] = &user.additional_gids;
    // SAFETY: plain system calls; `groups` (built before the fork) outlives setgroups.
    unsafe {
        check(libc::setgroups(groups.len(), groups.as_ptr()))?;
        check(libc::setgid(user.gid))?;
        check(libc::setuid(user.uid))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawn_errors_map_to_shell_exit_codes() {
        assert_eq!(exit_code_for_spawn_error(&io::Error::from_raw_os_error(libc::ENOENT)), 127);
        assert_eq!(exit_code_for_spawn_error(&io::Error::from_raw_os_error(libc::EACCES)), 126);
    }

    #[test]
    fn only_real_directories_of_the_share_get_guest_mounts() {
        let dir = std::env::temp_dir().join(format!("hull-agent-binds-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("proc")).unwrap();
        std::os::unix::fs::symlink("/", dir.join("dev")).unwrap();
        let binds = guest_mount_binds(&dir).unwrap();
        assert_eq!(binds.len(), 1);
        assert_eq!(binds[0].0.to_str().unwrap(), "/proc");
        assert_eq!(binds[0].1.to_str().unwrap(), dir.join("proc").to_str().unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
