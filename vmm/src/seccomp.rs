//! The VMM's seccomp filters, one per kind of thread, as allow-lists of system calls.
//!
//! - [`vcpu`]: a vcpu thread loops on KVM_RUN and serves port and MMIO exits from the buses:
//!   the serial's output, irqfd and eventfd writes, the locks around the devices. Installed by
//!   the thread itself before its first KVM_RUN, on top of what it inherits from the thread that
//!   made it.
//! - [`event_loop`]: the thread that runs [`crate::Vmm::run`]: it makes the vcpu threads, runs
//!   the event loop, serves every virtio-fs request (the passthrough file system: opening,
//!   reading, writing, linking, renaming, owning files, their xattrs, switching to the guest
//!   user's fs ids) and the vsock's unix sockets, then joins and ends the process.
//! - [`COMMON`] and [`SPAWN`] are the parts other kinds of thread build on (the vm backend's
//!   session and exec-fifo threads, in hull).
//!
//! What nothing here allows, whatever the guest does to the VMM: exec, mount, pivot_root,
//! namespaces, ptrace and process_vm_*, bpf, modules, kexec, keyrings, perf, userfaultfd,
//! sockets other than AF_UNIX, ioctls other than the few named.
//!
//! The caller picks the action for a system call outside the list ([`Mismatch`]).

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    TargetArch,
};

pub use seccompiler::apply_filter;

/// `_IO(KVMIO, 0x80)`.
pub const KVM_RUN: u64 = 0xae80;
/// _IOR(KVMIO, 0x81, struct kvm_regs) and _IOR(KVMIO, 0x83, struct kvm_sregs): read once by a
/// vcpu whose guest triple-faulted, to say where (VmExit::TripleFault).
pub const KVM_GET_REGS: u64 = kvm_ior(0x81, std::mem::size_of::<kvm_bindings::kvm_regs>());
pub const KVM_GET_SREGS: u64 = kvm_ior(0x83, std::mem::size_of::<kvm_bindings::kvm_sregs>());

/// The number of a KVM ioctl that reads `size` bytes: direction read (2) in bits 30-31, the
/// size in bits 16-29, KVMIO (0xae) in bits 8-15, `nr` in bits 0-7.
const fn kvm_ior(nr: u64, size: usize) -> u64 {
    (2 << 30) | ((size as u64) << 16) | (0xae << 8) | nr
}

/// What happens to a system call outside a thread's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// The whole VMM dies of SIGSYS, and the kernel logs the call (audit type 1326, in dmesg).
    /// The default: a refused call is then loud (the container ends, its status says SIGSYS)
    /// where an error would often be swallowed, retried or turned into a hang of the guest.
    KillProcess,
    /// Allowed, and logged like the above: for finding what a list misses.
    Log,
    /// The call fails with this errno (the tests).
    Errno(u32),
}

impl Mismatch {
    fn action(self) -> SeccompAction {
        match self {
            Mismatch::KillProcess => SeccompAction::KillProcess,
            Mismatch::Log => SeccompAction::Log,
            Mismatch::Errno(e) => SeccompAction::Errno(e),
        }
    }
}

/// Why a filter could not be built.
#[derive(Debug, thiserror::Error)]
#[error("building the {kind} seccomp filter: {msg}")]
pub struct FilterError {
    kind: &'static str,
    msg: String,
}

impl FilterError {
    pub fn new(kind: &'static str, msg: String) -> Self {
        FilterError { kind, msg }
    }
}

/// What every thread does whatever its kind: memory, locks, time, its signal mask and the
/// kick handler's return, writing to stderr or the log, closing fds, its hash keys, ending.
pub const COMMON: &[i64] = &[
    libc::SYS_brk,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    libc::SYS_futex,
    libc::SYS_sched_yield,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_sigaltstack,
    libc::SYS_restart_syscall,
    libc::SYS_clock_gettime,
    libc::SYS_gettimeofday,
    libc::SYS_nanosleep,
    libc::SYS_clock_nanosleep,
    libc::SYS_write,
    libc::SYS_writev,
    libc::SYS_close,
    libc::SYS_getpid,
    libc::SYS_gettid,
    libc::SYS_getrandom,
    libc::SYS_exit,
    libc::SYS_exit_group,
];

/// What a thread that makes threads needs, for itself and for each new thread's first steps
/// (which run under the maker's filter): clone3 (glibc's pthread_create; its flags are in
/// memory, out of a filter's reach), the robust futex list, rseq and stack bounds (glibc asks
/// for the affinity with them) of the new thread, its
/// name, and the filter it then installs on top.
pub const SPAWN: &[i64] =
    &[libc::SYS_clone3, libc::SYS_set_robust_list, libc::SYS_rseq, libc::SYS_sched_getaffinity];

/// The event loop's own calls, beyond [`COMMON`] and [`SPAWN`].
const EVENT_LOOP: &[i64] = &[
    // The kick signal's handler, the vcpu kicks, and dying of the workload's signal.
    libc::SYS_rt_sigaction,
    libc::SYS_tgkill,
    libc::SYS_prlimit64,
    libc::SYS_setrlimit,
    // The event loop.
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_ctl,
    // Serving files.
    libc::SYS_read,
    libc::SYS_readv,
    libc::SYS_pread64,
    libc::SYS_preadv,
    libc::SYS_preadv2,
    libc::SYS_pwrite64,
    libc::SYS_pwritev,
    libc::SYS_pwritev2,
    libc::SYS_lseek,
    libc::SYS_openat,
    libc::SYS_newfstatat,
    libc::SYS_fstat,
    libc::SYS_statx,
    libc::SYS_fstatfs,
    libc::SYS_getdents64,
    libc::SYS_readlinkat,
    libc::SYS_mkdirat,
    libc::SYS_mknodat,
    libc::SYS_symlinkat,
    libc::SYS_linkat,
    libc::SYS_unlinkat,
    libc::SYS_renameat2,
    libc::SYS_fchownat,
    libc::SYS_fchown,
    libc::SYS_fchmodat,
    libc::SYS_fchmod,
    libc::SYS_utimensat,
    libc::SYS_fallocate,
    libc::SYS_ftruncate,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_umask,
    libc::SYS_fcntl,
    libc::SYS_dup,
    libc::SYS_getxattr,
    libc::SYS_setxattr,
    libc::SYS_listxattr,
    libc::SYS_removexattr,
    // Acting as the guest's user, and CAP_FSETID around writes.
    libc::SYS_setresuid,
    libc::SYS_setresgid,
    libc::SYS_setgroups,
    libc::SYS_setfsuid,
    libc::SYS_setfsgid,
    libc::SYS_capget,
    libc::SYS_capset,
    libc::SYS_getuid,
    libc::SYS_getgid,
    libc::SYS_geteuid,
    libc::SYS_getegid,
    // The vsock's unix sockets (socket() itself is AF_UNIX only, below).
    libc::SYS_accept4,
    libc::SYS_connect,
    libc::SYS_shutdown,
    libc::SYS_recvfrom,
    libc::SYS_sendto,
    libc::SYS_recvmsg,
    libc::SYS_sendmsg,
    libc::SYS_getsockopt,
    // The vm backend's error report to `hull create`, and its wait for the session thread.
    libc::SYS_poll,
    libc::SYS_ppoll,
];

/// `syscall` allowed only when argument `arg` (32 bits) is one of `values`.
pub fn allow_with_arg(
    rules: &mut BTreeMap<i64, Vec<SeccompRule>>,
    syscall: i64,
    arg: u8,
    values: &[u64],
) -> Result<(), String> {
    let entry = rules.entry(syscall).or_default();
    for value in values {
        let condition = SeccompCondition::new(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, *value)
            .map_err(|e| e.to_string())?;
        entry.push(SeccompRule::new(vec![condition]).map_err(|e| e.to_string())?);
    }
    Ok(())
}

/// The rules for `lists`, every call in them allowed whatever its arguments.
pub fn allow_all(lists: &[&[i64]]) -> BTreeMap<i64, Vec<SeccompRule>> {
    lists.iter().flat_map(|l| l.iter()).map(|s| (*s, Vec::new())).collect()
}

/// [`SPAWN`]'s conditional part: prctl to name the new thread and to set no_new_privs (which
/// seccompiler does before installing a filter), and seccomp to install one.
pub fn allow_spawn_args(rules: &mut BTreeMap<i64, Vec<SeccompRule>>) -> Result<(), String> {
    allow_with_arg(rules, libc::SYS_prctl, 0, &[libc::PR_SET_NAME as u64, libc::PR_SET_NO_NEW_PRIVS as u64])?;
    allow_with_arg(rules, libc::SYS_seccomp, 0, &[u64::from(libc::SECCOMP_SET_MODE_FILTER)])
}

/// Compiles `rules` into a filter whose other calls get `mismatch`.
pub fn compile(
    kind: &'static str,
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    mismatch: Mismatch,
) -> Result<BpfProgram, FilterError> {
    let error = |msg: String| FilterError { kind, msg };
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|e| error(e.to_string()))?;
    let filter = SeccompFilter::new(rules, mismatch.action(), SeccompAction::Allow, arch)
        .map_err(|e| error(e.to_string()))?;
    BpfProgram::try_from(filter).map_err(|e| error(e.to_string()))
}

/// A vcpu thread's filter: KVM_RUN, and what serving an exit does.
pub fn vcpu(mismatch: Mismatch) -> Result<BpfProgram, FilterError> {
    let mut rules = allow_all(&[COMMON]);
    allow_with_arg(&mut rules, libc::SYS_ioctl, 1, &[KVM_RUN, KVM_GET_REGS, KVM_GET_SREGS])
        .map_err(|msg| FilterError { kind: "vcpu", msg })?;
    compile("vcpu", rules, mismatch)
}

/// The event loop thread's filter (see the module's doc).
pub fn event_loop(mismatch: Mismatch) -> Result<BpfProgram, FilterError> {
    let error = |msg| FilterError { kind: "event loop", msg };
    let mut rules = allow_all(&[COMMON, SPAWN, EVENT_LOOP]);
    allow_spawn_args(&mut rules).map_err(error)?;
    allow_with_arg(&mut rules, libc::SYS_socket, 0, &[libc::AF_UNIX as u64]).map_err(error)?;
    // std's set_nonblocking on the unix sockets; KVM_RUN for the vcpu threads it makes, which
    // run under this filter too (and their own on top); a virtio-net tap's offloads, set once
    // the driver has chosen its features.
    allow_with_arg(
        &mut rules,
        libc::SYS_ioctl,
        1,
        &[libc::FIONBIO, KVM_RUN, KVM_GET_REGS, KVM_GET_SREGS, libc::TUNSETOFFLOAD],
    )
    .map_err(error)?;
    compile("event loop", rules, mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_ioctl_numbers() {
        assert_eq!(KVM_GET_REGS, 0x8090_ae81);
        assert_eq!(KVM_GET_SREGS, 0x8138_ae83);
    }

    /// Installs `filter` in a new thread and runs `probe` there.
    fn in_filtered_thread<T: Send + 'static>(
        filter: BpfProgram,
        probe: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        std::thread::spawn(move || {
            apply_filter(&filter).unwrap();
            probe()
        })
        .join()
        .unwrap()
    }

    fn errno_of(rc: libc::c_long) -> i32 {
        if rc < 0 {
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
        } else {
            0
        }
    }

    #[test]
    fn a_vcpu_thread_may_run_kvm_and_write_but_nothing_else() {
        let filter = vcpu(Mismatch::Errno(libc::EPERM as u32)).unwrap();
        let (open, other_ioctl, kvm_run, write) = in_filtered_thread(filter, || {
            // SAFETY: plain system calls on constant arguments; the fds are bad or stderr.
            unsafe {
                let open =
                    errno_of(libc::syscall(libc::SYS_openat, libc::AT_FDCWD, c"/".as_ptr(), libc::O_RDONLY));
                let other_ioctl = errno_of(libc::syscall(libc::SYS_ioctl, -1, libc::FIONBIO, 0));
                // Allowed: fails on the bad fd, not on the filter.
                let kvm_run = errno_of(libc::syscall(libc::SYS_ioctl, -1, KVM_RUN, 0));
                let write = errno_of(libc::syscall(libc::SYS_write, 2, c"".as_ptr(), 0));
                (open, other_ioctl, kvm_run, write)
            }
        });
        assert_eq!(open, libc::EPERM, "openat refused");
        assert_eq!(other_ioctl, libc::EPERM, "an ioctl other than KVM_RUN refused");
        assert_eq!(kvm_run, libc::EBADF, "KVM_RUN allowed");
        assert_eq!(write, 0, "write allowed");
    }

    #[test]
    fn the_event_loop_serves_files_but_cannot_exec_mount_or_make_inet_sockets() {
        let filter = event_loop(Mismatch::Errno(libc::EPERM as u32)).unwrap();
        let (open, exec, mount, inet, unix) = in_filtered_thread(filter, || {
            // SAFETY: plain system calls on constant arguments; what they open is closed.
            unsafe {
                let fd = libc::syscall(libc::SYS_openat, libc::AT_FDCWD, c"/".as_ptr(), libc::O_RDONLY);
                let open = errno_of(fd);
                libc::close(fd as i32);
                let argv = [std::ptr::null::<libc::c_char>()];
                let exec = errno_of(libc::syscall(
                    libc::SYS_execve,
                    c"/bin/true".as_ptr(),
                    argv.as_ptr(),
                    argv.as_ptr(),
                ));
                let mount = errno_of(libc::syscall(
                    libc::SYS_mount,
                    c"none".as_ptr(),
                    c"/".as_ptr(),
                    c"tmpfs".as_ptr(),
                    0,
                    0,
                ));
                let inet = errno_of(libc::syscall(libc::SYS_socket, libc::AF_INET, libc::SOCK_STREAM, 0));
                let ufd = libc::syscall(libc::SYS_socket, libc::AF_UNIX, libc::SOCK_STREAM, 0);
                let unix = errno_of(ufd);
                libc::close(ufd as i32);
                (open, exec, mount, inet, unix)
            }
        });
        assert_eq!((open, unix), (0, 0), "files and unix sockets allowed");
        assert_eq!(
            (exec, mount, inet),
            (libc::EPERM, libc::EPERM, libc::EPERM),
            "exec, mount, AF_INET refused"
        );
    }

    #[test]
    fn a_vcpu_thread_made_by_the_event_loop_installs_its_own_on_top() {
        let outer = event_loop(Mismatch::Errno(libc::EPERM as u32)).unwrap();
        let inner = vcpu(Mismatch::Errno(libc::EPERM as u32)).unwrap();
        let (open, kvm_run) = in_filtered_thread(outer, move || {
            std::thread::spawn(move || {
                apply_filter(&inner).unwrap();
                // SAFETY: plain system calls on constant arguments and a bad fd.
                unsafe {
                    let open = errno_of(libc::syscall(
                        libc::SYS_openat,
                        libc::AT_FDCWD,
                        c"/".as_ptr(),
                        libc::O_RDONLY,
                    ));
                    (open, errno_of(libc::syscall(libc::SYS_ioctl, -1, KVM_RUN, 0)))
                }
            })
            .join()
            .unwrap()
        });
        assert_eq!(open, libc::EPERM, "the vcpu's own filter refuses what the event loop's allows");
        assert_eq!(kvm_run, libc::EBADF, "both filters let KVM_RUN through");
    }
}
