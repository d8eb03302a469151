//! `prepare` for a VM container: everything that can be found out before the id is claimed,
//! so that a host that cannot run the VM leaves nothing behind: the guest kernel (opened
//! here, carried to the VMM), /dev/kvm, a PVM host with a stock kernel (the same refusal as
//! vm-run's), the VM's size, the workload, and the cgroup as the native backend plans it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::binds::{self, Bind};
use super::error::VmError;
use super::guest_spec;
use super::host_side;
use super::sizing::{self, Size};
use super::userns;
use crate::agent::protocol::{GuestUser, RunRequest};
use crate::container::backend::PrepareRequest;
use crate::container::{Error, Result};
use crate::vm::{config, kernel};

/// How long `create` waits for the guest agent by default: the emulated test machine boots a
/// guest in 5-20 s, hardware in well under one.
pub const DEFAULT_BOOT_TIMEOUT: Duration = Duration::from_secs(60);
const KVM_DEVICE: &str = "/dev/kvm";

/// What `prepare` worked out; `create` carries it out.
pub struct Plan {
    pub(super) cgroup: crate::native::backend::Plan,
    pub(super) kernel: vmm::KernelImage,
    pub(super) kernel_pvm: bool,
    pub(super) size: Size,
    pub(super) boot_timeout: Duration,
    /// The workload, as the agent runs it.
    pub(super) request: RunRequest,
    /// What the guest sees as its root: the container's rootfs.
    pub(super) share: PathBuf,
    pub(super) read_only: bool,
    /// The spec's bind mounts of host paths.
    pub(super) binds: Vec<Bind>,
    /// The spec the guest agent creates the container from.
    pub(super) guest_spec: serde_json::Value,
    /// The fds past stdio the workload gets, relayed ([`crate::fd_relay`]).
    pub(super) preserved: Vec<crate::fd_relay::Preserved>,
    /// hull runs as an ordinary user: the VMM makes a user namespace of its own ([`userns`]).
    pub(super) own_userns: bool,
}

pub fn prepare(req: &PrepareRequest) -> Result<Plan> {
    let spec = &req.bundle.spec;
    // Refused before anything is looked at, as on a host without KVM it is refused too.
    binds::refuse_idmapped(spec).map_err(|m| Error::backend(VmError::Unsupported(m)))?;
    // Looked at before anything is made: an fd that cannot be relayed into the guest is
    // refused, naming it, rather than dropped (a program that counts on fd 3, socket
    // activation above all, would find nothing there, or another file).
    let preserved = crate::fd_relay::classify_preserved(req.preserve_fds).map_err(|why| {
        let what = match std::env::var("LISTEN_FDS") {
            Ok(n) => format!(
                "socket activation (LISTEN_FDS={n}) with --preserve-fds, {} fds in all",
                req.preserve_fds
            ),
            Err(_) => format!("--preserve-fds {}", req.preserve_fds),
        };
        Error::backend(VmError::Unsupported(format!("{what}: {why}")))
    })?;
    let unavailable = |e: anyhow::Error| Error::backend(VmError::Unavailable(format!("{e:#}")));
    let config = config::load().map_err(unavailable)?;
    let choice = kernel::choose(None, |k| std::env::var(k).ok(), &config).map_err(unavailable)?;
    let kernel_image = kernel::open(&choice).map_err(unavailable)?;
    if !Path::new(KVM_DEVICE).exists() {
        return Err(Error::backend(VmError::Unavailable(format!(
            "no {KVM_DEVICE} on this host: the vm backend needs KVM (load kvm_intel or kvm_amd, or enable nested \
             virtualization)"
        ))));
    }
    kvm_usable()?;
    // A stock kernel on a PVM host hangs without a word: refuse, as vm-run does.
    vmm::pvm::check(&choice.path, choice.pvm)
        .map_err(|e| Error::backend(VmError::Unavailable(e.to_string())))?;
    let size = sizing::size(spec, &config.vm).map_err(|m| Error::backend(VmError::Unsupported(m)))?;
    let request = workload(spec)?;
    let read_only = spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false);
    let binds =
        binds::from_spec(spec, &req.bundle.dir).map_err(|m| Error::backend(VmError::Unsupported(m)))?;
    let cgroup = crate::native::backend::prepare(req)?;
    let mut guest_spec =
        guest_spec::for_guest(spec, &binds).map_err(|m| Error::backend(VmError::Unsupported(m)))?;
    if let Some(name) =
        host_side::joined_hostname(spec).map_err(|m| Error::backend(VmError::Unsupported(m)))?
    {
        guest_spec.set_hostname(Some(name));
    }
    let own_userns = userns::unprivileged();
    if own_userns {
        userns::guest_ids(&mut guest_spec).map_err(|m| Error::backend(VmError::Unsupported(m)))?;
        userns::guest_sys(spec, &mut guest_spec);
    }
    let guest_spec = serde_json::to_value(guest_spec)
        .map_err(|e| Error::backend(VmError::Unsupported(format!("the spec for the guest: {e}"))))?;
    Ok(Plan {
        cgroup,
        kernel: kernel_image,
        kernel_pvm: choice.pvm,
        size,
        boot_timeout: config.vm.boot_timeout_s.map(Duration::from_secs).unwrap_or(DEFAULT_BOOT_TIMEOUT),
        request,
        share: req.bundle.rootfs.clone(),
        read_only,
        binds,
        guest_spec,
        preserved,
        own_userns,
    })
}

/// /dev/kvm opened for reading and writing, as the VMM will: a user who may not gets told
/// which privilege is missing now, before anything is made, not by the VMM later.
fn kvm_usable() -> Result<()> {
    match std::fs::OpenOptions::new().read(true).write(true).open(KVM_DEVICE) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            Err(Error::backend(VmError::Unavailable(format!(
                "{KVM_DEVICE}: {e}: the user (uid {}) needs to be in the kvm group (or otherwise allowed to \
                 read and write {KVM_DEVICE}) to run VM containers",
                nix::unistd::geteuid()
            ))))
        }
        Err(e) => Err(Error::backend(VmError::Unavailable(format!("{KVM_DEVICE}: {e}")))),
    }
}

/// The container's process as the agent's Run request.
fn workload(spec: &oci_spec::runtime::Spec) -> Result<RunRequest> {
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::backend(VmError::Unsupported("the spec has no process".into())))?;
    request_for(process)
}

/// A process's args, env, cwd, user and terminal as the agent's Run request (the workload's,
/// or an exec'd one).
pub(super) fn request_for(process: &oci_spec::runtime::Process) -> Result<RunRequest> {
    let unsupported = |m: &str| Error::backend(VmError::Unsupported(m.to_string()));
    let args = process.args().clone().unwrap_or_default();
    if args.is_empty() {
        return Err(unsupported("process.args is empty"));
    }
    let user = process.user();
    let guest_user = GuestUser {
        uid: user.uid(),
        gid: user.gid(),
        additional_gids: user.additional_gids().clone().unwrap_or_default(),
    };
    Ok(RunRequest {
        args,
        env: process.env().clone().unwrap_or_default(),
        cwd: process.cwd().display().to_string(),
        user: Some(guest_user),
        terminal: process.terminal().unwrap_or(false),
        process: Some(
            serde_json::to_value(guest_spec::process_for_guest(process))
                .map_err(|e| unsupported(&format!("the process for the guest: {e}")))?,
        ),
        sub_cgroups: Vec::new(),
        preserved: Vec::new(),
    })
}
