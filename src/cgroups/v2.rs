//! linux.resources on cgroup v2: one directory, controllers enabled down the path.

use std::path::Path;
use std::time::{Duration, Instant};

use oci_spec::runtime::{LinuxRdma, LinuxResources};

use super::error::{refused, Fault};
use super::{write, write_key, Layout};

type R = Result<(), Fault>;

/// Creates the directories, enabling every available controller for children on the way.
pub fn make_dirs(path: &str) -> R {
    let mut dir = Path::new("/sys/fs/cgroup").to_path_buf();
    for comp in path.split('/').filter(|c| !c.is_empty()) {
        let ctrls = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
        let enable: Vec<String> = ctrls.split_whitespace().map(|c| format!("+{c}")).collect();
        if !enable.is_empty() {
            // Controllers one by one: a single one the parent cannot delegate must not stop
            // the others.
            for e in &enable {
                let _ = write(&dir, "cgroup.subtree_control", e);
            }
        }
        dir.push(comp);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(Fault::Dir { op: "mkdir", path: dir, source }),
        }
    }
    Ok(())
}

pub fn rdma_line(dev: &str, l: &LinuxRdma) -> String {
    let mut s = dev.to_string();
    if let Some(h) = l.hca_handles() {
        s.push_str(&format!(" hca_handle={h}"));
    }
    if let Some(o) = l.hca_objects() {
        s.push_str(&format!(" hca_object={o}"));
    }
    s
}

/// runc's conversion of v1 cpu shares [2, 262144] to a v2 weight [1, 10000] (the systemd
/// driver asks for the same weight).
pub(crate) fn shares_to_weight(shares: u64) -> u64 {
    1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142
}

fn max_or(v: i64) -> String {
    if v < 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

pub fn apply(layout: &Layout, path: &str, r: &LinuxResources) -> R {
    let d =
        layout.dirs(path).into_iter().next().ok_or_else(|| Fault::Refused("no cgroup directory".into()))?;
    if let Some(m) = r.memory() {
        if m.check_before_update().unwrap_or(false) {
            if let Some(limit) = m.limit().filter(|l| *l > 0) {
                let usage: i64 = std::fs::read_to_string(d.join("memory.current"))
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
        if let Some(v) = m.limit() {
            write_key(&d, "memory.limit", "memory.max", &max_or(v))?;
        }
        if let Some(v) = m.reservation() {
            write_key(&d, "memory.reservation", "memory.low", &max_or(v))?;
        }
        if let Some(swap) = m.swap() {
            // The spec's swap is memory+swap (v1's memsw); v2's swap.max is swap alone.
            let v = match (swap, m.limit()) {
                (s, _) if s < 0 => "max".to_string(),
                (s, Some(l)) if l > 0 => (s - l).max(0).to_string(),
                (s, _) => s.to_string(),
            };
            write_key(&d, "memory.swap", "memory.swap.max", &v)?;
        }
        if m.swappiness().is_some() {
            crate::logging::debug("memory.swappiness has no cgroup v2 equivalent: ignored");
        }
        if m.disable_oom_killer().unwrap_or(false) {
            return refused("memory.disableOOMKiller is not available on cgroup v2");
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares().filter(|v| *v != 0) {
            let w = shares_to_weight(s);
            write_key(&d, "cpu.shares", "cpu.weight", &w.to_string())?;
        }
        if c.quota().is_some() || c.period().is_some() {
            let quota =
                c.quota().filter(|q| *q > 0).map(|q| q.to_string()).unwrap_or_else(|| "max".to_string());
            let period = c.period().filter(|p| *p > 0).unwrap_or(100_000);
            write_key(&d, "cpu.quota/period", "cpu.max", &format!("{quota} {period}"))?;
        }
        if let Some(b) = c.burst() {
            write_key(&d, "cpu.burst", "cpu.max.burst", &b.to_string())?;
        }
        if let Some(i) = c.idle() {
            write_key(&d, "cpu.idle", "cpu.idle", &i.to_string())?;
        }
        if c.realtime_runtime().is_some_and(|v| v != 0) || c.realtime_period().is_some_and(|v| v != 0) {
            return refused("cpu.realtimeRuntime/realtimePeriod are not available on cgroup v2");
        }
        if let Some(v) = c.cpus().as_deref().filter(|v| !v.is_empty()) {
            write_key(&d, "cpu.cpus", "cpuset.cpus", v)?;
        }
        if let Some(v) = c.mems().as_deref().filter(|v| !v.is_empty()) {
            write_key(&d, "cpu.mems", "cpuset.mems", v)?;
        }
    }
    if let Some(p) = r.pids() {
        let v = if p.limit() > 0 { p.limit().to_string() } else { "max".to_string() };
        write_key(&d, "pids.limit", "pids.max", &v)?;
    }
    if let Some(b) = r.block_io() {
        // blkio weight [10, 1000] to io.weight [1, 10000].
        let conv = |w: u16| 1 + ((w.clamp(10, 1000) as u64 - 10) * 9999) / 990;
        // A weight of 0 means "not set", as in runc (Docker sends 0 for every container);
        // converted, it would become the lowest weight, 1.
        if let Some(w) = b.weight().filter(|w| *w != 0) {
            write(&d, "io.weight", &format!("default {}", conv(w)))
                .or_else(|_| write(&d, "io.bfq.weight", &format!("default {w}")))
                .map_err(|f| f.for_key("blockIO.weight"))?;
        }
        for wd in b.weight_device().iter().flatten() {
            if let Some(w) = wd.weight().filter(|w| *w != 0) {
                write(&d, "io.weight", &format!("{}:{} {}", wd.major(), wd.minor(), conv(w)))
                    .map_err(|f| f.for_key("blockIO.weightDevice"))?;
            }
        }
        for (list, key, name) in [
            (b.throttle_read_bps_device(), "rbps", "throttleReadBpsDevice"),
            (b.throttle_write_bps_device(), "wbps", "throttleWriteBpsDevice"),
            (b.throttle_read_iops_device(), "riops", "throttleReadIOPSDevice"),
            (b.throttle_write_iops_device(), "wiops", "throttleWriteIOPSDevice"),
        ] {
            for t in list.iter().flatten() {
                write(&d, "io.max", &format!("{}:{} {key}={}", t.major(), t.minor(), t.rate()))
                    .map_err(|f| f.for_key(&format!("blockIO.{name}")))?;
            }
        }
    }
    for h in r.hugepage_limits().iter().flatten() {
        write_key(
            &d,
            &format!("hugepageLimits[{}]", h.page_size()),
            &format!("hugetlb.{}.max", h.page_size()),
            &max_or(h.limit()),
        )?;
    }
    if let Some(n) = r.network() {
        if n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
            return refused("network.classID/priorities are cgroup v1 only");
        }
    }
    for (dev, limit) in r.rdma().iter().flatten() {
        write_key(&d, &format!("rdma[{dev}]"), "rdma.max", &rdma_line(dev, limit))?;
    }
    for (key, value) in r.unified().iter().flatten() {
        if key.contains('/') || key.starts_with('.') {
            return refused(format!("unified[{key:?}]: not a cgroup file name"));
        }
        write_key(&d, &format!("unified[{key:?}]"), key, value)?;
    }
    if let Some(rules) = r.devices().as_ref().filter(|v| !v.is_empty()) {
        super::devices_bpf::attach(&d, rules)?;
    }
    Ok(())
}

/// cgroup.freeze, then wait for cgroup.events to agree.
pub fn freeze(dir: &Path, frozen: bool) -> R {
    write(dir, "cgroup.freeze", if frozen { "1" } else { "0" })?;
    let want = if frozen { "frozen 1" } else { "frozen 0" };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ev = std::fs::read_to_string(dir.join("cgroup.events")).unwrap_or_default();
        if ev.lines().any(|l| l == want) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return refused(format!("cgroup did not reach {want}"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
