//! A `cgroup` mount inside the container: the container's own view of its cgroups.
//!
//! On a pure cgroup v2 host this is a cgroup2 mount (the cgroup namespace makes it start at
//! the container's cgroup). On a v1 or hybrid host a single mount cannot hold every hierarchy,
//! so it is a tmpfs with one directory per hierarchy, each the container's own cgroup of it.

use std::path::Path;

use nix::mount::MsFlags;
use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};

use super::error::{Context, Result};
use super::mountopts::MountOpts;
use super::mounts::{bind_host_state, MountCtx};
use super::paths::{open_in_root, proc_fd_path, Create};
use crate::cgroups::{mounted_hierarchies, own_cgroups, Hierarchy};

pub fn mount(ctx: &MountCtx, dest: &Path, opts: &MountOpts) -> Result<()> {
    let what = || format!("mount cgroup on {}", dest.display());
    let unified = statfs("/sys/fs/cgroup").map(|s| s.filesystem_type() == CGROUP2_SUPER_MAGIC);
    if unified.unwrap_or(false) {
        // With a cgroup namespace a fresh cgroup2 mount starts at the container's cgroup.
        // Without one it would show the whole host tree: bind the container's own
        // directory instead (what runc does), which is also the way in when a user
        // namespace forbids the mount.
        if ctx.in_cgroupns {
            let target = open_in_root(ctx.root, dest, Create::Dir)?;
            let flags = opts.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
            let fresh = nix::mount::mount(
                Some("cgroup2"),
                proc_fd_path(&target).as_str(),
                Some("cgroup2"),
                flags,
                None::<&str>,
            );
            if fresh.is_ok() {
                return Ok(());
            }
        }
        let own = own_cgroups().into_iter().find(|(k, _)| k.is_empty()).map(|(_, p)| p).unwrap_or_default();
        let host_dir = Path::new("/sys/fs/cgroup").join(own.trim_start_matches('/'));
        let mut o = opts.clone();
        o.flags |= MsFlags::MS_BIND | MsFlags::MS_REC | bind_read_only(opts);
        return bind_host_state(ctx, &host_dir, dest, &o)
            .map_err(|e| super::error::Error::Msg(format!("{}: {e}", what())));
    }
    // v1 / hybrid: a tmpfs holding one bind per hierarchy, made read-only at the end (when
    // the spec says ro, or a hierarchy had to be bound from the host).
    let target = open_in_root(ctx.root, dest, Create::Dir)?;
    let base = opts.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY);
    nix::mount::mount(Some("tmpfs"), proc_fd_path(&target).as_str(), Some("tmpfs"), base, Some("mode=755"))
        .ctx(what)?;
    let own = own_cgroups();
    // Whether a hierarchy was bound from the host (then the tmpfs is made read-only as well).
    let mut bound = false;
    for h in mounted_hierarchies() {
        let Some(rel) = own.iter().find(|(k, _)| *k == h.key).map(|(_, p)| p.clone()) else {
            continue;
        };
        let host_dir = Path::new(&h.mount_point).join(rel.trim_start_matches('/'));
        let name = Path::new(&h.mount_point)
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if name.is_empty() || !host_dir.is_dir() {
            continue;
        }
        let sub = dest.join(&name);
        // In its own cgroup namespace (and not a user namespace, where v1 mounts are not
        // allowed) the container gets a fresh mount of the hierarchy, which starts at its
        // own cgroup; binding the host's directory would show the namespace root instead.
        if ctx.in_cgroupns && !ctx.in_userns && fresh_mount(ctx, &h, &sub, base, opts).is_ok() {
            continue;
        }
        let keep = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY;
        let o = MountOpts {
            flags: MsFlags::MS_BIND | MsFlags::MS_REC | (base & keep) | bind_read_only(opts),
            ..MountOpts::default()
        };
        bind_host_state(ctx, &host_dir, &sub, &o)?;
        bound = true;
    }
    if opts.flags.contains(MsFlags::MS_RDONLY) || (bound && !opts.cleared.contains(MsFlags::MS_RDONLY)) {
        let target = open_in_root(ctx.root, dest, Create::No)?;
        nix::mount::mount(
            None::<&str>,
            proc_fd_path(&target).as_str(),
            None::<&str>,
            base | MsFlags::MS_RDONLY | MsFlags::MS_REMOUNT,
            Some("mode=755"),
        )
        .ctx(|| format!("remount {} read-only", dest.display()))?;
    }
    Ok(())
}

/// MS_RDONLY for a bind of the host's cgroups in place of a fresh cgroup mount, unless the
/// spec's mount says `rw`: the host's tree (the user's own cgroups, for a rootless container)
/// must not become writable because the fresh mount was not allowed (runc's CVE-2023-25809,
/// whose fix does the same).
fn bind_read_only(opts: &MountOpts) -> MsFlags {
    if opts.cleared.contains(MsFlags::MS_RDONLY) {
        MsFlags::empty()
    } else {
        MsFlags::MS_RDONLY
    }
}

fn fresh_mount(ctx: &MountCtx, h: &Hierarchy, sub: &Path, base: MsFlags, opts: &MountOpts) -> Result<()> {
    let target = open_in_root(ctx.root, sub, Create::Dir)?;
    let (fstype, data) = if h.key.is_empty() { ("cgroup2", None) } else { ("cgroup", Some(h.key.as_str())) };
    let keep = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let flags = (base & keep) | (opts.flags & MsFlags::MS_RDONLY);
    nix::mount::mount(Some(fstype), proc_fd_path(&target).as_str(), Some(fstype), flags, data)
        .ctx(|| format!("mount cgroup {} on {}", h.key, sub.display()))
}
