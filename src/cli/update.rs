use std::path::PathBuf;

use crate::cli::GlobalOpts;
use crate::container;

/// runc's `update` flags. Sizes are bytes, with an optional k/m/g/t/p suffix (1024-based,
/// as docker's units.RAMInBytes reads them); -1 means unlimited.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A runtime-spec LinuxResources JSON (what containerd passes); "-" reads stdin. Flags
    /// given with it override its values.
    #[arg(short = 'r', long)]
    pub resources: Option<PathBuf>,
    /// Block IO weight (10-1000).
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// CPU CFS period in microseconds.
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    /// CPU CFS quota in microseconds (-1: unlimited).
    #[arg(long = "cpu-quota", allow_negative_numbers = true)]
    pub cpu_quota: Option<i64>,
    /// CPU shares (relative weight).
    #[arg(long = "cpu-share", alias = "cpu-shares")]
    pub cpu_share: Option<u64>,
    /// CPU realtime period in microseconds.
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    /// CPU realtime runtime in microseconds.
    #[arg(long = "cpu-rt-runtime", allow_negative_numbers = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// CPUs the container may use (0-3, 0,1).
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes the container may use (0-3, 0,1).
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Kernel memory limit: deprecated, accepted and ignored (as runc does).
    #[arg(long = "kernel-memory", allow_hyphen_values = true)]
    pub kernel_memory: Option<String>,
    /// Kernel TCP buffer memory limit.
    #[arg(long = "kernel-memory-tcp", allow_hyphen_values = true, value_parser = parse_size)]
    pub kernel_memory_tcp: Option<i64>,
    /// Memory limit.
    #[arg(short = 'm', long, allow_hyphen_values = true, value_parser = parse_size)]
    pub memory: Option<i64>,
    /// Memory soft limit.
    #[arg(long = "memory-reservation", allow_hyphen_values = true, value_parser = parse_size)]
    pub memory_reservation: Option<i64>,
    /// Memory plus swap limit.
    #[arg(long = "memory-swap", allow_hyphen_values = true, value_parser = parse_size)]
    pub memory_swap: Option<i64>,
    /// Maximum number of pids (0 or -1: unlimited).
    #[arg(long = "pids-limit", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    /// The container's id.
    pub id: String,
}

pub fn run(g: &GlobalOpts, a: Args) -> anyhow::Result<u8> {
    let req = container::UpdateRequest {
        resources: a.resources,
        blkio_weight: a.blkio_weight,
        cpu_period: a.cpu_period,
        cpu_quota: a.cpu_quota,
        cpu_share: a.cpu_share,
        cpu_rt_period: a.cpu_rt_period,
        cpu_rt_runtime: a.cpu_rt_runtime,
        cpuset_cpus: a.cpuset_cpus,
        cpuset_mems: a.cpuset_mems,
        kernel_memory: a.kernel_memory,
        kernel_memory_tcp: a.kernel_memory_tcp,
        memory: a.memory,
        memory_reservation: a.memory_reservation,
        memory_swap: a.memory_swap,
        pids_limit: a.pids_limit,
    };
    container::update(&g.runtime(), &a.id, &req)?;
    Ok(0)
}

/// "-1", a byte count, or a number with a k/m/g/t/p suffix (optionally followed by "b" or
/// "ib"), like docker's units.RAMInBytes: "512m", "1.5G", "64KiB".
pub fn parse_size(s: &str) -> Result<i64, String> {
    let t = s.trim();
    if t == "-1" {
        return Ok(-1);
    }
    let bad = || format!("invalid size {s:?}: expected bytes, or a number with a k, m, g, t or p suffix");
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if !num.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(bad());
    }
    let n: f64 = num.parse().map_err(|_| bad())?;
    let mut u = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    if u.ends_with('b') {
        u.pop();
    }
    if u.ends_with('i') {
        u.pop();
    }
    let mult: f64 = match u.as_str() {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "p" => 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    let v = n * mult;
    if !v.is_finite() || v >= i64::MAX as f64 {
        return Err(format!("invalid size {s:?}: too large"));
    }
    Ok(v as i64)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("-1"), Ok(-1));
        assert_eq!(parse_size("1048576"), Ok(1_048_576));
        assert_eq!(parse_size("64k"), Ok(65_536));
        assert_eq!(parse_size("64KiB"), Ok(65_536));
        assert_eq!(parse_size("128m"), Ok(134_217_728));
        assert_eq!(parse_size("128MB"), Ok(134_217_728));
        assert_eq!(parse_size("1.5g"), Ok(1_610_612_736));
        assert_eq!(parse_size("2 G"), Ok(2_147_483_648));
        assert_eq!(parse_size("10b"), Ok(10));
        for bad in ["", "m", "-2", "12x", "1..2m", "1e3", "12mm", "-5m"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }
}
