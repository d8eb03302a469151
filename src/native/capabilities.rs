//! process.capabilities with the `caps` crate: bounding, effective, permitted, inheritable,
//! ambient, applied around the switch to the container's user.

use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::{Capabilities, LinuxCapabilities};
use std::str::FromStr;

use super::error::{msg, Context, Result};

/// The five sets, resolved to the caps crate's type once, before the rootfs goes away.
#[derive(Debug, Clone, Default)]
pub struct CapPlan {
    bounding: CapsHashSet,
    effective: CapsHashSet,
    permitted: CapsHashSet,
    inheritable: CapsHashSet,
    ambient: CapsHashSet,
}

fn convert(set: &Option<Capabilities>, which: &str) -> Result<CapsHashSet> {
    let mut out = CapsHashSet::new();
    for c in set.iter().flatten() {
        let name = format!("CAP_{c}");
        match Capability::from_str(&name) {
            Ok(cap) => {
                out.insert(cap);
            }
            Err(_) => return msg(format!("process.capabilities.{which}: unknown capability {name}")),
        }
    }
    Ok(out)
}

impl CapPlan {
    /// The spec's sets. An absent section means no capabilities at all, as in runc.
    pub fn from_spec(c: Option<&LinuxCapabilities>) -> Result<CapPlan> {
        let Some(c) = c else { return Ok(CapPlan::default()) };
        Ok(CapPlan {
            bounding: convert(c.bounding(), "bounding")?,
            effective: convert(c.effective(), "effective")?,
            permitted: convert(c.permitted(), "permitted")?,
            inheritable: convert(c.inheritable(), "inheritable")?,
            ambient: convert(c.ambient(), "ambient")?,
        })
    }

    /// Before setuid: shrink the bounding set (needs CAP_SETPCAP, which we still have) and
    /// ask the kernel to keep permitted capabilities across the uid change.
    pub fn before_setuid(&self) -> Result<()> {
        for cap in caps::all() {
            // Capabilities this kernel does not know cannot be dropped: skip them.
            if !self.bounding.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
                caps::drop(None, CapSet::Bounding, cap).map_err(|e| {
                    super::error::Error::Msg(format!("drop {cap} from the bounding set: {e}"))
                })?;
            }
        }
        if let Err(e) = nix::sys::prctl::set_keepcaps(true) {
            return msg(format!("prctl(PR_SET_KEEPCAPS): {e}"));
        }
        Ok(())
    }

    /// After setuid: the final sets. Ambient last, since it needs permitted and inheritable.
    pub fn after_setuid(&self) -> Result<()> {
        let set = |which: CapSet, v: &CapsHashSet, name: &str| {
            caps::set(None, which, v)
                .map_err(|e| super::error::Error::Msg(format!("set {name} capabilities: {e}")))
        };
        // Permitted must grow before effective may; in the shrinking direction effective
        // must shrink first. Setting effective empty, then permitted, then effective covers both.
        set(CapSet::Effective, &CapsHashSet::new(), "effective")?;
        set(CapSet::Permitted, &self.permitted, "permitted")?;
        set(CapSet::Inheritable, &self.inheritable, "inheritable")?;
        set(CapSet::Effective, &self.effective, "effective")?;
        caps::clear(None, CapSet::Ambient)
            .map_err(|e| super::error::Error::Msg(format!("clear ambient capabilities: {e}")))?;
        for cap in &self.ambient {
            // The kernel refuses an ambient capability that is not both permitted and
            // inheritable; runc's default spec lists ambient caps that are not inheritable
            // and runc goes on without them, so hull does too (--debug says so).
            if let Err(e) = caps::raise(None, CapSet::Ambient, *cap) {
                crate::logging::debug(&format!("ambient {cap} not raised: {e}"));
            }
        }
        nix::sys::prctl::set_keepcaps(false).ctx(|| "clear keepcaps".to_string())?;
        Ok(())
    }
}
