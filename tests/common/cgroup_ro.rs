//! CVE-2023-25809 (runc): a container must not get a writable /sys/fs/cgroup when its runtime
//! has to bind the host's cgroup tree (a user namespace and no cgroup namespace), nor through
//! a `rbind,ro` of /sys whose submounts stayed writable. The probe a container runs, the check
//! of what it printed, and cgroups that the container's root owns, so that only the mount's
//! read-only flag can stop a write there.

use std::path::{Path, PathBuf};

/// What the tests' host cgroups and the probe's directories are called.
pub const CG_NAME: &str = "hull-cve-25809";

/// The container's program: every mount under /sys with its options, each cgroup directory it
/// can see (the top ones, and `name` in each hierarchy where the host's tree shows: its owner
/// as the container sees it, and whether a directory could be made in it), and the same write
/// on a tmpfs at /tmp (the positive control: the probe itself works).
pub fn probe(name: &str) -> String {
    format!(
        "grep ' /sys' /proc/self/mountinfo | while read -r _ _ _ _ point opts _; do echo \"MOUNT $point $opts\"; done; \
         for d in /sys/fs/cgroup /sys/fs/cgroup/* /sys/fs/cgroup/*/{name}; do \
           [ -d \"$d\" ] || continue; echo \"DIR $(stat -c %u \"$d\") $d\"; \
           if mkdir \"$d/probe\" 2>/dev/null; then echo \"WROTE $d\"; rmdir \"$d/probe\"; fi; \
         done; \
         mkdir /tmp/probe && echo CONTROL-WROTE"
    )
}

/// Asserts, from the probe's output `out`, that nothing under /sys/fs/cgroup was writable and
/// that every mount under /sys is read-only, after checking that the probe could have seen a
/// write: /tmp was written, /sys/fs/cgroup is mounted, and a cgroup directory there is owned
/// by the container's root (`owned`: where the test gave it one).
#[track_caller]
pub fn assert_cgroup_read_only(out: &str, owned: bool, what: &str) {
    assert!(out.contains("CONTROL-WROTE"), "{what}: the control write on /tmp failed: {out}");
    let mounts: Vec<(&str, &str)> =
        out.lines().filter_map(|l| l.strip_prefix("MOUNT ")).filter_map(|l| l.split_once(' ')).collect();
    assert!(
        mounts.iter().any(|(p, _)| p.starts_with("/sys/fs/cgroup")),
        "{what}: no mount at /sys/fs/cgroup: {out}"
    );
    if owned {
        assert!(
            // v1: a hierarchy's directory; v2: the bind of the container's own cgroup is
            // /sys/fs/cgroup itself.
            out.lines().any(|l| l == "DIR 0 /sys/fs/cgroup" || l.starts_with("DIR 0 /sys/fs/cgroup/")),
            "{what}: no cgroup directory owned by the container's root: {out}"
        );
    }
    let wrote: Vec<&str> = out.lines().filter(|l| l.starts_with("WROTE")).collect();
    assert!(wrote.is_empty(), "{what}: the container wrote under /sys/fs/cgroup: {wrote:?}\n{out}");
    let rw: Vec<_> = mounts.iter().filter(|(_, o)| !o.split(',').any(|f| f == "ro")).collect();
    assert!(rw.is_empty(), "{what}: mounts under /sys left writable: {rw:?}\n{out}");
}

/// A cgroup named [`CG_NAME`] in each of the host's hierarchies (cpuset left out: joining it
/// needs its cpus and mems set), owned by `uid`:`gid` as a delegated one is; removed on drop,
/// with what a container made in it.
pub struct OwnedCgroups(pub Vec<PathBuf>);

impl OwnedCgroups {
    pub fn new(uid: u32, gid: u32) -> OwnedCgroups {
        let mut dirs = Vec::new();
        for point in hierarchies() {
            if point.ends_with("cpuset") {
                continue;
            }
            let d = point.join(CG_NAME);
            let _ = std::fs::create_dir(&d);
            for f in ["", "cgroup.procs", "tasks", "cgroup.threads", "cgroup.subtree_control"] {
                let p = d.join(f);
                if p.exists() {
                    std::os::unix::fs::chown(&p, Some(uid), Some(gid)).unwrap();
                }
            }
            dirs.push(d);
        }
        OwnedCgroups(dirs)
    }

    /// Their cgroup.procs files, for the command that runs hull to join.
    pub fn procs(&self) -> Vec<PathBuf> {
        self.0.iter().map(|d| d.join("cgroup.procs")).collect()
    }
}

impl Drop for OwnedCgroups {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = std::fs::remove_dir(d.join("probe"));
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// The mount points of the host's cgroup hierarchies (v1 and v2).
pub fn hierarchies() -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let fstype = right.split_whitespace().next()?;
            let point = left.split_whitespace().nth(4)?;
            matches!(fstype, "cgroup" | "cgroup2").then(|| Path::new(point).to_path_buf())
        })
        .collect()
}
