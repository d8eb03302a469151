//! The runtime spec's recursive mount options (`rro`, `rnosuid`, `rnoatime`, ...): mount
//! attributes set with mount_setattr(2) and AT_RECURSIVE on a mount once it is made, so they
//! hold on every submount too (a plain `ro` on an rbind leaves its submounts writable).

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use super::error::{Context, Result};
use super::mountopts::MountOpts;
use super::paths::{open_in_root, Create};

/// What mount_setattr(2) is asked to set and clear.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecursiveAttrs {
    pub set: u64,
    pub clear: u64,
}

impl RecursiveAttrs {
    pub fn is_empty(&self) -> bool {
        *self == RecursiveAttrs::default()
    }

    /// Folds one option in (a later option wins over an earlier one); false when `opt` is not
    /// a recursive option.
    pub fn add(&mut self, opt: &str) -> bool {
        let flag = |set: bool, f: u64| (set, f);
        let (set, f) = match opt {
            "rro" => flag(true, libc::MOUNT_ATTR_RDONLY),
            "rrw" => flag(false, libc::MOUNT_ATTR_RDONLY),
            "rnosuid" => flag(true, libc::MOUNT_ATTR_NOSUID),
            "rsuid" => flag(false, libc::MOUNT_ATTR_NOSUID),
            "rnodev" => flag(true, libc::MOUNT_ATTR_NODEV),
            "rdev" => flag(false, libc::MOUNT_ATTR_NODEV),
            "rnoexec" => flag(true, libc::MOUNT_ATTR_NOEXEC),
            "rexec" => flag(false, libc::MOUNT_ATTR_NOEXEC),
            "rnodiratime" => flag(true, libc::MOUNT_ATTR_NODIRATIME),
            "rdiratime" => flag(false, libc::MOUNT_ATTR_NODIRATIME),
            "rnosymfollow" => flag(true, libc::MOUNT_ATTR_NOSYMFOLLOW),
            "rsymfollow" => flag(false, libc::MOUNT_ATTR_NOSYMFOLLOW),
            // The access-time setting is one value, not bits: the kernel wants the whole
            // MOUNT_ATTR__ATIME field cleared and the new value set. Turning a mode off falls
            // back to the kernel's default, relatime, except `rnorelatime`, which (as
            // mount(8)'s norelatime) means strict atime updates.
            "rrelatime" | "ratime" | "rnostrictatime" => return self.atime(libc::MOUNT_ATTR_RELATIME),
            "rnoatime" => return self.atime(libc::MOUNT_ATTR_NOATIME),
            "rstrictatime" | "rnorelatime" => return self.atime(libc::MOUNT_ATTR_STRICTATIME),
            _ => return false,
        };
        if set {
            self.set |= f;
            self.clear &= !f;
        } else {
            self.clear |= f;
            self.set &= !f;
        }
        true
    }

    fn atime(&mut self, value: u64) -> bool {
        self.set = (self.set & !libc::MOUNT_ATTR__ATIME) | value;
        self.clear |= libc::MOUNT_ATTR__ATIME;
        true
    }
}

/// Applies the mount's recursive options to the mount at `dest` and everything below it.
pub fn apply(root: &OwnedFd, dest: &Path, opts: &MountOpts) -> Result<()> {
    if opts.recursive.is_empty() {
        return Ok(());
    }
    set_recursive(root, dest, opts.recursive)
}

/// Makes the mount at `dest` and every mount below it read-only. A `ro` bind with `rbind`
/// needs it: the remount that makes a bind read-only changes the top mount only, and the
/// submounts the recursive bind brought along (the host's /sys/fs/cgroup under /sys) stayed
/// writable (runc's CVE-2023-25809).
pub fn read_only_recursive(root: &OwnedFd, dest: &Path) -> Result<()> {
    set_recursive(root, dest, RecursiveAttrs { set: libc::MOUNT_ATTR_RDONLY, clear: 0 })
}

fn set_recursive(root: &OwnedFd, dest: &Path, attrs: RecursiveAttrs) -> Result<()> {
    let target = open_in_root(root, dest, Create::No)?;
    let attr = libc::mount_attr { attr_set: attrs.set, attr_clr: attrs.clear, propagation: 0, userns_fd: 0 };
    // SAFETY: mount_setattr(2) reads `size` bytes of `attr`, which lives for the call; the
    // path is an empty C string and `target` an open fd, resolved with AT_EMPTY_PATH.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            target.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| {
            format!("mount_setattr {} (set {:#x}, clear {:#x})", dest.display(), attrs.set, attrs.clear)
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(opts: &[&str]) -> RecursiveAttrs {
        let mut a = RecursiveAttrs::default();
        for o in opts {
            assert!(a.add(o), "{o}");
        }
        a
    }

    #[test]
    fn flags_set_and_clear_later_wins() {
        let a = of(&["rro", "rnosuid", "rexec"]);
        assert_eq!(a.set, libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID);
        assert_eq!(a.clear, libc::MOUNT_ATTR_NOEXEC);
        let a = of(&["rro", "rrw"]);
        assert_eq!((a.set, a.clear), (0, libc::MOUNT_ATTR_RDONLY));
    }

    #[test]
    fn atime_is_one_value() {
        let a = of(&["rnoatime"]);
        assert_eq!((a.set, a.clear), (libc::MOUNT_ATTR_NOATIME, libc::MOUNT_ATTR__ATIME));
        let a = of(&["rnoatime", "rstrictatime"]);
        assert_eq!((a.set, a.clear), (libc::MOUNT_ATTR_STRICTATIME, libc::MOUNT_ATTR__ATIME));
        let a = of(&["rnoatime", "ratime"]);
        assert_eq!((a.set, a.clear), (libc::MOUNT_ATTR_RELATIME, libc::MOUNT_ATTR__ATIME));
    }

    /// `hull features` lists exactly the recursive options this parser knows.
    #[test]
    fn features_list_the_recursive_options() {
        let f = crate::spec::features();
        let listed: Vec<&str> =
            f["mountOptions"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
        let all = [
            "rro",
            "rrw",
            "rnosuid",
            "rsuid",
            "rnodev",
            "rdev",
            "rnoexec",
            "rexec",
            "rnodiratime",
            "rdiratime",
            "rrelatime",
            "rnorelatime",
            "rnoatime",
            "ratime",
            "rstrictatime",
            "rnostrictatime",
            "rnosymfollow",
            "rsymfollow",
        ];
        for o in all {
            assert!(RecursiveAttrs::default().add(o), "{o}");
            assert!(listed.contains(&o), "hull features does not list {o}");
        }
        for o in listed {
            assert_eq!(RecursiveAttrs::default().add(o), all.contains(&o), "{o}");
        }
        for o in ["ro", "rbind", "rprivate", "ridmap", "rsize=1"] {
            assert!(!RecursiveAttrs::default().add(o), "{o}");
        }
    }
}
