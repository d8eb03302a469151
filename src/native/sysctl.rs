//! linux.sysctl: only keys that belong to one of the container's own namespaces, written
//! into the container's /proc/sys after pivot_root.

use std::collections::HashMap;

use super::error::{msg, Result};

/// Writes every key, through super::procfs: /proc must really be a procfs (CVE-2019-16884)
/// and nothing may be mounted over the key's file (CVE-2025-52881).
pub fn apply(sysctl: &HashMap<String, String>) -> Result<()> {
    if sysctl.is_empty() {
        return Ok(());
    }
    let proc = super::procfs::root().map_err(|e| super::error::Error::Msg(format!("linux.sysctl: {e}")))?;
    for (key, value) in sysctl {
        if key.contains("..") || key.contains('/') || key.is_empty() {
            return msg(format!("linux.sysctl: bad key {key:?}"));
        }
        let rel = format!("sys/{}", key.replace('.', "/"));
        if let Err(e) = super::procfs::write(&proc, &rel, value.as_bytes()) {
            return msg(format!("linux.sysctl: set {key}={value}: /proc/{rel}: {e}"));
        }
    }
    Ok(())
}
