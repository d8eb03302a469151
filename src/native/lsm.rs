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
    // /proc must really be procfs before hull writes a label there (CVE-2019-16884).
    let is_proc = nix::sys::statfs::statfs("/proc/self/attr")
        .map(|s| s.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC)
        .unwrap_or(false);
    if !is_proc {
        return msg("/proc in the container is not procfs: refusing to write LSM labels there");
    }
    if let Some(profile) = apparmor {
        let text = format!("exec {profile}");
        let r = std::fs::write("/proc/self/attr/apparmor/exec", &text)
            .or_else(|_| std::fs::write("/proc/self/attr/exec", &text));
        if let Err(e) = r {
            return msg(format!("process.apparmorProfile {profile:?}: {e}"));
        }
    }
    if let Some(label) = selinux {
        if let Err(e) = std::fs::write("/proc/self/attr/exec", label) {
            return msg(format!("process.selinuxLabel {label:?}: {e}"));
        }
    }
    Ok(())
}
