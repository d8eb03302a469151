//! linux.resources on cgroup v1: one directory per controller.

use std::path::Path;
use std::time::{Duration, Instant};

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

use super::error::{refused, Fault};
use super::{write, write_key, Layout};

type R = Result<(), Fault>;

/// A fresh cpuset cgroup has no cpus or mems, and nothing can join it until it has: copy
/// the parent's down the path, top first.
pub fn init_cpuset(dir: &Path) -> R {
    let mut chain = Vec::new();
    let mut d = dir.to_path_buf();
    while d.join("cpuset.cpus").exists() {
        chain.push(d.clone());
        if !d.pop() {
            break;
        }
    }
    chain.reverse();
    for pair in chain.windows(2) {
        for f in ["cpuset.cpus", "cpuset.mems"] {
            let cur = std::fs::read_to_string(pair[1].join(f)).unwrap_or_default();
            if cur.trim().is_empty() {
                let parent = std::fs::read_to_string(pair[0].join(f))
                    .map_err(|source| Fault::Read { file: f.to_string(), source })?;
                write(&pair[1], f, parent.trim())?;
            }
        }
    }
    Ok(())
}

fn dir(layout: &Layout, ctrl: &str, path: &str) -> Result<std::path::PathBuf, Fault> {
    layout
        .dir_of(ctrl, path)
        .ok_or_else(|| Fault::Refused(format!("this host has no {ctrl} cgroup controller")))
}

pub fn apply(layout: &Layout, path: &str, r: &LinuxResources) -> R {
    if let Some(m) = r.memory() {
        let d = dir(layout, "memory", path)?;
        if m.check_before_update().unwrap_or(false) {
            if let Some(limit) = m.limit().filter(|l| *l > 0) {
                let usage: i64 = std::fs::read_to_string(d.join("memory.usage_in_bytes"))
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(0);
                if limit < usage {
                    return refused(format!(
                        "memory.limit {limit} is below the current usage {usage} (checkBeforeUpdate)"
                    ));
                }
            }
        }
        let limit = m.limit().map(|v| if v < 0 { "-1".to_string() } else { v.to_string() });
        let swap = m.swap().map(|v| if v < 0 { "-1".to_string() } else { v.to_string() });
        // memsw must stay >= limit at every step: try limit first, swap first on failure.
        let set_limit = |v: &str| write_key(&d, "memory.limit", "memory.limit_in_bytes", v);
        let set_swap = |v: &str| write_key(&d, "memory.swap", "memory.memsw.limit_in_bytes", v);
        match (&limit, &swap) {
            (Some(l), Some(s)) => {
                if set_limit(l).and_then(|()| set_swap(s)).is_err() {
                    set_swap(s)?;
                    set_limit(l)?;
                }
            }
            (Some(l), None) => set_limit(l)?,
            (None, Some(s)) => set_swap(s)?,
            (None, None) => {}
        }
        if let Some(v) = m.reservation() {
            write_key(&d, "memory.reservation", "memory.soft_limit_in_bytes", &v.to_string())?;
        }
        if let Some(v) = m.kernel_tcp() {
            write_key(&d, "memory.kernelTCP", "memory.kmem.tcp.limit_in_bytes", &v.to_string())?;
        }
        if let Some(v) = m.swappiness() {
            if v > 100 {
                return refused(format!("memory.swappiness {v} is not in 0..100"));
            }
            write_key(&d, "memory.swappiness", "memory.swappiness", &v.to_string())?;
        }
        if m.disable_oom_killer().unwrap_or(false) {
            write_key(&d, "memory.disableOOMKiller", "memory.oom_control", "1")?;
        }
    }
    if let Some(c) = r.cpu() {
        if c.shares().is_some()
            || c.quota().is_some()
            || c.period().is_some()
            || c.burst().is_some()
            || c.realtime_runtime().is_some()
            || c.realtime_period().is_some()
            || c.idle().is_some()
        {
            let d = dir(layout, "cpu", path)?;
            if let Some(v) = c.shares().filter(|v| *v != 0) {
                write_key(&d, "cpu.shares", "cpu.shares", &v.to_string())?;
            }
            if let Some(v) = c.period().filter(|v| *v != 0) {
                write_key(&d, "cpu.period", "cpu.cfs_period_us", &v.to_string())?;
            }
            if let Some(v) = c.quota().filter(|v| *v != 0) {
                write_key(&d, "cpu.quota", "cpu.cfs_quota_us", &v.to_string())?;
            }
            if let Some(v) = c.burst() {
                write_key(&d, "cpu.burst", "cpu.cfs_burst_us", &v.to_string())?;
            }
            if let Some(v) = c.realtime_period().filter(|v| *v != 0) {
                write_key(&d, "cpu.realtimePeriod", "cpu.rt_period_us", &v.to_string())?;
            }
            if let Some(v) = c.realtime_runtime().filter(|v| *v != 0) {
                write_key(&d, "cpu.realtimeRuntime", "cpu.rt_runtime_us", &v.to_string())?;
            }
            if let Some(v) = c.idle() {
                write_key(&d, "cpu.idle", "cpu.idle", &v.to_string())?;
            }
        }
        if c.cpus().is_some() || c.mems().is_some() {
            let d = dir(layout, "cpuset", path)?;
            if let Some(v) = c.cpus().as_deref().filter(|v| !v.is_empty()) {
                write_key(&d, "cpu.cpus", "cpuset.cpus", v)?;
            }
            if let Some(v) = c.mems().as_deref().filter(|v| !v.is_empty()) {
                write_key(&d, "cpu.mems", "cpuset.mems", v)?;
            }
        }
    }
    if let Some(p) = r.pids() {
        let d = dir(layout, "pids", path)?;
        let v = if p.limit() > 0 { p.limit().to_string() } else { "max".to_string() };
        write_key(&d, "pids.limit", "pids.max", &v)?;
    }
    if let Some(b) = r.block_io() {
        let d = dir(layout, "blkio", path)?;
        // A weight of 0 means "not set", as in runc: Docker sends weight 0 (and leafWeight 0)
        // for every container, and the kernel rejects 0 (ERANGE).
        if let Some(w) = b.weight().filter(|w| *w != 0) {
            // CFQ's file, or BFQ's on kernels without CFQ.
            write(&d, "blkio.weight", &w.to_string())
                .or_else(|_| write(&d, "blkio.bfq.weight", &w.to_string()))
                .map_err(|f| f.for_key("blockIO.weight"))?;
        }
        if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
            write_key(&d, "blockIO.leafWeight", "blkio.leaf_weight", &w.to_string())?;
        }
        for wd in b.weight_device().iter().flatten() {
            if let Some(w) = wd.weight().filter(|w| *w != 0) {
                let line = format!("{}:{} {w}", wd.major(), wd.minor());
                write(&d, "blkio.weight_device", &line)
                    .or_else(|_| write(&d, "blkio.bfq.weight_device", &line))
                    .map_err(|f| f.for_key("blockIO.weightDevice"))?;
            }
        }
        for (list, file, key) in [
            (b.throttle_read_bps_device(), "blkio.throttle.read_bps_device", "throttleReadBpsDevice"),
            (b.throttle_write_bps_device(), "blkio.throttle.write_bps_device", "throttleWriteBpsDevice"),
            (b.throttle_read_iops_device(), "blkio.throttle.read_iops_device", "throttleReadIOPSDevice"),
            (b.throttle_write_iops_device(), "blkio.throttle.write_iops_device", "throttleWriteIOPSDevice"),
        ] {
            for t in list.iter().flatten() {
                write(&d, file, &format!("{}:{} {}", t.major(), t.minor(), t.rate()))
                    .map_err(|f| f.for_key(&format!("blockIO.{key}")))?;
            }
        }
    }
    for h in r.hugepage_limits().iter().flatten() {
        let d = dir(layout, "hugetlb", path)?;
        write_key(
            &d,
            &format!("hugepageLimits[{}]", h.page_size()),
            &format!("hugetlb.{}.limit_in_bytes", h.page_size()),
            &h.limit().to_string(),
        )?;
    }
    if let Some(n) = r.network() {
        if let Some(id) = n.class_id() {
            let d = dir(layout, "net_cls", path)?;
            write_key(&d, "network.classID", "net_cls.classid", &id.to_string())?;
        }
        for p in n.priorities().iter().flatten() {
            let d = dir(layout, "net_prio", path)?;
            write(&d, "net_prio.ifpriomap", &format!("{} {}", p.name(), p.priority()))
                .map_err(|f| f.for_key(&format!("network.priorities[{}]", p.name())))?;
        }
    }
    for (dev, limit) in r.rdma().iter().flatten() {
        let d = dir(layout, "rdma", path)?;
        write_key(&d, &format!("rdma[{dev}]"), "rdma.max", &super::v2::rdma_line(dev, limit))?;
    }
    if let Some(u) = r.unified() {
        if !u.is_empty() {
            return refused("unified: cgroup v2 settings on a cgroup v1 host");
        }
    }
    if let Some(devs) = r.devices() {
        let d = dir(layout, "devices", path)?;
        // FIFOs never reach the device cgroup and devices.allow rejects a 'p' rule: nothing
        // to write (the eBPF program of cgroup v2 skips them the same way).
        for rule in devs.iter().filter(|r| r.typ() != Some(LinuxDeviceType::P)) {
            let file = if rule.allow() { "devices.allow" } else { "devices.deny" };
            write_key(&d, "devices", file, &device_rule(rule))?;
        }
    }
    Ok(())
}

/// "c 1:3 rwm", with "*" for what the rule leaves out.
pub fn device_rule(d: &LinuxDeviceCgroup) -> String {
    let typ = d.typ().map(|t| t.as_str().to_string()).unwrap_or_else(|| "a".to_string());
    let num =
        |n: Option<i64>| n.filter(|v| *v >= 0).map(|v| v.to_string()).unwrap_or_else(|| "*".to_string());
    let access = d.access().clone().filter(|a| !a.is_empty()).unwrap_or_else(|| "rwm".to_string());
    format!("{typ} {}:{} {access}", num(d.major()), num(d.minor()))
}

/// Writes the freezer state and waits until the kernel reports it.
pub fn freeze(dir: &Path, frozen: bool) -> R {
    let want = if frozen { "FROZEN" } else { "THAWED" };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        write(dir, "freezer.state", want)?;
        let now = std::fs::read_to_string(dir.join("freezer.state")).unwrap_or_default();
        if now.trim() == want {
            return Ok(());
        }
        if Instant::now() > deadline {
            return refused(format!("freezer stuck in {}", now.trim()));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
