//! How big a VM container's VM is, from its spec (issue 13, item 5).
//!
//! Guest RAM: the annotation `hull.vm.memory_mib`, else the memory limit minus what the VMM
//! itself takes (the VMM shares the container's cgroup, so the whole VM must fit under the
//! limit), else `memory_mib` under [vm] in the config file, else 256 MiB.
//! vcpus: the annotation `hull.vm.cpus`, else ceil(quota / period), else the cpuset's count,
//! else `cpus` under [vm], else 1.

use std::collections::HashMap;

use oci_spec::runtime::Spec;

use crate::vm::config::VmSection;

pub const CPUS_ANNOTATION: &str = "hull.vm.cpus";
pub const MEMORY_ANNOTATION: &str = "hull.vm.memory_mib";

/// What the VMM process takes beyond guest RAM: hull's own pages, the in-memory initramfs
/// (hull and its libraries, built at each boot), device queues and thread stacks. A constant
/// for now, on the safe side of what vm-run's RSS shows; `just bench-vm` is where it gets
/// measured.
pub const VMM_OVERHEAD_MIB: u64 = 32;
/// Below this the guest kernel and the agent do not come up reliably.
pub const MIN_GUEST_MIB: u32 = 64;
pub const DEFAULT_MEMORY_MIB: u32 = 256;
/// The most vcpus the VMM makes (vm-run's limit too).
pub const MAX_CPUS: u8 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub vcpus: u8,
    pub mem_mib: u32,
}

/// The VM's size; the error names what was wrong (an annotation, a limit too small).
pub fn size(spec: &Spec, defaults: &VmSection) -> Result<Size, String> {
    let empty = HashMap::new();
    let annotations = spec.annotations().as_ref().unwrap_or(&empty);
    let resources = spec.linux().as_ref().and_then(|l| l.resources().as_ref());
    let limit = resources.and_then(|r| r.memory().as_ref()).and_then(|m| m.limit()).filter(|l| *l > 0);
    let mem_mib = match annotations.get(MEMORY_ANNOTATION) {
        Some(v) => parse_annotation::<u32>(MEMORY_ANNOTATION, v)?,
        None => match limit {
            Some(bytes) => from_limit(bytes)?,
            None => defaults.memory_mib.unwrap_or(DEFAULT_MEMORY_MIB),
        },
    };
    if mem_mib < MIN_GUEST_MIB {
        return Err(format!("guest memory of {mem_mib} MiB is under the {MIN_GUEST_MIB} MiB a guest needs"));
    }
    let cpu = resources.and_then(|r| r.cpu().as_ref());
    let vcpus = match annotations.get(CPUS_ANNOTATION) {
        Some(v) => parse_annotation::<u8>(CPUS_ANNOTATION, v)?,
        None => {
            let quota = cpu.and_then(|c| c.quota()).filter(|q| *q > 0);
            let period = cpu.and_then(|c| c.period()).filter(|p| *p > 0).unwrap_or(100_000);
            let from_cpuset = cpu.and_then(|c| c.cpus().as_deref()).and_then(cpuset_count);
            match (quota, from_cpuset) {
                (Some(q), _) => clamp_cpus((q as u64).div_ceil(period)),
                (None, Some(n)) => clamp_cpus(n),
                (None, None) => defaults.cpus.unwrap_or(1),
            }
        }
    };
    if vcpus == 0 || vcpus > MAX_CPUS {
        return Err(format!("{vcpus} vcpus: between 1 and {MAX_CPUS}"));
    }
    Ok(Size { vcpus, mem_mib })
}

/// Guest RAM under a memory limit of `bytes`, the VMM's own share taken off.
fn from_limit(bytes: i64) -> Result<u32, String> {
    let limit_mib = bytes as u64 / (1024 * 1024);
    let guest = limit_mib.saturating_sub(VMM_OVERHEAD_MIB);
    if guest < MIN_GUEST_MIB as u64 {
        return Err(format!(
            "the memory limit of {limit_mib} MiB leaves {guest} MiB for the guest after the VMM's \
             {VMM_OVERHEAD_MIB} MiB; a VM container needs at least {} MiB (or set {MEMORY_ANNOTATION})",
            MIN_GUEST_MIB as u64 + VMM_OVERHEAD_MIB
        ));
    }
    Ok(u32::try_from(guest).unwrap_or(u32::MAX))
}

fn clamp_cpus(n: u64) -> u8 {
    n.clamp(1, MAX_CPUS as u64) as u8
}

fn parse_annotation<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, String> {
    value.trim().parse().map_err(|_| format!("annotation {name}: {value:?} is not a number in range"))
}

/// The number of cpus in a cpuset list ("0-3,6"); None when it does not parse.
fn cpuset_count(list: &str) -> Option<u64> {
    let mut n = 0u64;
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        n += match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u64, u64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                b.checked_sub(a)? + 1
            }
            None => {
                part.parse::<u64>().ok()?;
                1
            }
        };
    }
    (n > 0).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(resources: serde_json::Value, annotations: serde_json::Value) -> Spec {
        serde_json::from_value(json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "annotations": annotations,
            "linux": {"resources": resources}
        }))
        .unwrap()
    }

    #[test]
    fn defaults_without_limits() {
        let s = size(&spec(json!({}), json!({})), &VmSection::default()).unwrap();
        assert_eq!(s, Size { vcpus: 1, mem_mib: DEFAULT_MEMORY_MIB });
        let cfg = VmSection { memory_mib: Some(512), cpus: Some(2), ..Default::default() };
        assert_eq!(size(&spec(json!({}), json!({})), &cfg).unwrap(), Size { vcpus: 2, mem_mib: 512 });
    }

    #[test]
    fn the_memory_limit_holds_the_vmm_too() {
        let s = size(&spec(json!({"memory": {"limit": 512i64 << 20}}), json!({})), &VmSection::default());
        assert_eq!(s.unwrap().mem_mib, 512 - VMM_OVERHEAD_MIB as u32);
        let err = size(&spec(json!({"memory": {"limit": 64i64 << 20}}), json!({})), &VmSection::default())
            .unwrap_err();
        assert!(err.contains("64 MiB") && err.contains(MEMORY_ANNOTATION), "{err}");
    }

    #[test]
    fn vcpus_from_quota_then_cpuset() {
        let d = VmSection::default();
        let q = |quota: i64, period: u64| json!({"cpu": {"quota": quota, "period": period, "cpus": "0-7"}});
        assert_eq!(size(&spec(q(150_000, 100_000), json!({})), &d).unwrap().vcpus, 2);
        assert_eq!(size(&spec(q(50_000, 100_000), json!({})), &d).unwrap().vcpus, 1);
        assert_eq!(size(&spec(json!({"cpu": {"cpus": "0-3,6"}}), json!({})), &d).unwrap().vcpus, 5);
    }

    #[test]
    fn annotations_override() {
        let a = json!({"hull.vm.cpus": "3", "hull.vm.memory_mib": "300"});
        let s = size(&spec(json!({"memory": {"limit": 128i64 << 20}}), a), &VmSection::default()).unwrap();
        assert_eq!(s, Size { vcpus: 3, mem_mib: 300 });
        let err = size(&spec(json!({}), json!({"hull.vm.cpus": "many"})), &VmSection::default()).unwrap_err();
        assert!(err.contains("hull.vm.cpus"), "{err}");
        assert!(size(&spec(json!({}), json!({"hull.vm.cpus": "0"})), &VmSection::default()).is_err());
    }

    #[test]
    fn cpuset_lists() {
        assert_eq!(cpuset_count("0"), Some(1));
        assert_eq!(cpuset_count("0-3, 8-9"), Some(6));
        assert_eq!(cpuset_count("3-1"), None);
        assert_eq!(cpuset_count(""), None);
    }
}
