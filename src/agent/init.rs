//! PID 1's setup in the guest: the filesystems a Linux userland expects, and the share.
//!
//! The initramfs is the root (a tmpfs the kernel unpacked the cpio into); it holds empty
//! /proc, /sys, /dev, /run and /mnt for these mounts, and /dev/console and /dev/null nodes so
//! the kernel and Rust's runtime have stdio before devtmpfs is mounted.

use std::os::fd::IntoRawFd;
use std::path::Path;

use anyhow::Context;
use nix::mount::{mount, MsFlags};

use super::console;
use super::{AgentConfig, BINDS_MOUNT_POINT, BINDS_TAG};

/// devtmpfs on /dev: first, since everything else prints through it.
pub fn mount_dev() -> anyhow::Result<()> {
    mount_fs("devtmpfs", "/dev", "devtmpfs", MsFlags::MS_NOSUID, Some("mode=0755"))
}

/// Makes fds 0, 1 and 2 open: the kernel leaves them closed when it has no console, and then
/// the first socket the agent opens would become "stdout".
pub fn ensure_stdio() {
    for fd in 0..3 {
        // SAFETY: F_GETFD only queries the descriptor table.
        let open = unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1;
        if open {
            continue;
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/console")
            .or_else(|_| std::fs::OpenOptions::new().read(true).write(true).open("/dev/null"));
        let Ok(file) = file else { continue };
        // The fd is ours now, and stays open for the life of the process.
        let raw = file.into_raw_fd();
        if raw == fd {
            // Opened right onto the standard fd (the lowest free one): clear its O_CLOEXEC so
            // that it is the command's stdio too.
            // SAFETY: fcntl on an fd this process owns.
            unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        } else {
            // SAFETY: dup2 onto a closed standard fd (the copy has no O_CLOEXEC), then closing
            // the temporary fd, which nothing else refers to.
            unsafe {
                libc::dup2(raw, fd);
                libc::close(raw);
            }
        }
    }
}

/// Everything else: proc, sysfs, /dev's sub-mounts, /run, cgroup2, and the share.
pub fn mount_all(config: &AgentConfig) -> anyhow::Result<()> {
    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_fs("proc", "/proc", "proc", nosuid_nodev_noexec, None)?;
    mount_fs("sysfs", "/sys", "sysfs", nosuid_nodev_noexec, None)?;
    mount_fs("tmpfs", "/run", "tmpfs", MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some("mode=0755"))?;
    // Useful, not essential: the command still runs without them.
    let optional = [
        (
            "devpts",
            "/dev/pts",
            "devpts",
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            "gid=5,mode=0620,ptmxmode=0666",
        ),
        ("shm", "/dev/shm", "tmpfs", MsFlags::MS_NOSUID | MsFlags::MS_NODEV, "mode=1777"),
        ("cgroup2", "/sys/fs/cgroup", "cgroup2", nosuid_nodev_noexec, ""),
    ];
    for (source, target, fstype, flags, data) in optional {
        let data = (!data.is_empty()).then_some(data);
        if let Err(err) = mount_fs(source, target, fstype, flags, data) {
            console::warn(&format!("{err:#}"));
        }
    }
    dev_links();
    mount_share(config)?;
    mount_binds(config)
}

/// A VM container's bind mounts: the binds share on [`BINDS_MOUNT_POINT`], then (without a
/// container spec, which binds them itself) each entry
/// bound onto its destination in the shared root (made when missing: a file for a file, a
/// directory for a directory), read-only where the spec says so. The host serves each entry
/// read-only too; this makes the guest's view say so.
fn mount_binds(config: &AgentConfig) -> anyhow::Result<()> {
    if config.binds.is_empty() {
        return Ok(());
    }
    mount_fs(BINDS_TAG, BINDS_MOUNT_POINT, "virtiofs", MsFlags::empty(), None)
        .context("the container's bind mounts (virtio-fs) are not available in the guest")?;
    if config.container.is_some() {
        // The container's spec names the entries as its bind sources: native create binds them.
        return Ok(());
    }
    let root = Path::new(&config.mount_point);
    for bind in &config.binds {
        let source = Path::new(BINDS_MOUNT_POINT).join(&bind.name);
        let target = root.join(bind.dest.trim_start_matches('/'));
        let is_dir = std::fs::metadata(&source).with_context(|| format!("bind {}", bind.dest))?.is_dir();
        if std::fs::symlink_metadata(&target).is_err() {
            let made = if is_dir {
                std::fs::create_dir_all(&target)
            } else {
                target.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| {
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(false)
                        .open(&target)
                        .map(drop)
                })
            };
            made.with_context(|| format!("making the mount point of {} in the container's root", bind.dest))?;
        }
        mount(Some(&source), &target, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
            .with_context(|| format!("binding {}", bind.dest))?;
        if bind.read_only {
            let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
            mount(None::<&str>, &target, None::<&str>, flags, None::<&str>)
                .with_context(|| format!("making {} read-only", bind.dest))?;
        }
        console::debug(&format!("bound {} (ro: {})", bind.dest, bind.read_only));
    }
    Ok(())
}

/// The share: `mount -t virtiofs TAG MOUNT_POINT`.
fn mount_share(config: &AgentConfig) -> anyhow::Result<()> {
    mount_fs(&config.share_tag, &config.mount_point, "virtiofs", MsFlags::empty(), None).with_context(
        || {
            format!(
                "the shared directory (virtio-fs tag {:?}) is not available in the guest",
                config.share_tag
            )
        },
    )?;
    console::debug(&format!("share {:?} mounted on {}", config.share_tag, config.mount_point));
    Ok(())
}

/// /dev/fd and /dev/std{in,out,err}, which shells and programs expect and devtmpfs lacks.
fn dev_links() {
    for (link, target) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        let _ = std::os::unix::fs::symlink(target, link);
    }
}

fn mount_fs(
    source: &str,
    target: &str,
    fstype: &str,
    flags: MsFlags,
    data: Option<&str>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(target).with_context(|| format!("creating {target}"))?;
    mount(Some(Path::new(source)), target, Some(fstype), flags, data)
        .with_context(|| format!("mounting {fstype} on {target}"))?;
    console::debug(&format!("mounted {fstype} on {target}"));
    Ok(())
}
