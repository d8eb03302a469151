//! Which namespaces the container joins (a `path`) and which it creates, and doing it in the
//! order the kernel needs: joins first, the user namespace before the others.

use std::os::fd::OwnedFd;

use nix::fcntl::{open, OFlag};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::error::{msg, Context, Result};

/// The namespaces of one container.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Namespaces to join: (kind, path).
    pub joins: Vec<(CloneFlags, String)>,
    /// Namespaces to create, the user namespace included.
    pub create: CloneFlags,
}

pub fn flag_of(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

impl Plan {
    pub fn from_spec(spec: &Spec) -> Plan {
        let mut plan = Plan { joins: Vec::new(), create: CloneFlags::empty() };
        let nss = spec.linux().as_ref().and_then(|l| l.namespaces().clone()).unwrap_or_default();
        for ns in nss {
            let flag = flag_of(ns.typ());
            match ns.path() {
                Some(p) => plan.joins.push((flag, p.display().to_string())),
                None => plan.create |= flag,
            }
        }
        plan
    }

    /// True when the container lives in a user namespace other than hull's.
    pub fn in_userns(&self) -> bool {
        self.create.contains(CloneFlags::CLONE_NEWUSER)
            || self.joins.iter().any(|(f, _)| *f == CloneFlags::CLONE_NEWUSER)
    }

    pub fn has(&self, flag: CloneFlags) -> bool {
        self.create.contains(flag) || self.joins.iter().any(|(f, _)| *f == flag)
    }

    /// Opens every namespace to join, before any setns changes what the paths mean.
    /// The user namespace comes first: it decides what the others may be joined with.
    pub fn open_joins(&self) -> Result<Vec<Joined>> {
        let mut out = Vec::with_capacity(self.joins.len());
        for (flag, path) in &self.joins {
            let fd = open(path.as_str(), OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
                .ctx(|| format!("open namespace {path}"))?;
            out.push(Joined { flag: *flag, fd, path: path.clone() });
        }
        out.sort_by_key(|j| j.flag != CloneFlags::CLONE_NEWUSER);
        Ok(out)
    }
}

/// An opened namespace to join.
pub struct Joined {
    pub flag: CloneFlags,
    pub fd: OwnedFd,
    pub path: String,
}

/// Joins the opened namespaces in order.
pub fn join(joins: &[Joined]) -> Result<()> {
    for j in joins {
        setns(&j.fd, j.flag).ctx(|| format!("join namespace {}", j.path))?;
    }
    Ok(())
}

/// Creates the namespaces in `flags` (user namespace excluded: that one has its own step).
pub fn create(flags: CloneFlags) -> Result<()> {
    let flags = flags - CloneFlags::CLONE_NEWUSER;
    if flags.is_empty() {
        return Ok(());
    }
    unshare(flags).ctx(|| format!("create namespaces ({})", names(flags)))
}

/// Writes linux.timeOffsets into the new time namespace, before its first process exists.
pub fn set_time_offsets(spec: &Spec) -> Result<()> {
    let Some(offsets) = spec.linux().as_ref().and_then(|l| l.time_offsets().clone()) else {
        return Ok(());
    };
    let mut text = String::new();
    for (clock, off) in &offsets {
        let name = match clock.as_str() {
            "monotonic" | "boottime" => clock.as_str(),
            other => return msg(format!("linux.timeOffsets: unknown clock {other:?}")),
        };
        text.push_str(&format!("{name} {} {}\n", off.secs().unwrap_or(0), off.nanosecs().unwrap_or(0)));
    }
    std::fs::write("/proc/self/timens_offsets", text).ctx(|| "write /proc/self/timens_offsets".to_string())
}

fn names(flags: CloneFlags) -> String {
    let all = [
        (CloneFlags::CLONE_NEWNS, "mount"),
        (CloneFlags::CLONE_NEWUTS, "uts"),
        (CloneFlags::CLONE_NEWIPC, "ipc"),
        (CloneFlags::CLONE_NEWNET, "network"),
        (CloneFlags::CLONE_NEWPID, "pid"),
        (CloneFlags::CLONE_NEWCGROUP, "cgroup"),
        (CloneFlags::from_bits_retain(libc::CLONE_NEWTIME), "time"),
    ];
    all.iter().filter(|(f, _)| flags.contains(*f)).map(|(_, n)| *n).collect::<Vec<_>>().join(", ")
}
