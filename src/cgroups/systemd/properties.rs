//! The properties a container's scope starts with: its slice, that the cgroup below it is
//! hull's (Delegate), the pid to put in it, and the resources systemd has a property for.
//!
//! systemd writes these into the cgroup itself and writes them again whenever it reloads, so
//! they must agree with what hull writes through cgroupfs right after the scope starts. Those
//! cgroupfs writes stay the source of truth: they cover every resource, also the many that
//! have no systemd property, and give exact values where systemd rounds (the cpu quota).

use oci_spec::runtime::LinuxResources;
use zbus::zvariant::Value;

use super::unit::Scope;

/// Property name and value, as StartTransientUnit takes them (signature a(sv)).
pub type Properties = Vec<(&'static str, Value<'static>)>;

/// systemd's "infinity" for byte and count limits.
const INFINITY: u64 = u64::MAX;

/// The kernel's CFS period when the spec gives a quota and no period.
const DEFAULT_PERIOD_US: u64 = 100_000;

/// The highest cpu or memory node number accepted in a list (a bitmask this long is 8 KiB).
const MAX_CPU: u32 = 65_535;

/// Everything the scope is started with. `unified`: cgroup v2 (else v1 property names);
/// `version`: systemd's major version, when known (newer properties are left out on older
/// systemd and on an unknown one; cgroupfs still gets them).
pub fn for_scope(
    scope: &Scope,
    pid: u32,
    r: Option<&LinuxResources>,
    unified: bool,
    version: Option<u32>,
) -> Result<Properties, String> {
    let mut p: Properties = vec![
        ("Description", Value::from(format!("hull container {}", scope.id))),
        ("Slice", Value::from(scope.slice.clone())),
        // The cgroup below the scope is hull's to manage (resources, sub-cgroups of the
        // container's own systemd): systemd leaves it alone and enables every controller.
        ("Delegate", Value::from(true)),
        ("PIDs", Value::from(vec![pid])),
        // As runc: no ordering against sysinit/shutdown targets; the container's lifetime is
        // its manager's (containerd, CRI-O, podman), not the boot transaction's.
        ("DefaultDependencies", Value::from(false)),
        // Accounting on, as runc does: the controllers are there from the start, which also
        // matches what the cgroupfs driver gives a container.
        ("MemoryAccounting", Value::from(true)),
        ("CPUAccounting", Value::from(true)),
        ("TasksAccounting", Value::from(true)),
        (if unified { "IOAccounting" } else { "BlockIOAccounting" }, Value::from(true)),
    ];
    if let Some(r) = r {
        resources(&mut p, r, unified, version)?;
    }
    Ok(p)
}

/// The resource properties alone, for a scope that runs already (`update`).
pub fn for_update(r: &LinuxResources, unified: bool, version: Option<u32>) -> Result<Properties, String> {
    let mut p = Properties::new();
    resources(&mut p, r, unified, version)?;
    Ok(p)
}

fn resources(
    p: &mut Properties,
    r: &LinuxResources,
    unified: bool,
    version: Option<u32>,
) -> Result<(), String> {
    let at_least = |v: u32| version.is_some_and(|have| have >= v);
    if let Some(m) = r.memory() {
        if let Some(l) = m.limit().and_then(limit) {
            p.push((if unified { "MemoryMax" } else { "MemoryLimit" }, Value::from(l)));
        }
        if unified {
            if let Some(l) = m.reservation().filter(|v| *v > 0) {
                p.push(("MemoryLow", Value::from(l as u64)));
            }
            if let Some(s) = m.swap() {
                p.push(("MemorySwapMax", Value::from(swap_max(s, m.limit()))));
            }
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares().filter(|v| *v != 0) {
            if unified {
                p.push(("CPUWeight", Value::from(crate::cgroups::v2::shares_to_weight(s))));
            } else {
                p.push(("CPUShares", Value::from(s)));
            }
        }
        if c.quota().is_some() || c.period().is_some() {
            let period = c.period().filter(|v| *v > 0);
            // CPUQuotaPeriodUSec came with systemd 242.
            if let (Some(per), true) = (period, unified && at_least(242)) {
                p.push(("CPUQuotaPeriodUSec", Value::from(per)));
            }
            p.push(("CPUQuotaPerSecUSec", Value::from(quota_per_sec(c.quota(), period))));
        }
        // AllowedCPUs / AllowedMemoryNodes came with systemd 244, and act on v2 only.
        if unified && at_least(244) {
            if let Some(list) = c.cpus().as_deref().filter(|v| !v.is_empty()) {
                let mask = cpu_mask(list).map_err(|m| format!("cpu.cpus {list:?}: {m}"))?;
                p.push(("AllowedCPUs", Value::from(mask)));
            }
            if let Some(list) = c.mems().as_deref().filter(|v| !v.is_empty()) {
                let mask = cpu_mask(list).map_err(|m| format!("cpu.mems {list:?}: {m}"))?;
                p.push(("AllowedMemoryNodes", Value::from(mask)));
            }
        }
    }
    if let Some(l) = r.pids().and_then(|p| limit(p.limit())) {
        p.push(("TasksMax", Value::from(l)));
    }
    Ok(())
}

/// A spec limit as systemd takes it: positive as it is, negative (-1, unlimited) as
/// infinity, 0 (not set) left out.
fn limit(v: i64) -> Option<u64> {
    match v {
        0 => None,
        v if v < 0 => Some(INFINITY),
        v => Some(v as u64),
    }
}

/// MemorySwapMax is swap alone, the spec's swap is memory+swap (as v2.rs converts it).
fn swap_max(swap: i64, limit: Option<i64>) -> u64 {
    match (swap, limit) {
        (s, _) if s < 0 => INFINITY,
        (s, Some(l)) if l > 0 => (s - l).max(0) as u64,
        (s, _) => s as u64,
    }
}

/// CPUQuotaPerSecUSec: cpu time per second of wall time. systemd keeps it as a whole
/// percentage of a cpu, so it is rounded up to the next 10 ms, as runc does: never less than
/// the spec's quota, which cgroupfs then sets exactly.
fn quota_per_sec(quota: Option<i64>, period: Option<u64>) -> u64 {
    match quota.filter(|q| *q > 0) {
        None => INFINITY,
        Some(q) => {
            let period = period.unwrap_or(DEFAULT_PERIOD_US);
            let per_sec = (q as u64).saturating_mul(1_000_000) / period;
            per_sec.div_ceil(10_000).saturating_mul(10_000)
        }
    }
}

/// "0-3,8" as systemd's cpu set on D-Bus: a byte array, bit i of byte j for cpu 8j+i.
fn cpu_mask(list: &str) -> Result<Vec<u8>, String> {
    let mut mask: Vec<u8> = Vec::new();
    for item in list.split(',').map(str::trim) {
        let num = |s: &str| -> Result<u32, String> {
            let n: u32 = s.trim().parse().map_err(|_| format!("{s:?} is not a number"))?;
            if n > MAX_CPU {
                return Err(format!("{n} is above {MAX_CPU}"));
            }
            Ok(n)
        };
        let (lo, hi) = match item.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(item)?, num(item)?),
        };
        if lo > hi {
            return Err(format!("range {item:?} is backwards"));
        }
        for cpu in lo..=hi {
            let byte = (cpu / 8) as usize;
            if mask.len() <= byte {
                mask.resize(byte + 1, 0);
            }
            mask[byte] |= 1 << (cpu % 8);
        }
    }
    Ok(mask)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::systemd::Manager;
    use oci_spec::runtime::{LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder};

    fn scope() -> Scope {
        Scope::new(Some("hull-test.slice:hull:c1"), "c1", Manager::System).unwrap()
    }

    fn get<'a>(p: &'a Properties, name: &str) -> Option<&'a Value<'static>> {
        p.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    #[test]
    fn base() {
        let p = for_scope(&scope(), 42, None, true, Some(252)).unwrap();
        assert_eq!(get(&p, "Slice"), Some(&Value::from("hull-test.slice")));
        assert_eq!(get(&p, "Delegate"), Some(&Value::from(true)));
        assert_eq!(get(&p, "DefaultDependencies"), Some(&Value::from(false)));
        assert_eq!(get(&p, "PIDs"), Some(&Value::from(vec![42u32])));
        assert_eq!(get(&p, "Description"), Some(&Value::from("hull container c1")));
        assert!(get(&p, "IOAccounting").is_some());
        assert!(get(&p, "MemoryMax").is_none());
        let v1 = for_scope(&scope(), 42, None, false, Some(252)).unwrap();
        assert!(get(&v1, "BlockIOAccounting").is_some() && get(&v1, "IOAccounting").is_none());
    }

    #[test]
    fn resources_v2_and_v1() {
        let r = LinuxResourcesBuilder::default()
            .memory(LinuxMemoryBuilder::default().limit(64 << 20).swap(96 << 20).build().unwrap())
            .cpu(
                LinuxCpuBuilder::default()
                    .shares(1024u64)
                    .quota(50_000i64)
                    .period(100_000u64)
                    .cpus("0-1,9")
                    .mems("0")
                    .build()
                    .unwrap(),
            )
            .pids(LinuxPidsBuilder::default().limit(-1).build().unwrap())
            .build()
            .unwrap();
        let p = for_scope(&scope(), 1, Some(&r), true, Some(252)).unwrap();
        assert_eq!(get(&p, "MemoryMax"), Some(&Value::from(64u64 << 20)));
        assert_eq!(get(&p, "MemorySwapMax"), Some(&Value::from(32u64 << 20)));
        assert_eq!(get(&p, "CPUWeight"), Some(&Value::from(39u64)));
        assert_eq!(get(&p, "CPUQuotaPerSecUSec"), Some(&Value::from(500_000u64)));
        assert_eq!(get(&p, "CPUQuotaPeriodUSec"), Some(&Value::from(100_000u64)));
        assert_eq!(get(&p, "AllowedCPUs"), Some(&Value::from(vec![0b11u8, 0b10])));
        assert_eq!(get(&p, "AllowedMemoryNodes"), Some(&Value::from(vec![1u8])));
        assert_eq!(get(&p, "TasksMax"), Some(&Value::from(u64::MAX)));
        // An old or unknown systemd gets only the properties every version has.
        let old = for_scope(&scope(), 1, Some(&r), true, None).unwrap();
        assert!(get(&old, "AllowedCPUs").is_none() && get(&old, "CPUQuotaPeriodUSec").is_none());
        assert!(get(&old, "CPUQuotaPerSecUSec").is_some());
        let v1 = for_scope(&scope(), 1, Some(&r), false, Some(252)).unwrap();
        assert_eq!(get(&v1, "MemoryLimit"), Some(&Value::from(64u64 << 20)));
        assert_eq!(get(&v1, "CPUShares"), Some(&Value::from(1024u64)));
        assert!(get(&v1, "MemoryMax").is_none() && get(&v1, "CPUWeight").is_none());
        assert!(get(&v1, "AllowedCPUs").is_none());
    }

    #[test]
    fn update_has_resources_only() {
        let r = LinuxResourcesBuilder::default()
            .memory(LinuxMemoryBuilder::default().limit(128 << 20).build().unwrap())
            .build()
            .unwrap();
        let p = for_update(&r, true, Some(252)).unwrap();
        assert_eq!(p, vec![("MemoryMax", Value::from(128u64 << 20))]);
        assert!(for_update(&LinuxResources::default(), true, Some(252)).unwrap().is_empty());
    }

    #[test]
    fn conversions() {
        assert_eq!(quota_per_sec(Some(12_345), Some(100_000)), 130_000);
        assert_eq!(quota_per_sec(Some(200_000), None), 2_000_000);
        assert_eq!(quota_per_sec(Some(-1), Some(50_000)), u64::MAX);
        assert_eq!(quota_per_sec(None, Some(50_000)), u64::MAX);
        assert_eq!(swap_max(-1, Some(10)), u64::MAX);
        assert_eq!(swap_max(10, Some(20)), 0);
        assert_eq!(limit(0), None);
        assert_eq!(cpu_mask("0").unwrap(), vec![1]);
        assert_eq!(cpu_mask("7-8").unwrap(), vec![0x80, 0x01]);
        assert!(cpu_mask("3-1").unwrap_err().contains("backwards"));
        assert!(cpu_mask("x").unwrap_err().contains("not a number"));
        assert!(cpu_mask("70000").unwrap_err().contains("above"));
        let bad = LinuxResourcesBuilder::default()
            .cpu(LinuxCpuBuilder::default().cpus("1-").build().unwrap())
            .build()
            .unwrap();
        let e = for_scope(&scope(), 1, Some(&bad), true, Some(252)).unwrap_err();
        assert!(e.starts_with("cpu.cpus \"1-\""), "{e}");
    }
}
