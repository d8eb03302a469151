//! `create` for a VM container, the parent's side: the container's cgroup exactly as the
//! native backend makes it ([`crate::native::backend::in_cgroup`]), then the VMM init forked
//! and placed in it before it does anything, the createRuntime and prestart hooks run here on
//! the host when the init has its namespaces (and before the VMM exists to look at them), and
//! `create` returns once the guest agent has greeted. The conversation is the native
//! create's sync socket and messages.

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult, Pid};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::error::VmError;
use super::init::{self, VmmInit};
use super::pidns;
use super::prepare::Plan;
use crate::container::backend::InitSpec;
use crate::container::Chain;
use crate::container::{Error, Result};
use crate::native::namespaces;
use crate::native::sync::{self, Msg, SyncSocket};
use crate::native::{Placement, StateFor};
use crate::spec::Bundle;
use crate::state::State;

/// /dev/kvm is the misc device 10:232 on every Linux.
const KVM_MAJOR: i64 = 10;
const KVM_MINOR: i64 = 232;
/// Beyond the boot timeout: how long the VMM gets to build the VM, and to stop it and say why
/// after the timeout, before `create` kills it. A guest whose vcpu is stuck (the emulated test
/// machine's nested SVM has done it) may never let the VMM stop in an orderly way.
const BOOT_GRACE: Duration = Duration::from_secs(20);

pub fn create(plan: Plan, spec: InitSpec, state: &mut State) -> Result<i32> {
    let InitSpec { bundle, dir, console, .. } = spec;
    let console_size = bundle
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.console_size())
        .map(|b| (b.height() as u16, b.width() as u16));
    let Plan {
        cgroup,
        kernel,
        kernel_pvm,
        size,
        boot_timeout,
        request,
        share,
        read_only,
        binds,
        guest_spec,
        preserved,
        own_userns,
    } = plan;
    if read_only {
        super::host_side::make_mount_targets(&bundle.spec, &bundle.rootfs, &binds)
            .map_err(|m| Error::backend(VmError::Unsupported(m)))?;
    }
    // The VMM listens for the agent on `<vsock>_<port>`, in the state directory: delete
    // removes it with the rest. A path too long for a socket's address is reached through the
    // directory's descriptor (`socket_dir`).
    let vsock_path = dir.path.join("vsock");
    let listen_path = PathBuf::from(format!("{}_{}", vsock_path.display(), crate::vm::AGENT_PORT));
    // The preserved fds' relay listens on `<vsock>_<relay port>`.
    let relay_path = PathBuf::from(format!("{}_{}", vsock_path.display(), crate::fd_relay::PORT));
    state.vm_socket = Some(vsock_path.clone());
    let vmm_init = VmmInit {
        kernel,
        kernel_pvm,
        size,
        boot_timeout,
        request,
        share,
        read_only,
        binds,
        guest_spec,
        binds_dir: dir.path.join("binds"),
        jail_dir: dir.path.join("jail"),
        fifo_path: dir.fifo_path(),
        vsock_path,
        listen_path,
        relay_path,
        preserved,
        namespaces: namespaces::Plan::from_spec(&bundle.spec),
        hooks: bundle.spec.hooks().clone(),
        serial: std::env::var_os(init::SERIAL_ENV).is_some_and(|v| v == "1"),
        console,
        console_size,
        own_userns,
    };
    let new_pid_ns = vmm_init.namespaces.create.contains(nix::sched::CloneFlags::CLONE_NEWPID);
    let bundle = with_kvm_allowed(bundle);
    let spec = &bundle.spec;
    let limit = boot_timeout + BOOT_GRACE;
    let made =
        crate::native::backend::in_cgroup(cgroup, &bundle, dir, state, move |placement, state_for, _, _| {
            spawn(vmm_init, Forking { new_pid_ns, own_userns }, placement, state_for, spec, limit)
        });
    if made.is_err() {
        // The VMM is gone; what it tied to the namespace's interfaces must go too.
        super::release_network(&format!("create {}", state.id), &dir.path, spec);
    }
    made
}

/// The bundle with /dev/kvm added to the device cgroup's allowed devices. The VMM opens it
/// inside the container's cgroup, whose device rules (deny all, then the defaults) are made
/// for a workload on the host; this workload is in the guest, and the VMM needs KVM.
fn with_kvm_allowed(bundle: &Bundle) -> Bundle {
    let mut bundle = bundle.clone();
    if let Some(resources) = bundle.spec.linux_mut().as_mut().and_then(|l| l.resources_mut().as_mut()) {
        if let Some(rules) = resources.devices_mut().as_mut() {
            let mut kvm = LinuxDeviceCgroup::default();
            kvm.set_allow(true);
            kvm.set_typ(Some(LinuxDeviceType::C));
            kvm.set_major(Some(KVM_MAJOR));
            kvm.set_minor(Some(KVM_MINOR));
            kvm.set_access(Some("rw".to_string()));
            rules.push(kvm);
        }
    }
    bundle
}

/// How the VMM init is forked.
struct Forking {
    /// The VMM is pid 1 of a pid namespace of its own ([`pidns`]).
    new_pid_ns: bool,
    /// hull is an ordinary user: the VMM is born in a user namespace of its own, which makes
    /// its pid namespace too ([`super::userns`]).
    own_userns: bool,
}

/// Forks the VMM init and sees it through setup; its pid once the guest is up.
fn spawn(
    vmm_init: VmmInit,
    how: Forking,
    placement: Option<Placement>,
    state_for: StateFor,
    spec: &oci_spec::runtime::Spec,
    limit: Duration,
) -> Result<i32> {
    let (parent, child) = sync::pair().map_err(|e| vmm_failed(format!("sync socket: {e}")))?;
    // The VMM's namespaces are made at the fork (clone3), so hull itself never leaves its own:
    // root of a user namespace (rootless podman's) could unshare a pid namespace but not
    // setns back to the host's, which its user namespace does not own. An ordinary user's
    // VMM gets a user namespace of its own too, which owns the pid namespace.
    let mut flags = CloneFlags::empty();
    if how.own_userns {
        flags |= CloneFlags::CLONE_NEWUSER;
    }
    if how.new_pid_ns {
        flags |= CloneFlags::CLONE_NEWPID;
    }
    let mut own_pid_ns = None;
    let forked = if flags.is_empty() {
        // SAFETY: hull is single-threaded here: nothing starts a thread before create, and the
        // VMM's threads start only in the child.
        unsafe { fork() }
    } else {
        // SAFETY: as for fork above; clone3 without a stack is fork.
        match unsafe { crate::native::clone_into::fork_into_namespaces(flags) } {
            // A seccomp filter that refuses clone3 (an older container engine's): the pid
            // namespace by unshare, and back, as root of the host may.
            Err(nix::errno::Errno::ENOSYS) if !how.own_userns => {
                own_pid_ns = Some(pidns::next_child_in_new().map_err(vmm_failed)?);
                // SAFETY: as above.
                unsafe { fork() }
            }
            other => other,
        }
    };
    if !matches!(forked, Ok(ForkResult::Child)) {
        // Whatever the fork did: the hooks `create` runs, and anything after, are the runtime's.
        if let Some(own) = &own_pid_ns {
            if let Err(e) = pidns::restore(own) {
                if let Ok(ForkResult::Parent { child }) = forked {
                    let _ = kill(child, Signal::SIGKILL);
                    let _ = waitpid(child, None);
                }
                return Err(vmm_failed(e));
            }
        }
    }
    match forked.map_err(|e| vmm_failed(format!("fork: {e}")))? {
        ForkResult::Child => {
            drop(parent);
            init::main(child, vmm_init)
        }
        ForkResult::Parent { child: pid } => {
            drop(child);
            drop(vmm_init);
            // The init waits for CgroupReady before anything: its maps are written by then.
            let mapped = if how.own_userns {
                super::userns::write_maps(pid.as_raw(), spec).map_err(vmm_failed)
            } else {
                Ok(())
            };
            match mapped.and_then(|()| talk(&parent, pid, placement, state_for, spec, limit)) {
                Ok(()) => Ok(pid.as_raw()),
                Err(e) => {
                    let _ = kill(pid, Signal::SIGKILL);
                    let _ = waitpid(pid, None);
                    Err(e)
                }
            }
        }
    }
}

/// The parent's side: place the init in the cgroup, run hooks when it asks, wait for Ready
/// (for at most `limit` besides the hooks' time: then the caller kills the VMM).
fn talk(
    sock: &SyncSocket,
    pid: Pid,
    placement: Option<Placement>,
    state_for: StateFor,
    spec: &oci_spec::runtime::Spec,
    limit: Duration,
) -> Result<()> {
    let (cgroup, path) = match placement {
        Some(Placement::Join(cg)) => {
            cg.join(pid.as_raw() as u32).map_err(Error::backend)?;
            let path = cg.path.clone();
            (Some(cg), path)
        }
        // systemd starts the scope with the init in it.
        Some(Placement::AfterFork(cg, place)) => {
            let path = place(pid.as_raw()).map_err(|e| vmm_failed(Chain(&e).to_string()))?;
            cg.path = path.clone();
            (Some(cg), path)
        }
        // Rootless without a cgroup: the VMM stays in hull's.
        None => (None, String::new()),
    };
    // The init waits for this before anything else: it is in the cgroup before any vcpu
    // thread (or any other thread) exists.
    sock.send(&Msg::CgroupReady { path }).map_err(|e| vmm_failed(format!("write to the VMM init: {e}")))?;
    let mut deadline = Instant::now() + limit;
    loop {
        if !readable_before(sock, deadline) {
            return Err(vmm_failed(format!(
                "the VM did not come up or stop within {} s; killed it (HULL_VM_SERIAL=1 shows the guest console \
                 on the container's stderr)",
                limit.as_secs()
            )));
        }
        let msg = sock.recv().map_err(|e| vmm_failed(format!("read from the VMM init: {e}")))?;
        match msg {
            Some(Msg::RunHooks) => {
                let state = state_for(pid.as_raw());
                let ran = crate::hooks::run(spec, crate::hooks::Kind::Prestart, &state)
                    .and_then(|()| crate::hooks::run(spec, crate::hooks::Kind::CreateRuntime, &state));
                if let Err(e) = ran {
                    let _ = sock.send(&Msg::Error { msg: e.to_string() });
                    return Err(Error::Hook(e));
                }
                sock.send(&Msg::HooksDone { state })
                    .map_err(|e| vmm_failed(format!("write to the VMM init: {e}")))?;
                // The hooks' time is theirs: the VM's starts now.
                deadline = Instant::now() + limit;
            }
            Some(Msg::Ready) => {
                // The VM exists, and with it KVM's worker thread in the container's cgroup.
                let Some(cgroup) = cgroup else { return Ok(()) };
                match cgroup.evict_kernel_threads() {
                    Ok(moved) if !moved.is_empty() => crate::logging::debug(&format!(
                        "moved KVM's kernel threads {moved:?} out of the cgroup"
                    )),
                    Ok(_) => {}
                    Err(e) => crate::logging::warn(&format!("{} (pause will not complete)", Chain(&e))),
                }
                return Ok(());
            }
            Some(Msg::Error { msg }) => return Err(vmm_failed(msg)),
            Some(other) => {
                return Err(vmm_failed(format!("unexpected message from the VMM init: {other:?}")))
            }
            None => {
                return Err(vmm_failed(format!("the VMM init (pid {pid}) exited before the guest came up")))
            }
        }
    }
}

/// Whether the socket has something to read (or has closed) before `deadline`.
fn readable_before(sock: &SyncSocket, deadline: Instant) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
        let ms =
            PollTimeout::try_from(left.as_millis().min(i32::MAX as u128) as u64).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, ms) {
            Ok(n) if n > 0 => return true,
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            // Let recv say what is wrong.
            Err(_) => return true,
        }
    }
}

fn vmm_failed(msg: impl Into<String>) -> Error {
    Error::backend(VmError::Vmm(msg.into()))
}
