//! The container's root filesystem: propagation, the spec's mounts, /dev, pivot_root,
//! masked and read-only paths, and a read-only root.

use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;
use nix::unistd::{chdir, chroot, pivot_root};
use oci_spec::runtime::Spec;

use super::devices;
use super::error::{msg, Context, Result};
use super::idmapmount::Prepared;
use super::mounts::{locked_flags, mount_one, remount_bind, MountCtx};
use super::paths::{open_in_root, proc_fd_path, Create};

fn propagation(spec: &Spec) -> Result<Option<MsFlags>> {
    let Some(p) = spec.linux().as_ref().and_then(|l| l.rootfs_propagation().clone()) else {
        return Ok(None);
    };
    let f = match p.as_str() {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        other => return msg(format!("linux.rootfsPropagation: unknown value {other:?}")),
    };
    Ok(Some(f))
}

/// Where the spec's bind mounts come from, beside the host's paths.
pub struct Sources<'a> {
    /// The bundle: a relative source is relative to it.
    pub bundle: &'a Path,
    /// The idmapped mounts `hull create` made (idmapmount.rs).
    pub idmapped: &'a Prepared,
}

/// Sets up the root filesystem and enters it: in the init's own mount namespace, or (without
/// one) below the bind of the rootfs that `hull create` made in the host's (hostroot.rs).
/// `before_pivot` runs once the mounts are made, before the host's root goes away (hooks).
pub fn setup(
    spec: &Spec,
    rootfs: &Path,
    sources: &Sources,
    no_pivot: bool,
    in_userns: bool,
    own_mount_ns: bool,
    before_pivot: &mut dyn FnMut() -> Result<()>,
) -> Result<()> {
    let prop = propagation(spec)?;
    if own_mount_ns {
        private_root(rootfs, prop)?;
    } else if prop.is_some() {
        // Validation refuses it; checked again because it would change a host mount.
        return msg("linux.rootfsPropagation needs a mount namespace of the container's own");
    }
    let root = open(rootfs, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        .ctx(|| format!("open rootfs {}", rootfs.display()))?;
    let in_cgroupns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|n| n.iter().any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Cgroup));
    let ctx =
        MountCtx { root: &root, bundle: sources.bundle, in_userns, in_cgroupns, idmapped: sources.idmapped };
    let mounts = spec.mounts().clone().unwrap_or_default();
    for (i, m) in mounts.iter().enumerate() {
        mount_one(&ctx, i, m)?;
    }
    let dev_is_bind = mounts.iter().any(|m| {
        m.destination() == Path::new("/dev")
            && (m.typ().as_deref() == Some("bind")
                || m.options().as_deref().unwrap_or(&[]).iter().any(|o| o == "bind" || o == "rbind"))
    });
    if !dev_is_bind {
        let devs = spec.linux().as_ref().and_then(|l| l.devices().clone()).unwrap_or_default();
        devices::create_all(&root, &devs, in_userns)?;
        devices::symlinks(&root)?;
    }
    // Let go of the rootfs fd before leaving the host's root.
    drop(root);
    before_pivot()?;
    if own_mount_ns {
        enter(rootfs, no_pivot)?;
    } else {
        // pivot_root or a move onto "/" would change the root of the whole host: chroot into
        // the bind (runc chroots here too, whatever --no-pivot says).
        chdir(rootfs).ctx(|| format!("chdir {}", rootfs.display()))?;
        chroot(".").ctx(|| "chroot".to_string())?;
        chdir("/").ctx(|| "chdir /".to_string())?;
    }
    let linux = spec.linux().as_ref();
    // Before readonlyPaths makes /proc/sys read-only, as runc orders it.
    super::sysctl::apply(&linux.and_then(|l| l.sysctl().clone()).unwrap_or_default())?;
    let slash = open("/", OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        .ctx(|| "open new root".to_string())?;
    let none = Prepared::default();
    let ctx = MountCtx { root: &slash, bundle: sources.bundle, in_userns, in_cgroupns, idmapped: &none };
    for p in linux.and_then(|l| l.masked_paths().clone()).unwrap_or_default() {
        mask(&ctx, Path::new(&p))?;
    }
    for p in linux.and_then(|l| l.readonly_paths().clone()).unwrap_or_default() {
        make_readonly(&ctx, Path::new(&p))?;
    }
    if spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false) {
        let mut flags = MsFlags::MS_RDONLY | MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
        if in_userns {
            flags |= locked_flags("/");
        }
        mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
            .ctx(|| "remount root read-only".to_string())?;
    }
    if let Some(p) = prop {
        mount(None::<&str>, "/", None::<&str>, p, None::<&str>)
            .ctx(|| format!("set rootfs propagation {p:?}"))?;
    }
    Ok(())
}

/// In the container's own mount namespace, before the first mount: nothing may propagate back
/// to the host, and pivot_root needs the rootfs to be a mount point.
fn private_root(rootfs: &Path, prop: Option<MsFlags>) -> Result<()> {
    // Make everything a slave (or what the spec asks) before the first mount.
    let first = match prop {
        // Shared would leak our mounts to the host; unbindable would forbid binding the
        // rootfs. Both are applied to the new root after pivot_root instead.
        Some(p) if p.intersects(MsFlags::MS_SHARED | MsFlags::MS_UNBINDABLE) => {
            MsFlags::MS_SLAVE | MsFlags::MS_REC
        }
        Some(p) => p | MsFlags::MS_REC,
        None => MsFlags::MS_SLAVE | MsFlags::MS_REC,
    };
    mount(None::<&str>, "/", None::<&str>, first, None::<&str>).ctx(|| "make / a slave mount".to_string())?;
    mount(Some(rootfs), rootfs, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
        .ctx(|| format!("bind rootfs {}", rootfs.display()))
}

/// Makes the rootfs "/" and lets go of the host's root.
fn enter(rootfs: &Path, no_pivot: bool) -> Result<()> {
    chdir(rootfs).ctx(|| format!("chdir {}", rootfs.display()))?;
    if no_pivot {
        mount(Some(rootfs), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
            .ctx(|| "move rootfs to /".to_string())?;
        chroot(".").ctx(|| "chroot".to_string())?;
    } else {
        // pivot_root(".", ".") stacks the old root under the new one; detaching "." then
        // removes the old root without needing a directory for it inside the rootfs.
        pivot_root(".", ".").ctx(|| "pivot_root".to_string())?;
        mount(None::<&str>, ".", None::<&str>, MsFlags::MS_SLAVE | MsFlags::MS_REC, None::<&str>)
            .ctx(|| "make old root a slave".to_string())?;
        umount2(".", MntFlags::MNT_DETACH).ctx(|| "detach old root".to_string())?;
    }
    chdir("/").ctx(|| "chdir /".to_string())
}

/// Hides a path: /dev/null over a file, an empty read-only tmpfs over a directory.
fn mask(ctx: &MountCtx, p: &Path) -> Result<()> {
    let target = match open_in_root(ctx.root, p, Create::No) {
        Ok(t) => t,
        Err(super::error::Error::Sys { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(())
        }
        Err(e) => return Err(e),
    };
    let path = proc_fd_path(&target);
    let is_dir = std::fs::metadata(&path).map(|m| m.is_dir()).unwrap_or(false);
    if is_dir {
        return mount(Some("tmpfs"), path.as_str(), Some("tmpfs"), MsFlags::MS_RDONLY, Some("size=0"))
            .ctx(|| format!("mask {}", p.display()));
    }
    // /dev/null is opened once and checked to really be the null device before it is bound
    // through its fd: a container could have replaced it (CVE-2025-31133).
    let null = open_in_root(ctx.root, Path::new("/dev/null"), Create::No)?;
    let null_path = proc_fd_path(&null);
    let st = nix::sys::stat::stat(null_path.as_str()).ctx(|| "stat /dev/null".to_string())?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != nix::sys::stat::makedev(1, 3) {
        return super::error::msg(format!(
            "mask {}: /dev/null in the container is not the null device",
            p.display()
        ));
    }
    mount(Some(null_path.as_str()), path.as_str(), None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .ctx(|| format!("mask {}", p.display()))
}

fn make_readonly(ctx: &MountCtx, p: &Path) -> Result<()> {
    let target = match open_in_root(ctx.root, p, Create::No) {
        Ok(t) => t,
        Err(super::error::Error::Sys { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(())
        }
        Err(e) => return Err(e),
    };
    let path = proc_fd_path(&target);
    mount(Some(path.as_str()), path.as_str(), None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
        .ctx(|| format!("bind {} for read-only", p.display()))?;
    // Keep what the path already had (nosuid, noexec on /proc): only add read-only.
    let keep = locked_flags(&proc_fd_path(&open_in_root(ctx.root, p, Create::No)?));
    remount_bind(ctx, p, keep | MsFlags::MS_RDONLY | MsFlags::MS_REC, MsFlags::empty())
}
