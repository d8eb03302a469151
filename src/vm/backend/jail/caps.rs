//! The VMM's capabilities: once everything that needs privilege is done (the namespaces, the
//! bind mounts staged for the binds share, the VM built, the jail's root entered), the VMM
//! keeps only the capabilities serving files to the guest needs, in every set and the bounding
//! set, before any of its threads exist (capabilities are per thread; every thread made after
//! inherits these). With no_new_privs, nothing gets them back.
//!
//! Kept: what the virtio-fs passthrough does on the guest's behalf as the guest's users
//! (switching fs ids, owning, reading and changing files that are not root's, file
//! capabilities in images). Gone: CAP_SYS_ADMIN, CAP_MKNOD (no device node on the host from the
//! guest, besides the server's own refusal), CAP_NET_ADMIN, CAP_SYS_PTRACE, CAP_SYS_MODULE and
//! the rest.

use caps::{CapSet, Capability, CapsHashSet};

/// The capabilities the VMM keeps.
pub const KEPT: [Capability; 8] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_DAC_READ_SEARCH,
    Capability::CAP_FOWNER,
    Capability::CAP_FSETID,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
];

/// Drops every other capability from this thread's bounding, inheritable, ambient, effective
/// and permitted sets.
pub fn drop_capabilities() -> Result<(), String> {
    let kept: CapsHashSet = KEPT.iter().copied().collect();
    for cap in caps::all() {
        if kept.contains(&cap) {
            continue;
        }
        // A capability newer than this kernel is not in its bounding set to begin with.
        if caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(|e| format!("dropping {cap} from the bounding set: {e}"))?;
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(|e| format!("clearing the ambient capabilities: {e}"))?;
    caps::clear(None, CapSet::Inheritable)
        .map_err(|e| format!("clearing the inheritable capabilities: {e}"))?;
    caps::set(None, CapSet::Effective, &kept)
        .map_err(|e| format!("setting the effective capabilities: {e}"))?;
    caps::set(None, CapSet::Permitted, &kept).map_err(|e| format!("setting the permitted capabilities: {e}"))
}
