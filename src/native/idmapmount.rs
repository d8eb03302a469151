//! Idmapped bind mounts: the runtime spec's `idmap` and `ridmap` options, with the mount's own
//! `uidMappings`/`gidMappings` or, without them, the mappings of the container's user
//! namespace (runc's reading of runtime-spec 1.2).
//!
//! Where they are made: the kernel sets MOUNT_ATTR_IDMAP only for a process with CAP_SYS_ADMIN
//! in the user namespace that owns the source's superblock, which for a host directory is the
//! host's. The container's stages lose that early: stage 1 unshares the container's user
//! namespace, and stage 2, which makes the other mounts, is root of that namespace only. So,
//! as runc's privileged parent does, `hull create` makes each idmapped mount itself, before it
//! forks stage 1, as a detached mount tree: open_tree(OPEN_TREE_CLONE) of the source, then
//! mount_setattr(MOUNT_ATTR_IDMAP) with a user namespace that carries the mappings. hull's
//! stages are forks of `hull create` (no exec in between), so they inherit the fds and no fd
//! passing is needed; stage 2 attaches each tree with move_mount onto its destination,
//! resolved inside the rootfs like every other mount, in the spec's order among them. Moving
//! a detached tree needs privilege over the target mount namespace only, which stage 2 has.
//! Made before any process of the container exists, a failure (a filesystem that cannot be
//! idmapped, above all) leaves nothing to undo.
//!
//! The mappings are written into that user namespace as given, `containerID hostID size`, as
//! runc and crun do: a file whose owner on disk is `containerID + k` shows at the mount as
//! owned by host id `hostID + k` (which the container's own user namespace then shows as its
//! id), and a file made through the mount by host id `hostID + k` is stored as `containerID +
//! k`. An owner outside the mappings shows as the overflow id (65534).

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::{fstat, Mode};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid};
use oci_spec::runtime::{LinuxIdMapping, Mount, Spec};

use super::error::{msg, Context, Error, Result};
use super::mountopts::{Idmap, MountOpts};
use super::namespaces::Plan;

/// One idmapped mount, made and waiting to be attached.
pub struct Detached {
    /// The detached mount tree (open_tree's fd, close-on-exec).
    tree: OwnedFd,
    /// The source is a directory (its destination is made as one), else a file.
    pub is_dir: bool,
}

/// A container's idmapped mounts, by their index in the spec's `mounts`.
#[derive(Default)]
pub struct Prepared {
    by_index: Vec<(usize, Detached)>,
}

impl Prepared {
    /// The idmapped mount made for `mounts[index]`.
    pub fn get(&self, index: usize) -> Option<&Detached> {
        self.by_index.iter().find(|(i, _)| *i == index).map(|(_, d)| d)
    }

    /// Their fds, which stage 1 keeps when it closes what it inherited.
    pub fn raw_fds(&self) -> Vec<RawFd> {
        self.by_index.iter().map(|(_, d)| d.tree.as_raw_fd()).collect()
    }
}

/// Makes the spec's idmapped mounts (see the module's doc). Runs in `hull create`, with the
/// host's privilege, before stage 1 exists.
pub fn prepare(spec: &Spec, bundle: &Path, plan: &Plan) -> Result<Prepared> {
    let mut out = Prepared::default();
    // Mounts with the same mappings share one user namespace. The fds close on return: each
    // idmapped mount keeps what it needs of its namespace.
    let mut namespaces = HashMap::new();
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let opts = MountOpts::parse(m.options().as_deref().unwrap_or(&[]));
        if opts.idmap == Idmap::No {
            continue;
        }
        let detached = make(spec, bundle, plan, m, &opts, &mut namespaces)
            .map_err(|e| Error::Msg(format!("mounts[{i}]: {}: {e}", super::mounts::describe(m))))?;
        out.by_index.push((i, detached));
    }
    Ok(out)
}

/// The user namespace a mount's idmapping comes from.
enum Namespace<'a> {
    /// A new one with these uid_map and gid_map lines.
    New { uids: String, gids: String },
    /// The container's, joined at this path.
    Joined(&'a str),
}

impl Namespace<'_> {
    fn new(uids: &[LinuxIdMapping], gids: &[LinuxIdMapping]) -> Self {
        Namespace::New { uids: super::idmap::render(uids), gids: super::idmap::render(gids) }
    }
}

fn make(
    spec: &Spec,
    bundle: &Path,
    plan: &Plan,
    m: &Mount,
    opts: &MountOpts,
    namespaces: &mut HashMap<String, OwnedFd>,
) -> Result<Detached> {
    // Validation refuses these already; checked again as this is where it would matter.
    if !(opts.bind || m.typ().as_deref() == Some("bind")) {
        return msg("idmap and ridmap apply to bind mounts only");
    }
    let Some(source) = m.source().as_ref() else { return msg("a bind mount needs a source") };
    let source: PathBuf = if source.is_absolute() { source.clone() } else { bundle.join(source) };
    let ns = namespace_of(spec, plan, m)?;
    let key = match &ns {
        Namespace::New { uids, gids } => format!("maps {uids}/{gids}"),
        Namespace::Joined(path) => format!("path {path}"),
    };
    if !namespaces.contains_key(&key) {
        let fd = match ns {
            Namespace::New { uids, gids } => new_userns(&uids, &gids)?,
            Namespace::Joined(path) => open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
                .ctx(|| format!("open the container's user namespace {path} for the mappings"))?,
        };
        namespaces.insert(key.clone(), fd);
    }
    let Some(userns) = namespaces.get(&key) else {
        return msg("the user namespace for the mappings is gone");
    };
    // rbind brings the source's submounts, bind does not, as for any bind; ridmap decides
    // whether the idmapping reaches those submounts too (runc: idmap alone is the top only).
    let tree = open_tree(&source, opts.flags.contains(nix::mount::MsFlags::MS_REC))?;
    set_idmap(&tree, userns, opts.idmap == Idmap::Recursive, &source)?;
    let st = fstat(&tree).ctx(|| format!("stat source {}", source.display()))?;
    Ok(Detached { tree, is_dir: st.st_mode & libc::S_IFMT == libc::S_IFDIR })
}

/// The mount's own mappings, else the container's user namespace's.
fn namespace_of<'a>(spec: &Spec, plan: &'a Plan, m: &Mount) -> Result<Namespace<'a>> {
    let uids = m.uid_mappings().as_deref().unwrap_or_default();
    let gids = m.gid_mappings().as_deref().unwrap_or_default();
    if !uids.is_empty() || !gids.is_empty() {
        if uids.is_empty() || gids.is_empty() {
            return msg("uidMappings and gidMappings go together");
        }
        return Ok(Namespace::new(uids, gids));
    }
    if plan.create.contains(CloneFlags::CLONE_NEWUSER) {
        let linux = spec.linux().as_ref();
        let uids = linux.and_then(|l| l.uid_mappings().as_deref()).unwrap_or_default();
        let gids = linux.and_then(|l| l.gid_mappings().as_deref()).unwrap_or_default();
        return Ok(Namespace::new(uids, gids));
    }
    if let Some((_, path)) = plan.joins.iter().find(|(f, _)| *f == CloneFlags::CLONE_NEWUSER) {
        return Ok(Namespace::Joined(path));
    }
    msg("no uidMappings and gidMappings on the mount, and no user namespace in the container whose mappings it could take")
}

/// A user namespace with these uid_map and gid_map lines, as an fd: a child is born in a new
/// user namespace (clone3 with CLONE_NEWUSER) and waits while its maps are written and its
/// namespace opened, then is killed; the fd keeps the namespace.
fn new_userns(uids: &str, gids: &str) -> Result<OwnedFd> {
    let parent = nix::unistd::getpid();
    // SAFETY: `hull create` is single-threaded until it forks its stages (native::create forks
    // the same way); the child only makes async-signal-safe calls (`hold`).
    let forked = unsafe { super::clone_into::fork_into_namespaces(CloneFlags::CLONE_NEWUSER) }
        .ctx(|| "fork a process in a new user namespace for the mappings".to_string())?;
    match forked {
        ForkResult::Child => hold(parent),
        ForkResult::Parent { child } => {
            let made = write_maps_and_open(child, uids, gids);
            // The child only waits to be killed; nothing of it is left either way.
            let _ = kill(child, Signal::SIGKILL);
            let _ = waitpid(child, None);
            made
        }
    }
}

/// The user namespace holder's life: wait until killed, or die with `hull create`.
fn hold(parent: Pid) -> ! {
    // SAFETY: prctl, getppid, pause and _exit are async-signal-safe system calls that touch no
    // memory of this process; nothing here allocates or takes a lock.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        // `hull create` died before the prctl took effect: nobody would kill us.
        if libc::getppid() != parent.as_raw() {
            libc::_exit(1);
        }
        loop {
            libc::pause();
        }
    }
}

fn write_maps_and_open(pid: Pid, uids: &str, gids: &str) -> Result<OwnedFd> {
    for (file, text) in [("uid_map", uids), ("gid_map", gids)] {
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, text)
            .ctx(|| format!("write {path} ({})", text.trim_end().replace('\n', ", ")))?;
    }
    let path = format!("/proc/{pid}/ns/user");
    open(path.as_str(), OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).ctx(|| format!("open {path}"))
}

/// open_tree(2) with OPEN_TREE_CLONE: a detached copy of the mount at `source` (with its
/// submounts when `recursive`), which is not yet in any mount namespace's tree.
fn open_tree(source: &Path, recursive: bool) -> Result<OwnedFd> {
    let path = CString::new(source.as_os_str().as_bytes())
        .map_err(|_| Error::Msg(format!("source {}: holds a NUL byte", source.display())))?;
    let mut flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: open_tree(2) reads the NUL-terminated `path`, which lives for the call, and
    // returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error())
            .ctx(|| format!("open_tree(OPEN_TREE_CLONE) of source {}", source.display()));
    }
    let fd = RawFd::try_from(fd).map_err(|_| Error::Msg(format!("open_tree returned fd {fd}")))?;
    // SAFETY: the kernel just returned this fd: it is open, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sets the idmapping of `userns` on the detached `tree` (and every mount in it when
/// `recursive`). An error names the kernel's likely reason.
fn set_idmap(tree: &OwnedFd, userns: &OwnedFd, recursive: bool, source: &Path) -> Result<()> {
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        // An open fd is never negative.
        userns_fd: userns.as_raw_fd() as u64,
    };
    let flags = libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: mount_setattr(2) reads `size` bytes of `attr`, which lives for the call; the path
    // is an empty C string and `tree` an open fd, resolved with AT_EMPTY_PATH.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    let why = match e.raw_os_error() {
        Some(libc::EINVAL) if recursive => format!(
            ": the filesystem of {} or of a submount may not support idmapped mounts",
            source.display()
        ),
        Some(libc::EINVAL) => {
            format!(": the filesystem of {} may not support idmapped mounts", source.display())
        }
        Some(libc::EPERM) => format!(
            ": an idmapped mount needs CAP_SYS_ADMIN over the filesystem of {} (hull as root on the host)",
            source.display()
        ),
        _ => String::new(),
    };
    Err(Error::Msg(format!("set MOUNT_ATTR_IDMAP on {}: {e}{why}", source.display())))
}

/// Attaches the idmapped mount onto `target`, an O_PATH fd of its destination inside the
/// rootfs. Runs in stage 2, in the container's mount namespace.
pub fn attach(d: &Detached, target: &OwnedFd) -> Result<()> {
    let flags = libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH;
    // SAFETY: move_mount(2) reads the two empty C strings, which live for the call; both fds
    // are open, each resolved as itself with its *_EMPTY_PATH flag.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            d.tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            flags,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error())
            .ctx(|| "move_mount the idmapped mount onto its destination".to_string());
    }
    Ok(())
}
