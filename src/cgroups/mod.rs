//! The container's cgroup: where it is (path.rs), made before the init exists, resources
//! written (v1.rs / v2.rs), joined by the init before it execs anything, frozen, listed,
//! killed and removed with the container.
//!
//! Control files are written directly, as crun does: cgroups-rs 0.5 resolved the v1 cpu
//! controller to a bare relative path on hosts that mount cpu and cpuacct separately (these
//! machines do), and the files are few and stable.

mod devices_bpf;
mod error;
mod path;
pub mod stats;
pub mod systemd;
mod v1;
mod v2;

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;

pub use error::{CgroupError, Fault};
pub use path::{resolve, sub_cgroup_refusal};

/// The host's cgroup layout.
#[derive(Debug, Clone)]
pub enum Layout {
    /// Pure cgroup v2 at /sys/fs/cgroup.
    Unified,
    /// v1 hierarchies: (controllers, mount point), e.g. ("memory", "/sys/fs/cgroup/memory").
    Legacy(Vec<(Vec<String>, PathBuf)>),
}

impl Layout {
    pub fn detect() -> Layout {
        let unified = nix::sys::statfs::statfs("/sys/fs/cgroup")
            .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
            .unwrap_or(false);
        if unified {
            return Layout::Unified;
        }
        let out = mounted_hierarchies()
            .into_iter()
            .filter(|h| !h.key.is_empty())
            .map(|h| (h.key.split(',').map(String::from).collect(), h.mount_point))
            .collect();
        Layout::Legacy(out)
    }

    /// Every directory the cgroup `path` has (one per v1 hierarchy, or one).
    pub fn dirs(&self, path: &str) -> Vec<PathBuf> {
        let rel = path.trim_start_matches('/');
        match self {
            Layout::Unified => vec![Path::new("/sys/fs/cgroup").join(rel)],
            Layout::Legacy(h) => h.iter().map(|(_, mp)| mp.join(rel)).collect(),
        }
    }

    /// The directory of `path` in the v1 hierarchy holding `controller`.
    pub fn dir_of(&self, controller: &str, path: &str) -> Option<PathBuf> {
        let rel = path.trim_start_matches('/');
        match self {
            Layout::Unified => Some(Path::new("/sys/fs/cgroup").join(rel)),
            Layout::Legacy(h) => {
                h.iter().find(|(c, _)| c.iter().any(|x| x == controller)).map(|(_, mp)| mp.join(rel))
            }
        }
    }
}

/// One mounted cgroup hierarchy of this mount namespace.
pub struct Hierarchy {
    /// Its key as /proc/self/cgroup names it: "memory", "cpu,cpuacct", "name=systemd", and
    /// "" for cgroup2.
    pub key: String,
    pub mount_point: PathBuf,
}

/// The cgroup hierarchies mounted here, from /proc/self/mountinfo (each once).
pub fn mounted_hierarchies() -> Vec<Hierarchy> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out: Vec<Hierarchy> = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else { continue };
        let Some(mount_point) = left.split(' ').nth(4) else { continue };
        let mut r = right.split(' ');
        let key = match r.next() {
            Some("cgroup2") => String::new(),
            Some("cgroup") => r
                .nth(1)
                .unwrap_or("")
                .split(',')
                .filter(|o| !matches!(*o, "rw" | "ro") && (!o.contains('=') || o.starts_with("name=")))
                .filter(|o| !matches!(*o, "xattr" | "noprefix" | "clone_children" | "cpuset_v2_mode"))
                .collect::<Vec<_>>()
                .join(","),
            _ => continue,
        };
        if !out.iter().any(|h| h.key == key) {
            out.push(Hierarchy { key, mount_point: PathBuf::from(mount_point) });
        }
    }
    out
}

/// This process's cgroup in each hierarchy: (key, path), from /proc/self/cgroup.
pub fn own_cgroups() -> Vec<(String, String)> {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _id = it.next()?;
            Some((it.next()?.to_string(), it.next()?.to_string()))
        })
        .collect()
}

/// True when the kernel refused a write for want of permission.
fn denied(f: &Fault) -> bool {
    f.io_error().and_then(|e| e.raw_os_error()).is_some_and(|n| n == libc::EACCES || n == libc::EPERM)
}

/// The directory of this process's own cgroup on cgroup v2.
fn own_unified_dir(layout: &Layout) -> Option<PathBuf> {
    let (_, path) = own_cgroups().into_iter().find(|(key, _)| key.is_empty())?;
    layout.dirs(&path).into_iter().next()
}

/// A container's cgroup.
pub struct Cgroup {
    /// Path below each hierarchy's root, e.g. "/hull/c1".
    pub path: String,
    layout: Layout,
}

/// Writes one control file; the error names the file and the value.
pub(crate) fn write(dir: &Path, file: &str, value: &str) -> Result<(), Fault> {
    std::fs::write(dir.join(file), value).map_err(|source| Fault::Write {
        file: file.to_string(),
        value: value.to_string(),
        source,
    })
}

/// Writes the control file of a linux.resources setting; the error names the spec's `key`.
pub(crate) fn write_key(dir: &Path, key: &str, file: &str, value: &str) -> Result<(), Fault> {
    write(dir, file, value).map_err(|f| f.for_key(key))
}

impl Cgroup {
    /// The cgroup at `path` (it may or may not exist).
    pub fn open(path: &str) -> Result<Cgroup, CgroupError> {
        Ok(Cgroup { path: path.to_string(), layout: Layout::detect() })
    }

    /// Creates the cgroup and applies `resources`. Returns the topmost directory this call
    /// created (so delete removes the parents hull made, and no others).
    pub fn create(
        path: &str,
        resources: Option<&LinuxResources>,
    ) -> Result<(Cgroup, Option<String>), CgroupError> {
        let cg = Cgroup::open(path)?;
        cg.check_unused()?;
        let first_new = cg.first_missing_ancestor();
        match cg.populate(resources) {
            Ok(()) => Ok((cg, first_new)),
            Err(e) => {
                let _ = cg.destroy(first_new.as_deref());
                Err(e)
            }
        }
    }

    /// Refuses a cgroup that already holds processes: it belongs to someone else (or to a
    /// container that was never deleted). A frozen one would freeze our init before it could
    /// say anything. Refuse both rather than hang or share.
    pub fn check_unused(&self) -> Result<(), CgroupError> {
        let refused = |msg: &str| Err(self.err("", Fault::Refused(msg.to_string())));
        if !self.pids().is_empty() {
            return refused("already exists and has processes in it");
        }
        if self.is_frozen() {
            return refused("already exists and is frozen");
        }
        Ok(())
    }

    /// Names this cgroup (and the step, `during`) in a fault of one of its operations.
    fn err(&self, during: &'static str, fault: Fault) -> CgroupError {
        CgroupError::new(&self.path, during, fault)
    }

    /// Makes whatever directories are missing and writes `resources`; also into a cgroup
    /// that exists already (the scope systemd made).
    pub fn populate(&self, resources: Option<&LinuxResources>) -> Result<(), CgroupError> {
        self.make_dirs()?;
        match resources {
            Some(r) => self.set(r),
            None => Ok(()),
        }
    }

    fn make_dirs(&self) -> Result<(), CgroupError> {
        let made = match &self.layout {
            Layout::Unified => v2::make_dirs(&self.path),
            Layout::Legacy(_) => (|| {
                for dir in self.layout.dirs(&self.path) {
                    std::fs::create_dir_all(&dir).map_err(|source| Fault::Dir {
                        op: "mkdir",
                        path: dir,
                        source,
                    })?;
                }
                match self.layout.dir_of("cpuset", &self.path) {
                    Some(d) => v1::init_cpuset(&d),
                    None => Ok(()),
                }
            })(),
        };
        made.map_err(|f| self.err("", f))
    }

    /// The cgroup's directory on a cgroup v2 host (for clone3's CLONE_INTO_CGROUP); None on v1.
    pub fn unified_dir(&self) -> Option<PathBuf> {
        let Layout::Unified = self.layout else { return None };
        self.layout.dirs(&self.path).into_iter().next()
    }

    /// Moves process `pid` into the cgroup (every hierarchy).
    pub fn join(&self, pid: u32) -> Result<(), CgroupError> {
        for dir in self.layout.dirs(&self.path) {
            write(&dir, "cgroup.procs", &pid.to_string()).map_err(|f| self.err("", f))?;
        }
        Ok(())
    }

    /// Moves the kernel threads in the cgroup to the root of each hierarchy; returns their
    /// pids. KVM starts a worker thread per VM (kvm-nx-lpage-recovery) in the cgroups of the
    /// process that made the VM; a kernel thread never freezes, so a VM container's cgroup
    /// would never reach "frozen" (pause), and `ps` would list it.
    pub fn evict_kernel_threads(&self) -> Result<Vec<i32>, CgroupError> {
        let kthreads: Vec<i32> = self
            .pids()
            .into_iter()
            .filter(|p| crate::state::ProcStat::read(*p).is_ok_and(|s| s.is_kernel_thread()))
            .collect();
        for pid in &kthreads {
            for root in self.layout.dirs("/") {
                // A hierarchy the thread is not in below the root (v1: one without this
                // cgroup) takes the write as a no-op.
                let moved = match write(&root, "cgroup.procs", &pid.to_string()) {
                    // An ordinary user (rootless, in a subtree delegated to it) may not write the
                    // root's cgroup.procs; the cgroup it runs in is its own to write, and out
                    // of the container's all the same (cgroup v2, where delegation exists).
                    Err(f) if denied(&f) && matches!(self.layout, Layout::Unified) => {
                        match own_unified_dir(&self.layout) {
                            Some(own) => write(&own, "cgroup.procs", &pid.to_string()),
                            None => Err(f),
                        }
                    }
                    other => other,
                };
                moved.map_err(|f| self.err("", Fault::KernelThread { pid: *pid, source: Box::new(f) }))?;
            }
        }
        Ok(kthreads)
    }

    /// Writes the spec's resources (create and `update`).
    pub fn set(&self, r: &LinuxResources) -> Result<(), CgroupError> {
        match &self.layout {
            Layout::Unified => v2::apply(&self.layout, &self.path, r),
            Layout::Legacy(_) => v1::apply(&self.layout, &self.path, r),
        }
        .map_err(|f| self.err("linux.resources", f))
    }

    /// Pids of every process in the cgroup.
    pub fn pids(&self) -> Vec<i32> {
        let dir = match &self.layout {
            Layout::Unified => self.layout.dirs(&self.path).into_iter().next(),
            Layout::Legacy(_) => self
                .layout
                .dir_of("pids", &self.path)
                .or_else(|| self.layout.dir_of("memory", &self.path))
                .or_else(|| self.layout.dirs(&self.path).into_iter().next()),
        };
        let mut out = Vec::new();
        if let Some(d) = dir {
            collect_procs(&d, &mut out);
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Freezes or thaws every process, waiting until the kernel says it is done.
    pub fn freeze(&self, frozen: bool) -> Result<(), CgroupError> {
        let r = match &self.layout {
            Layout::Unified => v2::freeze(&self.layout.dirs(&self.path)[0], frozen),
            Layout::Legacy(_) => match self.layout.dir_of("freezer", &self.path) {
                Some(d) => v1::freeze(&d, frozen),
                None => error::refused("no freezer controller on this host"),
            },
        };
        r.map_err(|f| self.err("", f))
    }

    /// True when the freezer holds the cgroup frozen.
    pub fn is_frozen(&self) -> bool {
        match &self.layout {
            Layout::Unified => std::fs::read_to_string(self.layout.dirs(&self.path)[0].join("cgroup.events"))
                .map(|t| t.lines().any(|l| l == "frozen 1"))
                .unwrap_or(false),
            Layout::Legacy(_) => self
                .layout
                .dir_of("freezer", &self.path)
                .and_then(|d| std::fs::read_to_string(d.join("freezer.state")).ok())
                .map(|s| s.trim() == "FROZEN")
                .unwrap_or(false),
        }
    }

    /// SIGKILLs everything in it: cgroup.kill on v2 where the kernel has it.
    pub fn kill_all(&self) {
        if let Layout::Unified = self.layout {
            if write(&self.layout.dirs(&self.path)[0], "cgroup.kill", "1").is_ok() {
                return;
            }
        }
        for pid in self.pids() {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }

    /// The cgroup.procs files a new process of the container writes itself to: one per
    /// hierarchy, in the sub-cgroups `--cgroup` names ("path" for all, "ctrl:path" for one).
    pub fn procs_files(&self, subs: &[String]) -> Vec<PathBuf> {
        let mut all: Option<&str> = None;
        let mut per: Vec<(&str, &str)> = Vec::new();
        for s in subs {
            match s.split_once(':') {
                Some((c, p)) => per.push((c, p)),
                None => all = Some(s.as_str()),
            }
        }
        let pick = |ctrls: &[String]| -> Option<&str> {
            per.iter().find(|(c, _)| ctrls.iter().any(|x| x == c)).map(|(_, p)| *p).or(all)
        };
        let join = |dir: PathBuf, sub: Option<&str>| match sub {
            Some(p) => dir.join(p.trim_start_matches('/')).join("cgroup.procs"),
            None => dir.join("cgroup.procs"),
        };
        match &self.layout {
            Layout::Unified => {
                let sub = per.first().map(|(_, p)| *p).or(all);
                self.layout.dirs(&self.path).into_iter().map(|d| join(d, sub)).collect()
            }
            Layout::Legacy(h) => h
                .iter()
                .map(|(ctrls, mp)| join(mp.join(self.path.trim_start_matches('/')), pick(ctrls)))
                .collect(),
        }
    }

    /// The directory of a v1 controller (or the v2 directory).
    pub fn dir_of(&self, controller: &str) -> Option<PathBuf> {
        self.layout.dir_of(controller, &self.path)
    }

    /// Removes the cgroup, nested children first, then the empty parents hull created
    /// (from `first_new` down).
    pub fn destroy(&self, first_new: Option<&str>) -> Result<(), CgroupError> {
        let dirs = self.layout.dirs(&self.path);
        // Removing nothing is not success: the cgroup would outlive its container unseen.
        if dirs.is_empty() {
            return Err(self.err("", Fault::NoHierarchy));
        }
        for dir in dirs {
            remove_tree(&dir)
                .map_err(|source| self.err("", Fault::Dir { op: "remove", path: dir, source }))?;
        }
        if let Some(top) = first_new {
            let mut p = Path::new(&self.path).parent().map(Path::to_path_buf);
            while let Some(d) = p {
                let ds = d.to_string_lossy().to_string();
                if ds == "/" || !ds.starts_with(top) {
                    break;
                }
                for dir in self.layout.dirs(&ds) {
                    let _ = std::fs::remove_dir(dir);
                }
                p = d.parent().map(Path::to_path_buf);
            }
        }
        Ok(())
    }

    /// The topmost component of the path that does not exist yet.
    fn first_missing_ancestor(&self) -> Option<String> {
        let mut acc = String::new();
        for comp in self.path.split('/').filter(|c| !c.is_empty()) {
            acc.push('/');
            acc.push_str(comp);
            if !self.layout.dirs(&acc).iter().all(|d| d.exists()) {
                return Some(acc);
            }
        }
        None
    }
}

/// Pids in a cgroup and its descendants.
fn collect_procs(dir: &Path, out: &mut Vec<i32>) {
    if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                collect_procs(&e.path(), out);
            }
        }
    }
}

/// rmdir of a cgroup and its children (cgroup directories hold only control files and
/// sub-cgroups, so rmdir is how they go). A busy cgroup is retried briefly: its last
/// process may still be exiting.
fn remove_tree(dir: &Path) -> std::io::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_tree(&e.path())?;
            }
        }
    }
    let mut tries = 0;
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 400 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => return Err(e),
        }
    }
}

/// The resources to write for a new container: the spec's, plus device-cgroup allow rules
/// for the devices every container gets and for those linux.devices lists (runc does the
/// same: a spec that denies all devices still needs /dev/null to work).
///
/// The defaults are runc's, which Docker and containerd count on (their specs list only a
/// few devices): besides the standard devices, mknod of any node (`c *:* m`, `b *:* m`:
/// making a node is not opening it, and it still needs CAP_MKNOD) and /dev/net/tun (`c
/// 10:200`: creating an interface on it still needs CAP_NET_ADMIN). Without them `mknod` of
/// a block device, and a VPN client's /dev/net/tun, fail under hull where runc allows them.
pub fn with_default_devices(spec: &oci_spec::runtime::Spec) -> Option<LinuxResources> {
    use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
    let linux = spec.linux().as_ref()?;
    let mut r = linux.resources().clone()?;
    let Some(mut rules) = r.devices().clone() else { return Some(r) };
    let allow = |typ: LinuxDeviceType, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut d = LinuxDeviceCgroup::default();
        d.set_allow(true);
        d.set_typ(Some(typ));
        d.set_major(major);
        d.set_minor(minor);
        d.set_access(Some(access.to_string()));
        d
    };
    let c = LinuxDeviceType::C;
    rules.push(allow(c, None, None, "m"));
    rules.push(allow(LinuxDeviceType::B, None, None, "m"));
    for (ma, mi) in [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2), (10, 200)] {
        rules.push(allow(c, Some(ma), Some(mi), "rwm"));
    }
    rules.push(allow(c, Some(136), None, "rwm")); // /dev/pts/*

    // A FIFO ('p') is no device: the device cgroup never checks it and the kernel rejects a
    // 'p' rule (runc makes the node and adds no rule either).
    for d in linux.devices().iter().flatten().filter(|d| d.typ() != LinuxDeviceType::P) {
        rules.push(allow(d.typ(), Some(d.major()), Some(d.minor()), "rwm"));
    }
    r.set_devices(Some(rules));
    Some(r)
}
