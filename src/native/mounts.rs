//! The spec's `mounts`, each made on an fd resolved inside the rootfs.

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sys::statvfs::{statvfs, FsFlags};
use oci_spec::runtime::Mount;

use super::cgroupfs;
use super::error::{Context, Result};
use super::idmapmount;
use super::mountattr;
use super::mountopts::{Idmap, MountOpts};
use super::paths::{open_in_root, proc_fd_path, Create};

/// What every mount needs to know about the container around it.
pub struct MountCtx<'a> {
    pub root: &'a OwnedFd,
    pub bundle: &'a Path,
    pub in_userns: bool,
    /// The container has a cgroup namespace of its own (a fresh cgroup mount then starts
    /// at its cgroup).
    pub in_cgroupns: bool,
    /// The idmapped mounts `hull create` made for the spec's mounts (idmapmount.rs).
    pub idmapped: &'a idmapmount::Prepared,
}

pub(super) fn describe(m: &Mount) -> String {
    let typ = m.typ().as_deref().unwrap_or("bind");
    format!("mount {typ} on {}", m.destination().display())
}

/// Makes `mounts[index]` of the spec, then sets its recursive options (`rro`, ...) on it and
/// on every mount below it.
pub fn mount_one(ctx: &MountCtx, index: usize, m: &Mount) -> Result<()> {
    let opts = MountOpts::parse(m.options().as_deref().unwrap_or(&[]));
    make(ctx, index, m, &opts)?;
    mountattr::apply(ctx.root, m.destination(), &opts).map_err(|e| prefix(e, &describe(m)))
}

fn make(ctx: &MountCtx, index: usize, m: &Mount, opts: &MountOpts) -> Result<()> {
    let typ = m.typ().as_deref().unwrap_or("none");
    let dest = m.destination();
    let what = || describe(m);
    if matches!(typ, "proc" | "sysfs") {
        refuse_symlink(ctx, dest).map_err(|e| prefix(e, &what()))?;
    }
    if opts.bind || typ == "bind" {
        return bind(ctx, index, m, opts);
    }
    if opts.idmap != Idmap::No {
        // Validation refuses it; never taken as a mount without its idmapping.
        return super::error::msg(format!("{}: idmap and ridmap apply to bind mounts only", what()));
    }
    match typ {
        "cgroup" | "cgroup2" => return cgroupfs::mount(ctx, dest, opts),
        "sysfs" => {
            let target = open_in_root(ctx.root, dest, Create::Dir).map_err(|e| prefix(e, &what()))?;
            match mount_fs(&target, "sysfs", "sysfs", opts) {
                // Without a network namespace of its own, an unprivileged user namespace may
                // not mount sysfs: bind the host's read-only view instead, as runc does.
                Err(Errno::EPERM) if ctx.in_userns => {
                    let mut o = opts.clone();
                    o.flags |= MsFlags::MS_BIND | MsFlags::MS_REC;
                    bind_host_state(ctx, Path::new("/sys"), dest, &o).map_err(|e| prefix(e, &what()))?;
                    return Ok(());
                }
                r => r.ctx(what)?,
            }
        }
        _ => {
            let target = open_in_root(ctx.root, dest, Create::Dir).map_err(|e| prefix(e, &what()))?;
            let source = m.source().as_ref().map(|s| s.display().to_string());
            mount_fs(&target, source.as_deref().unwrap_or(typ), typ, opts).ctx(what)?;
        }
    }
    apply_propagation(ctx, dest, opts).map_err(|e| prefix(e, &what()))
}

/// A proc or sysfs destination that the image made a symlink is refused outright: even
/// resolved inside the rootfs, it would put procfs where hull's later writes (sysctl, LSM
/// labels) and the masked paths do not expect it (youki's CVE-2025-54867).
fn refuse_symlink(ctx: &MountCtx, dest: &Path) -> Result<()> {
    let rel = dest.strip_prefix("/").unwrap_or(dest);
    if rel.as_os_str().is_empty() {
        return Ok(());
    }
    match nix::sys::stat::fstatat(ctx.root, rel, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFLNK => {
            super::error::msg(format!("{} is a symlink in the rootfs: refused", dest.display()))
        }
        _ => Ok(()),
    }
}

fn prefix(e: super::error::Error, what: &str) -> super::error::Error {
    super::error::Error::Msg(format!("{what}: {e}"))
}

fn mount_fs(target: &OwnedFd, source: &str, typ: &str, opts: &MountOpts) -> nix::Result<()> {
    let data = opts.data();
    mount(
        Some(source),
        proc_fd_path(target).as_str(),
        Some(typ),
        opts.flags - MsFlags::MS_REMOUNT,
        data.as_deref(),
    )
}

/// A bind mount: the source is a host path (relative ones are relative to the bundle).
fn bind(ctx: &MountCtx, index: usize, m: &Mount, opts: &MountOpts) -> Result<()> {
    if opts.idmap != Idmap::No {
        attach_idmapped(ctx, index, m.destination(), opts).map_err(|e| prefix(e, &describe(m)))?;
        return apply_propagation(ctx, m.destination(), opts).map_err(|e| prefix(e, &describe(m)));
    }
    let src = m.source().clone().unwrap_or_default();
    let src = if src.is_absolute() { src } else { ctx.bundle.join(src) };
    let mut o = opts.clone();
    o.flags |= MsFlags::MS_BIND;
    if m.destination() == Path::new("/sys") {
        bind_host_state(ctx, &src, m.destination(), &o).map_err(|e| prefix(e, &describe(m)))?;
    } else {
        bind_source(ctx, &src, m.destination(), &o).map_err(|e| prefix(e, &describe(m)))?;
    }
    apply_propagation(ctx, m.destination(), opts).map_err(|e| prefix(e, &describe(m)))
}

/// Binds host path `src` onto `dest` inside the rootfs, then remounts for flags like `ro`
/// that a bind ignores.
pub fn bind_source(ctx: &MountCtx, src: &Path, dest: &Path, o: &MountOpts) -> Result<()> {
    let meta = std::fs::metadata(src).ctx(|| format!("source {}", src.display()))?;
    let create = if meta.is_dir() { Create::Dir } else { Create::File };
    let target = open_in_root(ctx.root, dest, create)?;
    let bind_flags = MsFlags::MS_BIND | (o.flags & MsFlags::MS_REC);
    mount(Some(src), proc_fd_path(&target).as_str(), None::<&str>, bind_flags, None::<&str>)
        .ctx(|| format!("bind {}", src.display()))?;
    let extra = o.remount_flags();
    if !extra.is_empty() {
        remount_bind(ctx, dest, extra, o.cleared)?;
    }
    Ok(())
}

/// For a `rbind,ro` of /sys (as `spec --rootless` writes it, and the host /sys a user namespace
/// falls back to) and of the host's cgroups: the remount that makes a bind read-only reaches
/// the top mount only, and the host's /sys/fs/cgroup under /sys stayed writable (runc's
/// CVE-2023-25809). Other binds keep the OCI meaning of a plain `ro` (`rro` reaches the
/// submounts).
fn read_only_below(ctx: &MountCtx, dest: &Path, o: &MountOpts) -> Result<()> {
    if o.flags.contains(MsFlags::MS_REC | MsFlags::MS_RDONLY) {
        return mountattr::read_only_recursive(ctx.root, dest);
    }
    Ok(())
}

/// [`bind_source`] of host state (/sys, the host's cgroups), read-only all the way down when
/// it is a read-only rbind: see [`read_only_below`].
pub fn bind_host_state(ctx: &MountCtx, src: &Path, dest: &Path, o: &MountOpts) -> Result<()> {
    bind_source(ctx, src, dest, o)?;
    read_only_below(ctx, dest, o)
}

/// Puts the idmapped mount `hull create` made for `mounts[index]` on `dest` inside the rootfs,
/// then remounts for flags like `ro`, as for any bind.
fn attach_idmapped(ctx: &MountCtx, index: usize, dest: &Path, o: &MountOpts) -> Result<()> {
    let Some(d) = ctx.idmapped.get(index) else {
        return super::error::msg("the idmapped mount was not made (an error of hull's)");
    };
    let target = open_in_root(ctx.root, dest, if d.is_dir { Create::Dir } else { Create::File })?;
    idmapmount::attach(d, &target)?;
    let extra = o.remount_flags();
    if !extra.is_empty() {
        remount_bind(ctx, dest, extra, o.cleared)?;
    }
    Ok(())
}

/// Remounts the bind at `dest` with `flags`. Inside a user namespace the flags the kernel has
/// locked on the source (nosuid, nodev, noexec, atime) must be kept or the remount fails.
pub fn remount_bind(ctx: &MountCtx, dest: &Path, flags: MsFlags, cleared: MsFlags) -> Result<()> {
    let target = open_in_root(ctx.root, dest, Create::No)?;
    let path = proc_fd_path(&target);
    let mut flags = flags;
    if ctx.in_userns {
        flags |= locked_flags(&path) - cleared;
    }
    mount(
        None::<&str>,
        path.as_str(),
        None::<&str>,
        flags | MsFlags::MS_BIND | MsFlags::MS_REMOUNT,
        None::<&str>,
    )
    .ctx(|| format!("remount {} ({flags:?})", dest.display()))
}

pub fn locked_flags(path: &str) -> MsFlags {
    let Ok(st) = statvfs(path) else { return MsFlags::empty() };
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (s, m) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
    ] {
        if f.contains(s) {
            out |= m;
        }
    }
    out
}

fn apply_propagation(ctx: &MountCtx, dest: &Path, opts: &MountOpts) -> Result<()> {
    if opts.propagation.is_empty() {
        return Ok(());
    }
    let target = open_in_root(ctx.root, dest, Create::No)?;
    let path = proc_fd_path(&target);
    for p in &opts.propagation {
        mount(None::<&str>, path.as_str(), None::<&str>, *p, None::<&str>)
            .ctx(|| format!("set propagation {p:?} on {}", dest.display()))?;
    }
    Ok(())
}
