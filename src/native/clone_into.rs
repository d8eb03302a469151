//! Forking straight into a cgroup (cgroup v2: clone3 with CLONE_INTO_CGROUP). A child born in
//! the container's cgroup needs no migration; the write to cgroup.procs that migrates it takes
//! the cgroup_threadgroup_rwsem for writing, which waits for an RCU grace period: the largest
//! single cost of `create` in the profile, and `exec` pays it too (integration/bench/README.md).
//! Used for create's stage 1 and exec's first fork.

use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;
use nix::unistd::{ForkResult, Pid};

/// `struct clone_args` up to its `cgroup` field (CLONE_ARGS_SIZE_VER2, Linux 5.7).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// CLONE_INTO_CGROUP (include/uapi/linux/sched.h); libc does not name it.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// fork(2), with the child born in the cgroup v2 directory `cgroup` (an O_PATH or O_DIRECTORY
/// fd) when one is given and the kernel takes it; true when it was. Where the kernel cannot
/// (before 5.7: ENOSYS or E2BIG; a cgroup that cannot take processes: EOPNOTSUPP, EBUSY) it is
/// a plain fork, and the caller migrates the child as before.
///
/// # Safety
///
/// As for fork(2): the caller must be single-threaded, since the child gets only this thread.
pub unsafe fn fork_in(cgroup: Option<BorrowedFd>) -> nix::Result<(ForkResult, bool)> {
    if let Some(fd) = cgroup {
        // SAFETY: the caller's promise, passed on.
        match unsafe { fork3(Some(fd)) } {
            Ok(r) => return Ok((r, true)),
            Err(e) => crate::logging::debug(&format!("clone3 into the cgroup: {e}; fork, then join")),
        }
    }
    // SAFETY: the caller's promise, passed on.
    unsafe { nix::unistd::fork() }.map(|r| (r, false))
}

/// Opens a cgroup v2 directory for [`fork_in`]; None when it cannot be opened.
pub fn open_dir(dir: &std::path::Path) -> Option<std::os::fd::OwnedFd> {
    use nix::fcntl::{open, OFlag};
    open(dir, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty()).ok()
}

/// fork(2) made with clone3 (into `cgroup` when given), bypassing libc's fork: no atfork
/// handlers run, which is what a multi-threaded VMM needs for a child that only makes raw
/// system calls (`vm/backend/oom_relay.rs`; its seccomp filter allows clone3, which threads
/// are made with).
///
/// # Safety
///
/// As for fork(2) in a multi-threaded process: the child gets only this thread, and may
/// inherit locks other threads held; it must not take them (no allocation, no stdio) unless
/// the caller is single-threaded.
pub(crate) unsafe fn fork3(cgroup: Option<BorrowedFd>) -> nix::Result<ForkResult> {
    // SAFETY: the caller's promise, passed on.
    unsafe { clone_fork(cgroup, 0) }
}

/// fork(2) whose child is born in new namespaces (`flags`: CLONE_NEW* only). With
/// CLONE_NEWUSER the other namespaces are made by the new user namespace, and so owned by it:
/// that is how an ordinary user's child becomes pid 1 of a pid namespace in which it may
/// mount a procfs (the vm backend's rootless VMM, `vm/backend/userns.rs`); unshare would move
/// the caller itself into the user namespace, for good.
///
/// # Safety
///
/// As for [`fork3`].
pub(crate) unsafe fn fork_into_namespaces(flags: nix::sched::CloneFlags) -> nix::Result<ForkResult> {
    // CloneFlags' bits are c_int; the namespace flags are all positive.
    let bits = u64::try_from(flags.bits()).map_err(|_| Errno::EINVAL)?;
    // SAFETY: the caller's promise, passed on.
    unsafe { clone_fork(None, bits) }
}

/// clone3 as fork, with `extra` flags.
///
/// # Safety
///
/// As for [`fork3`].
unsafe fn clone_fork(cgroup: Option<BorrowedFd>, extra: u64) -> nix::Result<ForkResult> {
    let args = CloneArgs {
        flags: extra | if cgroup.is_some() { CLONE_INTO_CGROUP } else { 0 },
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.map_or(0, |fd| fd.as_raw_fd() as u64),
        ..Default::default()
    };
    // SAFETY: clone3 without CLONE_VM or a stack is fork: the child continues on a copy of this
    // thread's stack and address space (a larger struct than an older kernel knows is
    // accepted while its extra fields are zero); the caller vouches for what the child does.
    let ret = unsafe {
        libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, std::mem::size_of::<CloneArgs>())
    };
    match ret {
        0 => Ok(ForkResult::Child),
        pid if pid > 0 => Ok(ForkResult::Parent { child: Pid::from_raw(pid as i32) }),
        _ => Err(Errno::last()),
    }
}
