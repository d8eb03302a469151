//! A container without a mount namespace of its own: its mounts go into the host's mount
//! table, so hull gives them one mount to live under and takes that away at delete.
//!
//! runc (and youki) set such a container up in the host's namespace as if it were its own:
//! runc makes the host's "/" a recursive slave and the rootfs's parent mount private (a
//! host-wide change that stays), mounts proc, /dev, sysfs, ... under the rootfs, chroots,
//! and never unmounts any of it. hull instead changes no host mount's propagation: `hull
//! create` binds the rootfs onto itself (recorded in the state by mount id), the init makes
//! every mount of the spec below that bind and chroots into it, and `delete` (or a failed
//! create) detaches the bind with everything below it. Under a shared parent the bind and its
//! submounts propagate to the parent's peers as any host mount does, and so does their
//! removal.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::error::{msg, Context, Result};
use crate::state::HostMount;

/// Binds `rootfs` onto itself in the host's mount namespace; returns what identifies the bind.
pub fn bind(rootfs: &Path) -> Result<HostMount> {
    mount(Some(rootfs), rootfs, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
        .ctx(|| format!("bind rootfs {} onto itself", rootfs.display()))?;
    let found = mount_id(rootfs).and_then(|id| {
        let table = std::fs::read_to_string("/proc/self/mountinfo")
            .ctx(|| "read /proc/self/mountinfo".to_string())?;
        let parent = entries(&table).find(|e| e.id == id).map(|e| e.parent);
        match parent {
            Some(parent_id) => Ok(HostMount { mount_id: id, parent_id, path: rootfs.to_path_buf() }),
            None => msg(format!("mount {id} of {} is not in /proc/self/mountinfo", rootfs.display())),
        }
    });
    if found.is_err() {
        // Not recorded, so nothing would ever remove it: undo it now.
        let _ = umount2(rootfs, MntFlags::MNT_DETACH);
    }
    found
}

/// Detaches the bind `m` and every mount below it, when it is still the one hull made (same
/// mount id, parent and mount point) and nothing was mounted over it; else leaves all alone.
pub fn remove(m: &HostMount) -> Result<()> {
    let table =
        std::fs::read_to_string("/proc/self/mountinfo").ctx(|| "read /proc/self/mountinfo".to_string())?;
    let point = m.path.as_os_str().as_bytes();
    let ours = entries(&table).any(|e| e.id == m.mount_id && e.parent == m.parent_id && e.point == point);
    if !ours {
        return Ok(());
    }
    if entries(&table).any(|e| e.parent == m.mount_id && e.point == point) {
        return msg(format!(
            "{}: something is mounted over the container's root bind; left in place",
            m.path.display()
        ));
    }
    umount2(&m.path, MntFlags::MNT_DETACH)
        .ctx(|| format!("detach the container's root bind {}", m.path.display()))
}

/// The mount id of the mount `path` is on (statx's STATX_MNT_ID).
fn mount_id(path: &Path) -> Result<u64> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| super::error::Error::Msg(format!("{}: contains a NUL byte", path.display())))?;
    // SAFETY: an all-zero statx is a valid value of the plain-data struct.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a writable statx, both live for the call.
    let rc = unsafe { libc::statx(libc::AT_FDCWD, c.as_ptr(), 0, libc::STATX_MNT_ID, &mut st) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| format!("statx {}", path.display()));
    }
    if st.stx_mask & libc::STATX_MNT_ID == 0 {
        return msg(format!("statx {}: the kernel gave no mount id", path.display()));
    }
    Ok(st.stx_mnt_id)
}

/// One line of /proc/self/mountinfo: ids and the mount point (octal escapes undone).
struct Entry {
    id: u64,
    parent: u64,
    point: Vec<u8>,
}

fn entries(table: &str) -> impl Iterator<Item = Entry> + '_ {
    table.lines().filter_map(|l| {
        let mut f = l.split(' ');
        let id = f.next()?.parse().ok()?;
        let parent = f.next()?.parse().ok()?;
        let point = unescape(f.nth(2)?);
        Some(Entry { id, parent, point })
    })
}

/// mountinfo writes space, tab, newline and backslash as \040, \011, \012, \134.
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct =
            b.get(i + 1..i + 4).filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match oct {
            Some(d) => {
                out.push(d.iter().fold(0u8, |v, c| v.wrapping_mul(8).wrapping_add(c - b'0')));
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_and_escapes() {
        let t = "36 35 98:0 /mnt1 /mnt\\040two rw,noatime master:1 - ext3 /dev/root rw\n\
                 37 36 0:5 / /x\\134y rw - tmpfs t rw\n";
        let e: Vec<Entry> = entries(t).collect();
        assert_eq!((e[0].id, e[0].parent, e[0].point.as_slice()), (36, 35, &b"/mnt two"[..]));
        assert_eq!(e[1].point, b"/x\\y");
    }
}
