//! linux.sysctl: only keys that belong to one of the container's own namespaces, written
//! into the container's /proc/sys after pivot_root.

use std::collections::HashMap;

use nix::sys::statfs::{statfs, PROC_SUPER_MAGIC};

use super::error::{msg, Context, Result};

/// Writes every key. /proc must really be a procfs: a rootfs could have put something else
/// there (CVE-2019-16884).
pub fn apply(sysctl: &HashMap<String, String>) -> Result<()> {
    if sysctl.is_empty() {
        return Ok(());
    }
    let is_proc = statfs("/proc/sys").map(|fs| fs.filesystem_type() == PROC_SUPER_MAGIC).unwrap_or(false);
    if !is_proc {
        return msg("linux.sysctl: /proc/sys in the container is not procfs");
    }
    for (key, value) in sysctl {
        if key.contains("..") || key.contains('/') {
            return msg(format!("linux.sysctl: bad key {key:?}"));
        }
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        std::fs::write(&path, value).ctx(|| format!("linux.sysctl: set {key}={value}"))?;
    }
    Ok(())
}
