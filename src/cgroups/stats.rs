//! A cgroup's statistics, read from the v1 or v2 control files into the document
//! `runc events --stats` prints (runc's types/events.go), which go-runc and containerd's
//! shims decode. Field names and the fields left out when zero follow runc's JSON tags.
//!
//! Reading is best effort: a controller the host lacks, or a file an older kernel does not
//! have, leaves its part at zero, as runc does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Cgroup, Layout};

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(default)]
pub struct Stats {
    pub cpu: Cpu,
    pub cpuset: CpuSet,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
    pub intel_rdt: IntelRdt,
    /// runc fills this only for the veth networks of its own (libcontainer) configs.
    pub network_interfaces: Option<Vec<serde_json::Value>>,
}

#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(default)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

/// Nanoseconds.
#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(default)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(default)]
pub struct Throttling {
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(rename = "throttledPeriods", skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    /// Nanoseconds.
    #[serde(rename = "throttledTime", skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(default)]
pub struct CpuSet {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    pub cpu_exclusive: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    pub mem_hardwall: u64,
    pub mem_exclusive: u64,
    pub memory_migrate: u64,
    pub memory_spread_page: u64,
    pub memory_spread_slab: u64,
    pub memory_pressure: u64,
    pub sched_load_balance: u64,
    pub sched_relax_domain_level: i64,
}

#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(default)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(default)]
pub struct Memory {
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    /// memory.stat, as it is.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(default)]
pub struct Pids {
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    /// 0 when unlimited.
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq)]
#[serde(default)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub value: u64,
}

#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(default)]
pub struct Blkio {
    #[serde(rename = "ioServiceBytesRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioServicedRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioQueueRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_queued_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioServiceTimeRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_service_time_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioWaitTimeRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_wait_time_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioMergedRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_merged_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioTimeRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_time_recursive: Vec<BlkioEntry>,
    #[serde(rename = "sectorsRecursive", skip_serializing_if = "Vec::is_empty")]
    pub sectors_recursive: Vec<BlkioEntry>,
}

#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(default)]
pub struct Hugetlb {
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

/// hull has no Intel RDT support: always `{}`.
#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(default)]
pub struct IntelRdt {}

/// What the memory controller says about OOMs so far (`events` reports increases).
#[derive(Serialize, Deserialize, Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OomCounters {
    /// Processes the OOM killer killed in the cgroup.
    pub kills: u64,
    /// v2's "oom" count: times the limit was hit and reclaim failed.
    pub ooms: u64,
    /// v1's under_oom: the cgroup is in OOM right now (with the OOM killer disabled it stays).
    pub under: bool,
}

impl OomCounters {
    /// True when `self` (later) records an OOM that `before` did not.
    pub fn new_since(&self, before: &OomCounters) -> bool {
        self.kills > before.kills || self.ooms > before.ooms || (self.under && !before.under)
    }
}

impl Cgroup {
    /// The statistics of the cgroup as they are now.
    pub fn stats(&self) -> Stats {
        match &self.layout {
            Layout::Unified => self.layout.dirs(&self.path).first().map(|d| v2_stats(d)).unwrap_or_default(),
            Layout::Legacy(_) => v1_stats(&|c: &str| self.dir_of(c)),
        }
    }

    /// The OOM counters of the memory controller; None without one.
    pub fn oom_counters(&self) -> Option<OomCounters> {
        let d = self.dir_of("memory")?;
        match &self.layout {
            Layout::Unified => {
                let ev = flat_keyed(&d, "memory.events")?;
                Some(OomCounters {
                    kills: ev.get("oom_kill").copied().unwrap_or(0),
                    ooms: ev.get("oom").copied().unwrap_or(0),
                    under: false,
                })
            }
            Layout::Legacy(_) => {
                let c = flat_keyed(&d, "memory.oom_control")?;
                Some(OomCounters {
                    kills: c.get("oom_kill").copied().unwrap_or(0),
                    ooms: 0,
                    under: c.get("under_oom").copied().unwrap_or(0) != 0,
                })
            }
        }
    }
}

// ---- reading control files ----

/// A file holding one number; "max" is u64::MAX.
fn read_u64(dir: &Path, file: &str) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join(file)).ok()?;
    parse_u64(text.trim())
}

fn parse_u64(s: &str) -> Option<u64> {
    if s == "max" {
        return Some(u64::MAX);
    }
    s.parse().ok()
}

/// "key value" lines (memory.stat, cpu.stat, memory.events, memory.oom_control).
fn flat_keyed(dir: &Path, file: &str) -> Option<BTreeMap<String, u64>> {
    let text = std::fs::read_to_string(dir.join(file)).ok()?;
    Some(
        text.lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                let k = it.next()?;
                let v = parse_u64(it.next()?)?;
                Some((k.to_string(), v))
            })
            .collect(),
    )
}

/// "0-3,5" to [0, 1, 2, 3, 5].
fn parse_list(s: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
                    out.extend(a..=b.max(a));
                }
            }
            None => out.extend(part.parse::<u16>().ok()),
        }
    }
    out
}

fn clock_ticks() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .map(|t| t as u64)
        .unwrap_or(100)
}

// ---- v1 ----

fn v1_stats(dir_of: &dyn Fn(&str) -> Option<PathBuf>) -> Stats {
    let mut s = Stats::default();
    if let Some(d) = dir_of("cpuacct") {
        let u = &mut s.cpu.usage;
        u.total = read_u64(&d, "cpuacct.usage").unwrap_or(0);
        u.percpu = std::fs::read_to_string(d.join("cpuacct.usage_percpu"))
            .map(|t| t.split_whitespace().filter_map(|v| v.parse().ok()).collect())
            .unwrap_or_default();
        // "cpu user system" then one line per cpu, in nanoseconds.
        if let Ok(all) = std::fs::read_to_string(d.join("cpuacct.usage_all")) {
            for l in all.lines().skip(1) {
                let f: Vec<u64> = l.split_whitespace().filter_map(|v| v.parse().ok()).collect();
                if f.len() == 3 {
                    u.percpu_user.push(f[1]);
                    u.percpu_kernel.push(f[2]);
                }
            }
        }
        // cpuacct.stat is in clock ticks.
        if let Some(st) = flat_keyed(&d, "cpuacct.stat") {
            let ns = 1_000_000_000 / clock_ticks();
            u.user = st.get("user").copied().unwrap_or(0).saturating_mul(ns);
            u.kernel = st.get("system").copied().unwrap_or(0).saturating_mul(ns);
        }
    }
    if let Some(st) = dir_of("cpu").and_then(|d| flat_keyed(&d, "cpu.stat")) {
        s.cpu.throttling = Throttling {
            periods: st.get("nr_periods").copied().unwrap_or(0),
            throttled_periods: st.get("nr_throttled").copied().unwrap_or(0),
            throttled_time: st.get("throttled_time").copied().unwrap_or(0),
        };
    }
    if let Some(d) = dir_of("cpuset") {
        let c = &mut s.cpuset;
        c.cpus = std::fs::read_to_string(d.join("cpuset.cpus")).map(|t| parse_list(&t)).unwrap_or_default();
        c.mems = std::fs::read_to_string(d.join("cpuset.mems")).map(|t| parse_list(&t)).unwrap_or_default();
        let n = |f: &str| read_u64(&d, f).unwrap_or(0);
        c.cpu_exclusive = n("cpuset.cpu_exclusive");
        c.mem_hardwall = n("cpuset.mem_hardwall");
        c.mem_exclusive = n("cpuset.mem_exclusive");
        c.memory_migrate = n("cpuset.memory_migrate");
        c.memory_spread_page = n("cpuset.memory_spread_page");
        c.memory_spread_slab = n("cpuset.memory_spread_slab");
        c.memory_pressure = n("cpuset.memory_pressure");
        c.sched_load_balance = n("cpuset.sched_load_balance");
        c.sched_relax_domain_level = std::fs::read_to_string(d.join("cpuset.sched_relax_domain_level"))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
    }
    if let Some(d) = dir_of("memory") {
        let entry = |prefix: &str| MemoryEntry {
            limit: read_u64(&d, &format!("{prefix}.limit_in_bytes")).unwrap_or(0),
            usage: read_u64(&d, &format!("{prefix}.usage_in_bytes")).unwrap_or(0),
            max: read_u64(&d, &format!("{prefix}.max_usage_in_bytes")).unwrap_or(0),
            failcnt: read_u64(&d, &format!("{prefix}.failcnt")).unwrap_or(0),
        };
        let m = &mut s.memory;
        m.usage = entry("memory");
        m.swap = entry("memory.memsw");
        m.kernel = entry("memory.kmem");
        m.kernel_tcp = entry("memory.kmem.tcp");
        m.raw = flat_keyed(&d, "memory.stat").unwrap_or_default();
        m.cache = m.raw.get("cache").copied().unwrap_or(0);
    }
    if let Some(d) = dir_of("pids") {
        s.pids = pids(&d);
    }
    if let Some(d) = dir_of("blkio") {
        s.blkio = v1_blkio(&d);
    }
    if let Some(d) = dir_of("hugetlb") {
        for size in hugetlb_sizes(&d, ".limit_in_bytes") {
            let f = |what: &str| read_u64(&d, &format!("hugetlb.{size}.{what}")).unwrap_or(0);
            let h =
                Hugetlb { usage: f("usage_in_bytes"), max: f("max_usage_in_bytes"), failcnt: f("failcnt") };
            s.hugetlb.insert(size, h);
        }
    }
    s
}

/// CFQ's recursive files when they have data, else BFQ's, else the throttle's (which
/// count all IO), as runc does.
fn v1_blkio(d: &Path) -> Blkio {
    let has_data = |prefix: &str| {
        std::fs::read_to_string(d.join(format!("{prefix}io_serviced_recursive")))
            .map(|t| t.lines().any(|l| l.split_whitespace().count() == 3))
            .unwrap_or(false)
    };
    let prefix = ["blkio.", "blkio.bfq."].into_iter().find(|p| has_data(p)).unwrap_or("blkio.throttle.");
    let read = |name: &str| -> Vec<BlkioEntry> {
        let Ok(text) = std::fs::read_to_string(d.join(format!("{prefix}{name}"))) else { return vec![] };
        text.lines().filter_map(blkio_line).collect()
    };
    Blkio {
        io_service_bytes_recursive: read("io_service_bytes_recursive"),
        io_serviced_recursive: read("io_serviced_recursive"),
        io_queued_recursive: read("io_queued_recursive"),
        io_service_time_recursive: read("io_service_time_recursive"),
        io_wait_time_recursive: read("io_wait_time_recursive"),
        io_merged_recursive: read("io_merged_recursive"),
        io_time_recursive: read("time_recursive"),
        sectors_recursive: read("sectors_recursive"),
    }
}

/// "8:0 Read 4096" or "8:0 4096"; the "Total" lines are left out.
fn blkio_line(l: &str) -> Option<BlkioEntry> {
    let f: Vec<&str> = l.split_whitespace().collect();
    let (dev, op, value) = match f.as_slice() {
        [dev, op, v] => (*dev, op.to_string(), *v),
        [dev, v] => (*dev, String::new(), *v),
        _ => return None,
    };
    let (ma, mi) = dev.split_once(':')?;
    Some(BlkioEntry { major: ma.parse().ok()?, minor: mi.parse().ok()?, op, value: value.parse().ok()? })
}

fn pids(d: &Path) -> Pids {
    Pids {
        current: read_u64(d, "pids.current").unwrap_or(0),
        limit: read_u64(d, "pids.max").filter(|v| *v != u64::MAX).unwrap_or(0),
    }
}

/// Page sizes ("2MB") with a hugetlb.<size><suffix> file in `d`.
fn hugetlb_sizes(d: &Path, suffix: &str) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(d)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|n| n.strip_prefix("hugetlb.")?.strip_suffix(suffix).map(String::from))
        .filter(|size| !size.contains('.'))
        .collect();
    out.sort();
    out
}

// ---- v2 ----

fn v2_stats(d: &Path) -> Stats {
    let mut s = Stats::default();
    if let Some(st) = flat_keyed(d, "cpu.stat") {
        let g = |k: &str| st.get(k).copied().unwrap_or(0);
        s.cpu.usage.total = g("usage_usec").saturating_mul(1000);
        s.cpu.usage.user = g("user_usec").saturating_mul(1000);
        s.cpu.usage.kernel = g("system_usec").saturating_mul(1000);
        s.cpu.throttling = Throttling {
            periods: g("nr_periods"),
            throttled_periods: g("nr_throttled"),
            throttled_time: g("throttled_usec").saturating_mul(1000),
        };
    }
    let list = |f: &str| std::fs::read_to_string(d.join(f)).map(|t| parse_list(&t)).unwrap_or_default();
    s.cpuset.cpus = list("cpuset.cpus.effective");
    s.cpuset.mems = list("cpuset.mems.effective");

    let m = &mut s.memory;
    m.raw = flat_keyed(d, "memory.stat").unwrap_or_default();
    m.cache = m.raw.get("file").copied().unwrap_or(0);
    m.usage = MemoryEntry {
        limit: read_u64(d, "memory.max").unwrap_or(0),
        usage: read_u64(d, "memory.current").unwrap_or(0),
        max: read_u64(d, "memory.peak").unwrap_or(0),
        failcnt: 0,
    };
    // v1 reported swap as memory+swap; runc keeps that meaning on v2.
    if let Some(swap) = read_u64(d, "memory.swap.current") {
        let limit = read_u64(d, "memory.swap.max").unwrap_or(u64::MAX);
        m.swap = MemoryEntry {
            usage: swap.saturating_add(m.usage.usage),
            limit: if limit == u64::MAX { limit } else { limit.saturating_add(m.usage.limit) },
            max: 0,
            failcnt: 0,
        };
    }
    s.pids = pids(d);
    // "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0"
    if let Ok(text) = std::fs::read_to_string(d.join("io.stat")) {
        for l in text.lines() {
            let mut f = l.split_whitespace();
            let Some((ma, mi)) = f.next().and_then(|dev| dev.split_once(':')) else { continue };
            let (Ok(major), Ok(minor)) = (ma.parse::<u64>(), mi.parse::<u64>()) else { continue };
            for kv in f {
                let Some((k, v)) = kv.split_once('=') else { continue };
                let Ok(value) = v.parse::<u64>() else { continue };
                let (list, op) = match k {
                    "rbytes" => (&mut s.blkio.io_service_bytes_recursive, "Read"),
                    "wbytes" => (&mut s.blkio.io_service_bytes_recursive, "Write"),
                    "rios" => (&mut s.blkio.io_serviced_recursive, "Read"),
                    "wios" => (&mut s.blkio.io_serviced_recursive, "Write"),
                    _ => continue,
                };
                list.push(BlkioEntry { major, minor, op: op.to_string(), value });
            }
        }
    }
    for size in hugetlb_sizes(d, ".max") {
        let usage = read_u64(d, &format!("hugetlb.{size}.current")).unwrap_or(0);
        let failcnt =
            flat_keyed(d, &format!("hugetlb.{size}.events")).and_then(|e| e.get("max").copied()).unwrap_or(0);
        s.hugetlb.insert(size, Hugetlb { usage, max: 0, failcnt });
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_lines() {
        assert_eq!(parse_list("0-2,5\n"), vec![0, 1, 2, 5]);
        assert_eq!(parse_list(""), Vec::<u16>::new());
        assert_eq!(
            blkio_line("8:16 Read 4096"),
            Some(BlkioEntry { major: 8, minor: 16, op: "Read".into(), value: 4096 })
        );
        assert_eq!(blkio_line("Total 4096"), None);
        assert_eq!(blkio_line("8:0 12").map(|e| e.value), Some(12));
    }

    #[test]
    fn oom_increase() {
        let a = OomCounters { kills: 1, ooms: 0, under: false };
        assert!(OomCounters { kills: 2, ..a }.new_since(&a));
        assert!(OomCounters { under: true, ..a }.new_since(&a));
        assert!(!a.new_since(&a));
    }

    #[test]
    fn json_shape() {
        let v = serde_json::to_value(Stats::default()).unwrap();
        assert!(v["cpu"]["usage"]["kernel"].is_u64());
        assert!(v["memory"]["usage"]["limit"].is_u64());
        assert!(v["memory"]["kernelTCP"].is_object());
        assert!(v["hugetlb"].is_object());
        assert!(v["pids"].is_object());
    }
}
