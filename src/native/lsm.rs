//! process.apparmorProfile and process.selinuxLabel: applied when the host has the module
//! enabled, a clear error when the spec asks for one the host cannot apply.

use oci_spec::runtime::Process;

use super::error::{msg, Result};

fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .map(|s| s.trim_start().starts_with('Y'))
        .unwrap_or(false)
}

fn selinux_enabled() -> bool {
    std::path::Path::new("/sys/fs/selinux/enforce").exists()
}

/// Checked on the host, before anything is set up.
pub fn check(p: &Process) -> Result<()> {
    if let Some(profile) = p.apparmor_profile().as_deref().filter(|s| !s.is_empty()) {
        if !apparmor_enabled() {
            return msg(format!("process.apparmorProfile {profile:?}: AppArmor is not enabled on this host"));
        }
    }
    if let Some(label) = p.selinux_label().as_deref().filter(|s| !s.is_empty()) {
        if !selinux_enabled() {
            return msg(format!("process.selinuxLabel {label:?}: SELinux is not enabled on this host"));
        }
    }
    Ok(())
}

/// Labels for the exec that follows; in the container, right before execve.
pub fn set_exec_labels(apparmor: Option<&str>, selinux: Option<&str>) -> Result<()> {
    if apparmor.is_none() && selinux.is_none() {
        return Ok(());
    }
    // Through super::procfs: /proc must really be procfs (CVE-2019-16884) and nothing may be
    // mounted over the label's file, or the label would go elsewhere and the program would run
    // unconfined (CVE-2025-52881).
    let proc = super::procfs::root()?;
    if let Some(profile) = apparmor {
        let text = format!("exec {profile}");
        let r = super::procfs::write(&proc, "thread-self/attr/apparmor/exec", text.as_bytes())
            .or_else(|_| super::procfs::write(&proc, "thread-self/attr/exec", text.as_bytes()));
        if let Err(e) = r {
            return msg(format!("process.apparmorProfile {profile:?}: {e}"));
        }
    }
    if let Some(label) = selinux {
        if let Err(e) = super::procfs::write(&proc, "thread-self/attr/exec", label.as_bytes()) {
            return msg(format!("process.selinuxLabel {label:?}: {e}"));
        }
    }
    Ok(())
}
