//! The cgroup layer's errors. The kernel's reason stays the source (not text), so a caller
//! can tell ENOENT from EBUSY; Display gives the words, and whoever prints walks the chain
//! ("cgroup /hull/c1: linux.resources: cpu.cpus: write \"99\" to cpuset.cpus: Invalid
//! argument (os error 22)").

use std::io;
use std::path::PathBuf;

/// An operation on the cgroup at `cgroup` failed; `fault` says what and why.
#[derive(Debug, thiserror::Error)]
pub struct CgroupError {
    /// The cgroup's path below each hierarchy's root, e.g. "/hull/c1".
    pub cgroup: String,
    /// The step of the operation, where it names one ("linux.resources"); "" for none.
    pub during: &'static str,
    #[source]
    pub fault: Fault,
}

impl std::fmt::Display for CgroupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cgroup {}", self.cgroup)?;
        if !self.during.is_empty() {
            write!(f, ": {}", self.during)?;
        }
        Ok(())
    }
}

impl CgroupError {
    pub(crate) fn new(cgroup: &str, during: &'static str, fault: Fault) -> CgroupError {
        CgroupError { cgroup: cgroup.to_string(), during, fault }
    }

    /// The system call's error underneath, if one failed.
    #[allow(dead_code)] // for callers that match on the errno; today's only print
    pub fn io_error(&self) -> Option<&io::Error> {
        self.fault.io_error()
    }
}

/// What went wrong inside a cgroup, before `CgroupError` names which one.
#[derive(Debug, thiserror::Error)]
pub enum Fault {
    /// A control file of linux.resources refused its value; `key` is the spec's name for it.
    #[error("{key}: write {value:?} to {file}")]
    Setting {
        key: String,
        file: String,
        value: String,
        #[source]
        source: io::Error,
    },
    /// A control file hull writes for itself (cgroup.procs, freezer.state, cpuset.cpus, ...).
    #[error("write {value:?} to {file}")]
    Write {
        file: String,
        value: String,
        #[source]
        source: io::Error,
    },
    /// A control file that could not be read.
    #[error("read {file}")]
    Read {
        file: String,
        #[source]
        source: io::Error,
    },
    /// A file operation on a cgroup directory: "mkdir", "remove", "devices: open".
    #[error("{op} {}", path.display())]
    Dir {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The kernel refused the device-cgroup eBPF program; `log` is its verifier's reason.
    #[error("devices: load the device-cgroup BPF program{}", verifier(log))]
    BpfLoad {
        log: String,
        #[source]
        source: io::Error,
    },
    /// /proc/self/mountinfo listed no cgroup hierarchy on a host without cgroup2 at
    /// /sys/fs/cgroup: every operation would silently touch nothing.
    #[error("no cgroup hierarchy is mounted (none in /proc/self/mountinfo)")]
    NoHierarchy,
    /// Moving a kernel thread out of the cgroup failed.
    #[error("moving kernel thread {pid} out")]
    KernelThread {
        pid: i32,
        #[source]
        source: Box<Fault>,
    },
    /// No system call failed: a rule of hull's, or the kernel's state is not what it must be
    /// ("this host has no hugetlb cgroup controller", "freezer stuck in FREEZING").
    #[error("{0}")]
    Refused(String),
}

fn verifier(log: &str) -> String {
    if log.is_empty() {
        String::new()
    } else {
        format!(" (verifier: {log})")
    }
}

impl Fault {
    /// The system call's error underneath, if one failed.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            Fault::Setting { source, .. }
            | Fault::Write { source, .. }
            | Fault::Read { source, .. }
            | Fault::Dir { source, .. }
            | Fault::BpfLoad { source, .. } => Some(source),
            Fault::KernelThread { source, .. } => source.io_error(),
            Fault::Refused(_) | Fault::NoHierarchy => None,
        }
    }

    /// Names the spec key a control file write was for.
    pub fn for_key(self, key: &str) -> Fault {
        match self {
            Fault::Write { file, value, source } => {
                Fault::Setting { key: key.to_string(), file, value, source }
            }
            other => other,
        }
    }
}

pub fn refused<T>(msg: impl Into<String>) -> Result<T, Fault> {
    Err(Fault::Refused(msg.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_reads_as_before_and_keeps_the_errno() {
        let source = io::Error::from_raw_os_error(libc::EINVAL);
        let fault =
            Fault::Write { file: "cpuset.cpus".into(), value: "99".into(), source }.for_key("cpu.cpus");
        let e = CgroupError::new("/hull/c1", "linux.resources", fault);
        assert_eq!(format!("{:#}", anyhow::Error::new(e).context("create")).split_once(": ").map(|x| x.1), Some(
            "cgroup /hull/c1: linux.resources: cpu.cpus: write \"99\" to cpuset.cpus: Invalid argument (os error 22)"
        ));
        let e = CgroupError::new("/x", "", Fault::Refused("already exists and is frozen".into()));
        assert_eq!(e.to_string(), "cgroup /x");
        assert!(e.io_error().is_none());
        let busy =
            Fault::Dir { op: "remove", path: "/x".into(), source: io::Error::from_raw_os_error(libc::EBUSY) };
        let e = CgroupError::new("/x", "", busy);
        assert_eq!(e.io_error().and_then(io::Error::raw_os_error), Some(libc::EBUSY));
    }
}
