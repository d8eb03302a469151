//! Rootless: hull run by an ordinary user (issue 17), as rootless podman runs runc and crun.
//! Each test runs the real binary as a user that is not root (a user made for the tests where
//! `useradd` exists, else a bare uid with no passwd entry), on a bundle written by that user's
//! `hull spec --rootless`, with the state in its $XDG_RUNTIME_DIR, and looks at what the
//! container saw and what the host has afterwards.

mod common;
use common::*;

use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::{json, Value};

/// The name of the user the tests make, with ranges in /etc/subuid and /etc/subgid.
const USER: &str = "hull-rootless";
/// Its subordinate ids: the ranges the tests' second line of each map uses.
const SUB_START: u32 = 400000;
const SUB_COUNT: u32 = 65536;
/// A uid and gid with no passwd entry and no subordinate ids.
const BARE: u32 = 61999;
/// The user's uid and gid where the tests write it into /etc themselves (no useradd).
const WRITTEN_ID: u32 = 1500;
/// On the vm backend: a uid and gid that may not use /dev/kvm (the tests' users may).
const NO_KVM: u32 = 61998;

/// On the vm backend, the tests' users get /dev/kvm as a member of the kvm group would: its
/// group becomes the tests' gid (the test machine has no groupadd, and a bare uid is in no
/// group), mode 0660. Root's VM containers are unaffected.
fn give_kvm(gid: u32) {
    if !on_vm() {
        return;
    }
    let kvm = Path::new("/dev/kvm");
    std::os::unix::fs::chown(kvm, None, Some(gid)).unwrap();
    std::fs::set_permissions(kvm, std::fs::Permissions::from_mode(0o660)).unwrap();
}

/// The tests' user: (uid, gid, has a name and subordinate ids). Made once, with useradd where
/// it exists (this host, CI); in the test machine, which has no useradd, a bare uid.
fn user() -> (u32, u32, bool) {
    static USER_IDS: OnceLock<(u32, u32, bool)> = OnceLock::new();
    *USER_IDS.get_or_init(|| {
        let exists = || Command::new("id").args(["-u", USER]).output().is_ok_and(|o| o.status.success());
        if !exists() {
            let made =
                Command::new("useradd").args(["--no-create-home", "--shell", "/bin/false", USER]).status();
            // No useradd (the test machine): the user is written into /etc, as useradd would.
            if !made.is_ok_and(|s| s.success()) && !exists() && !written_into_etc() {
                return (BARE, BARE, false);
            }
        }
        for file in ["/etc/subuid", "/etc/subgid"] {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let line = format!("{USER}:{SUB_START}:{SUB_COUNT}");
            if !text.lines().any(|l| l == line) {
                let kept: String = text
                    .lines()
                    .filter(|l| !l.starts_with(&format!("{USER}:")))
                    .map(|l| format!("{l}\n"))
                    .collect();
                std::fs::write(file, format!("{kept}{line}\n")).unwrap();
            }
        }
        let id = |flag: &str| -> u32 {
            let o = Command::new("id").args([flag, USER]).output().unwrap();
            stdout(&o).trim().parse().unwrap()
        };
        (id("-u"), id("-g"), true)
    })
}

/// Where useradd is missing: the user (uid and gid WRITTEN_ID) appended to /etc/passwd and
/// /etc/group; true when `id` then knows it.
fn written_into_etc() -> bool {
    let append = |file: &str, line: String| {
        use std::io::Write;
        std::fs::OpenOptions::new().append(true).open(file).and_then(|mut f| f.write_all(line.as_bytes()))
    };
    let written =
        append("/etc/passwd", format!("{USER}:x:{WRITTEN_ID}:{WRITTEN_ID}::/nonexistent:/bin/false\n"))
            .and_then(|()| append("/etc/group", format!("{USER}:x:{WRITTEN_ID}:\n")));
    written.is_ok() && Command::new("id").args(["-u", USER]).output().is_ok_and(|o| o.status.success())
}

/// One test's rootless sandbox: the bundle (its config.json from the user's own `hull spec
/// --rootless`), a copy of hull any user may run, and the user's runtime directory.
struct Rootless {
    // Fields drop in this order: the reaper before the Env removes the directory.
    _reaper: Reaper,
    env: Env,
    uid: u32,
    gid: u32,
    hull: PathBuf,
    xdg: PathBuf,
}

impl Rootless {
    fn new(args: &[&str]) -> Rootless {
        let (uid, gid, _) = user();
        Rootless::as_ids(uid, gid, args)
    }

    fn as_ids(uid: u32, gid: u32, args: &[&str]) -> Rootless {
        if uid != NO_KVM {
            give_kvm(gid);
        }
        let env = Env::new(args);
        // The checkout may sit under a home only root may enter.
        let hull = env.dir.join("hull");
        std::fs::copy(HULL, &hull).unwrap();
        std::fs::set_permissions(&hull, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&env.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let xdg = env.dir.join("xdg");
        std::fs::create_dir(&xdg).unwrap();
        std::os::unix::fs::chown(&xdg, Some(uid), Some(gid)).unwrap();
        std::fs::set_permissions(&xdg, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(&env.bundle, Some(uid), Some(gid)).unwrap();
        std::fs::remove_file(env.bundle.join("config.json")).unwrap();
        let reaper = Reaper(xdg.join("hull"));
        let mut r = Rootless { _reaper: reaper, env, uid, gid, hull, xdg };
        let o = r.hull(&["spec", "--rootless", "--bundle", r.env.bundle.to_str().unwrap()]);
        assert!(o.status.success(), "spec --rootless: {}", stderr(&o));
        r.env.config =
            serde_json::from_slice(&std::fs::read(r.env.bundle.join("config.json")).unwrap()).unwrap();
        r.env.config["process"]["args"] = json!(args);
        r.env.config["process"]["terminal"] = json!(false);
        r.env.config["hostname"] = json!("rootless-test");
        if on_vm() {
            r.env.config["annotations"] = json!({"hull.backend": "vm"});
        }
        r.env.write_config();
        r
    }

    /// The state root a rootless hull picks by itself.
    fn root(&self) -> PathBuf {
        self.xdg.join("hull")
    }

    /// `hull ARGS` as the user, XDG_RUNTIME_DIR set, no --root.
    fn cmd(&self, args: &[&str]) -> Command {
        self.cmd_in(&[], args)
    }

    /// [`Rootless::cmd`], the process first moved into the cgroups whose cgroup.procs files
    /// `join` names (while still root: an ordinary user may move a process only within a
    /// subtree it owns).
    fn cmd_in(&self, join: &[PathBuf], args: &[&str]) -> Command {
        let mut c = Command::new(&self.hull);
        c.args(args).env("XDG_RUNTIME_DIR", &self.xdg).current_dir(&self.env.dir);
        let procs: Vec<std::fs::File> =
            join.iter().map(|p| std::fs::OpenOptions::new().write(true).open(p).unwrap()).collect();
        let (uid, gid) = (self.uid, self.gid);
        // SAFETY: the closure runs in the forked child before exec and makes only
        // async-signal-safe system calls on values made before the fork.
        unsafe {
            c.pre_exec(move || {
                for f in &procs {
                    // "0": the writing process itself (cgroup v1 and v2).
                    if libc::write(f.as_raw_fd(), b"0".as_ptr().cast(), 1) != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setresgid(gid, gid, gid) != 0
                    || libc::setresuid(uid, uid, uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        c
    }

    fn hull(&self, args: &[&str]) -> Output {
        run_bounded(&self.env.dir, self.cmd(args), None, 20)
    }

    fn bundle(&self) -> &str {
        self.env.bundle.to_str().unwrap()
    }

    /// `create`, the container's stdio in files (`ID.out`, `ID.err`).
    fn create(&self, id: &str) -> Output {
        self.create_in(&[], id)
    }

    fn create_in(&self, join: &[PathBuf], id: &str) -> Output {
        let mut c = self.cmd_in(join, &["create", "--bundle", self.bundle(), id]);
        c.stdin(Stdio::null());
        let (o, e) = (self.env.dir.join(format!("{id}.out")), self.env.dir.join(format!("{id}.err")));
        run_bounded_to(c, o, e, None, 30)
    }

    fn state(&self, id: &str) -> Value {
        let o = self.hull(&["state", id]);
        assert!(o.status.success(), "state {id}: {}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    }

    fn wait_stopped(&self, id: &str) {
        let deadline = std::time::Instant::now() + patience(10);
        while self.state(id)["status"] != "stopped" {
            assert!(std::time::Instant::now() < deadline, "{id} never stopped");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// What is left of container `id`: its state directory, a cgroup named after it, a process
    /// of the user's.
    fn leftovers(&self, id: &str) -> Vec<String> {
        let mut left = Vec::new();
        if self.root().join(id).exists() {
            left.push(format!("state dir {}", self.root().join(id).display()));
        }
        left.extend(cgroup_dirs_named(id).iter().map(|d| format!("cgroup {}", d.display())));
        left.extend(processes_of(self.uid).iter().map(|p| format!("process {p}: {}", cmdline(*p))));
        left
    }
}

impl Drop for Rootless {
    fn drop(&mut self) {
        for e in std::fs::read_dir(self.root()).into_iter().flatten().flatten() {
            let id = e.file_name().to_string_lossy().to_string();
            let _ = self.cmd(&["delete", "--force", &id]).output();
        }
    }
}

/// Live processes whose real uid is `uid` (the tests' user runs nothing else). A zombie is
/// not one: a killed init that the host's init has yet to reap.
fn processes_of(uid: u32) -> Vec<i32> {
    let zombie = |p: i32| {
        std::fs::read_to_string(format!("/proc/{p}/status"))
            .is_ok_and(|s| s.lines().any(|l| l.starts_with("State:\tZ")))
    };
    all_pids().into_iter().filter(|p| host_uid(*p) == Some(uid) && !zombie(*p)).collect()
}

/// A process's real uid as the host sees it.
fn host_uid(pid: i32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The tests share one user: one at a time, so that each one's leftovers check is its own.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

// ---- the tests ----

#[test]
fn an_ordinary_user_runs_a_container() {
    let _one = serial();
    let r = Rootless::new(&[
        "sh",
        "-c",
        "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups; hostname; \
         touch /x 2>/dev/null || echo root-ro; exit 3",
    ]);
    // `spec --rootless`: a user namespace mapping the caller to root, no network namespace.
    let linux = &r.env.config["linux"];
    let nss: Vec<&str> =
        linux["namespaces"].as_array().unwrap().iter().map(|n| n["type"].as_str().unwrap()).collect();
    assert!(nss.contains(&"user") && !nss.contains(&"network"), "{nss:?}");
    assert_eq!(linux["uidMappings"], json!([{"containerID": 0, "hostID": r.uid, "size": 1}]));
    assert_eq!(linux["gidMappings"], json!([{"containerID": 0, "hostID": r.gid, "size": 1}]));
    let o = run_bounded(&r.env.dir, r.cmd(&["run", "--bundle", r.bundle(), "rl-run"]), None, 30);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    // In a VM the guest makes the container's user namespace: its ids are the guest's, where
    // the caller's are 0 (the VMM's user namespace maps them so), and the guest's root, which
    // writes the maps, leaves setgroups allowed.
    let (uid, gid, setgroups) = if on_vm() {
        ("0".to_string(), "0".to_string(), "allow")
    } else {
        (r.uid.to_string(), r.gid.to_string(), "deny")
    };
    assert_eq!(
        lines,
        vec![
            vec!["0"],
            vec!["0"],
            vec!["0", uid.as_str(), "1"],
            vec!["0", gid.as_str(), "1"],
            vec![setgroups],
            vec!["rootless-test"],
            vec!["root-ro"],
        ],
        "{out}"
    );
    // The state went to $XDG_RUNTIME_DIR/hull, and nothing is left.
    assert!(r.root().is_dir());
    assert_eq!(r.leftovers("rl-run"), Vec::<String>::new());
}

#[test]
fn lifecycle_and_exec_as_an_ordinary_user() {
    let _one = serial();
    let r = Rootless::new(&["sleep", "300"]);
    let o = r.create("rl-life");
    assert!(o.status.success(), "create: {}", stderr(&o));
    let st = r.state("rl-life");
    assert_eq!(st["status"], "created");
    let pid = st["pid"].as_i64().unwrap() as i32;
    // The container's root is the user on the host.
    assert_eq!(host_uid(pid), Some(r.uid));
    let o = r.hull(&["start", "rl-life"]);
    assert!(o.status.success(), "start: {}", stderr(&o));
    assert_eq!(r.state("rl-life")["status"], "running");
    let o = r.hull(&["exec", "rl-life", "sh", "-c", "id -u; cat /proc/1/cmdline | tr '\\0' ' '"]);
    assert!(o.status.success(), "exec: {}", stderr(&o));
    assert_eq!(stdout(&o), "0\nsleep 300 ");
    let o = r.hull(&["ps", "--format", "json", "rl-life"]);
    assert!(o.status.success(), "ps: {}", stderr(&o));
    assert!(serde_json::from_slice::<Vec<i32>>(&o.stdout).unwrap().contains(&pid));
    let o = r.hull(&["list", "--format", "json"]);
    assert!(stdout(&o).contains("\"rl-life\""), "{}", stdout(&o));
    // KILL: the init is pid 1 of its namespace, where a signal it has no handler for is ignored.
    let o = r.hull(&["kill", "rl-life", "KILL"]);
    assert!(o.status.success(), "kill: {}", stderr(&o));
    r.wait_stopped("rl-life");
    let o = r.hull(&["delete", "rl-life"]);
    assert!(o.status.success(), "delete: {}", stderr(&o));
    assert_eq!(r.leftovers("rl-life"), Vec::<String>::new());
}

#[test]
fn limits_without_a_cgroup_are_warned_about_and_pause_says_why() {
    let _one = serial();
    let mut r = Rootless::new(&["sleep", "300"]);
    // A VM needs 96 MiB at least (the guest and the VMM): four times the native limit.
    let limit: u64 = if on_vm() { 4 * 67108864 } else { 67108864 };
    r.env.config["linux"]["resources"] = json!({"memory": {"limit": limit}, "pids": {"limit": 64}});
    r.env.write_config();
    let o = r.create("rl-nocg");
    assert!(o.status.success(), "create: {}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("memory limit, pids limit not applied") && err.contains("delegated cgroup v2 subtree"),
        "{err}"
    );
    let o = r.hull(&["pause", "rl-nocg"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no cgroup: it was created rootless"), "{}", stderr(&o));
    let o = r.hull(&["delete", "--force", "rl-nocg"]);
    assert!(o.status.success(), "delete: {}", stderr(&o));
    assert_eq!(r.leftovers("rl-nocg"), Vec::<String>::new());
}

/// A spec that maps a subordinate range too: the ids go through newuidmap/newgidmap. The
/// container's uid 1000 is host uid SUB_START + 999: its process natively, and on both
/// backends the owner on the host of the file it writes (a VM container's VMM maps the range
/// in its own user namespace, at the same ids, and serves the guest's files as them).
#[test]
fn subordinate_ranges_are_mapped_through_newuidmap() {
    let _one = serial();
    let (_, _, named) = user();
    if !named || Command::new("newuidmap").arg("--help").output().is_err() {
        common::skipped("skipped: needs a named user (useradd, or a writable /etc/passwd) and newuidmap (Debian's uidmap)");
        return;
    }
    let script = "id; cat /proc/self/uid_map; touch /w/by-1000 2>&1; exec sleep 300";
    let mut r = Rootless::new(&["sh", "-c", script]);
    // A directory the container's uid 1000 may write.
    let w = r.env.rootfs().join("w");
    std::fs::create_dir_all(&w).unwrap();
    std::fs::set_permissions(&w, std::fs::Permissions::from_mode(0o1777)).unwrap();
    r.env.config["root"]["readonly"] = json!(false);
    let l = &mut r.env.config["linux"];
    let maps = |own: u32| json!([{"containerID": 0, "hostID": own, "size": 1}, {"containerID": 1, "hostID": SUB_START, "size": SUB_COUNT}]);
    l["uidMappings"] = maps(r.uid);
    l["gidMappings"] = maps(r.gid);
    r.env.config["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [5]});
    r.env.write_config();
    let o = r.create("rl-sub");
    assert!(o.status.success(), "create: {}", stderr(&o));
    let pid = r.state("rl-sub")["pid"].as_i64().unwrap() as i32;
    assert!(r.hull(&["start", "rl-sub"]).status.success());
    // Container uid 1000 is subordinate id SUB_START + 999 on the host. A VM container's
    // pid is its VMM's: root of its own user namespace, the caller on the host.
    let want = SUB_START + 999;
    let deadline = std::time::Instant::now() + patience(10);
    while !on_vm() && host_uid(pid) != Some(want) {
        assert!(std::time::Instant::now() < deadline, "init's host uid {:?}, not {want}", host_uid(pid));
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // The program prints after its setuid: wait for its last line.
    let out_file = r.env.dir.join("rl-sub.out");
    let read = || std::fs::read_to_string(&out_file).unwrap_or_default();
    while read().lines().count() < 3 || !w.join("by-1000").exists() {
        assert!(std::time::Instant::now() < deadline, "the program printed {:?}", read());
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let out = read();
    let lines: Vec<String> =
        out.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    // The container's map as its kernel shows it: natively the host's ids; a guest's are the
    // VMM's, in which the caller is 0 and the range keeps its ids.
    let own = if on_vm() { 0 } else { r.uid };
    assert_eq!(
        lines,
        vec![
            "uid=1000 gid=1000 groups=5".to_string(),
            format!("0 {own} 1"),
            format!("1 {SUB_START} {SUB_COUNT}"),
        ],
        "{out}"
    );
    let owner = std::fs::metadata(w.join("by-1000")).map(|m| (m.uid(), m.gid())).unwrap();
    assert_eq!(owner, (want, want), "the host owner of what the container's uid 1000 wrote");
    let o = r.hull(&["delete", "--force", "rl-sub"]);
    assert!(o.status.success(), "delete: {}", stderr(&o));
    assert_eq!(r.leftovers("rl-sub"), Vec::<String>::new());
    assert!(processes_of(want).is_empty());
}

#[test]
fn a_user_without_subordinate_ids_is_told_which_file_lacks_them() {
    let _one = serial();
    let mut r = Rootless::as_ids(BARE, BARE, &["true"]);
    let maps = json!([{"containerID": 0, "hostID": BARE, "size": 1}, {"containerID": 1, "hostID": SUB_START, "size": 10}]);
    r.env.config["linux"]["uidMappings"] = maps.clone();
    r.env.config["linux"]["gidMappings"] = maps;
    r.env.write_config();
    let o = r.create("rl-nosub");
    assert!(!o.status.success());
    let err = stderr(&o);
    // The same on both backends: a VM container's VMM maps the range through newuidmap too.
    let why = format!("uid {BARE} has no range in /etc/subuid");
    assert!(
        err.contains(&why) && err.contains("linux.uidMappings maps host uids other than the caller's own"),
        "{err}"
    );
    assert_eq!(r.leftovers("rl-nosub"), Vec::<String>::new());
}

#[test]
fn the_rootless_flag() {
    let _one = serial();
    let r = Rootless::new(&["true"]);
    let o = r.hull(&["--rootless=maybe", "list"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("true, false or auto"), "{}", stderr(&o));
    // Without XDG_RUNTIME_DIR a rootless hull's default root is /run/hull, which the user may
    // not write: the error says what to set.
    let mut c = r.cmd(&["create", "--bundle", r.bundle(), "rl-flag"]);
    c.env_remove("XDG_RUNTIME_DIR");
    let o = run_bounded(&r.env.dir, c, None, 20);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("set XDG_RUNTIME_DIR, or --root"), "{}", stderr(&o));
    // --rootless=false: hull as root would, so the cgroup it may not make is an error.
    let root = r.xdg.join("explicit");
    let o = r.hull(&[
        "--rootless=false",
        "--root",
        root.to_str().unwrap(),
        "create",
        "--bundle",
        r.bundle(),
        "rl-flag",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("Permission denied"), "{}", stderr(&o));
    assert!(std::fs::read_dir(&root).map(|mut d| d.next().is_none()).unwrap_or(true));
    assert_eq!(r.leftovers("rl-flag"), Vec::<String>::new());
}

/// cgroup v2 only (the test machine): a subtree delegated to the user, as systemd's
/// Delegate=yes does (the directory and its cgroup.procs, cgroup.subtree_control and
/// cgroup.threads owned by the user); the user's hull runs in a leaf of it, and a container
/// whose linux.cgroupsPath is below it gets its limits.
#[test]
fn a_delegated_cgroup_v2_subtree_gets_the_limits() {
    let _one = serial();
    let top = Path::new("/sys/fs/cgroup");
    if !top.join("cgroup.controllers").exists() {
        eprintln!("[test] skipped: needs a pure cgroup v2 host (the test machine runs it)");
        return;
    }
    let mut r = Rootless::new(&["sh", "-c", "cat /proc/self/cgroup; exec sleep 300"]);
    // As systemd delegates user@UID.service: below a cgroup of root's that gives the subtree
    // memory and pids only (no cpuset: moving another user's thread between cpusets needs
    // CAP_SYS_NICE, and a VM's KVM worker thread is root's).
    let name = format!("hull-rootless-{}", std::process::id());
    let outer = top.join(&name);
    let deleg = outer.join("user");
    let leaf = deleg.join("hull");
    std::fs::create_dir(&outer).unwrap();
    std::fs::write(outer.join("cgroup.subtree_control"), "+memory +pids").unwrap();
    std::fs::create_dir_all(&leaf).unwrap();
    struct Remove(Vec<PathBuf>);
    impl Drop for Remove {
        fn drop(&mut self) {
            for d in &self.0 {
                let _ = std::fs::remove_dir(d);
            }
        }
    }
    let _gone = Remove(vec![leaf.clone(), deleg.clone(), outer.clone()]);
    for d in [&deleg, &leaf] {
        for f in ["", "cgroup.procs", "cgroup.subtree_control", "cgroup.threads"] {
            std::os::unix::fs::chown(d.join(f), Some(r.uid), Some(r.gid)).unwrap();
        }
    }
    let path = format!("/{name}/user/rl-deleg");
    r.env.config["linux"]["cgroupsPath"] = json!(path);
    // A VM needs 96 MiB at least (the guest and the VMM): four times the native limit.
    let limit: u64 = if on_vm() { 4 * 67108864 } else { 67108864 };
    r.env.config["linux"]["resources"] = json!({"memory": {"limit": limit}, "pids": {"limit": 64}});
    r.env.write_config();
    let o = r.create_in(&[leaf.join("cgroup.procs")], "rl-deleg");
    assert!(o.status.success(), "create: {}", stderr(&o));
    let create_said = stderr(&o);
    assert!(!stderr(&o).contains("not applied"), "{}", stderr(&o));
    assert!(r.hull(&["start", "rl-deleg"]).status.success());
    let cg = deleg.join("rl-deleg");
    assert_eq!(std::fs::read_to_string(cg.join("memory.max")).unwrap().trim(), limit.to_string());
    assert_eq!(std::fs::read_to_string(cg.join("pids.max")).unwrap().trim(), "64");
    let pid = r.state("rl-deleg")["pid"].as_i64().unwrap() as i32;
    let procs = std::fs::read_to_string(cg.join("cgroup.procs")).unwrap();
    assert!(procs.lines().any(|l| l == pid.to_string()), "{procs}");
    // pause works: the freezer is the user's. (On a VM, KVM's worker thread started in the
    // container's cgroup, and create moved it to the user's own cgroup, the leaf: the root's
    // is not the user's to write, and a kernel thread never freezes.)
    let o = r.hull(&["pause", "rl-deleg"]);
    let left = std::fs::read_to_string(cg.join("cgroup.procs")).unwrap_or_default();
    assert!(o.status.success(), "pause: {} (create said: {create_said}; in the cgroup: {left})", stderr(&o));
    assert_eq!(r.state("rl-deleg")["status"], "paused");
    let o = r.hull(&["delete", "--force", "rl-deleg"]);
    assert!(o.status.success(), "delete: {}", stderr(&o));
    assert!(!cg.exists(), "{} left", cg.display());
    assert_eq!(r.leftovers("rl-deleg"), Vec::<String>::new());
}

/// The vm backend only: a user who may not open /dev/kvm is told which privilege is missing,
/// and nothing is left.
#[test]
fn a_user_without_kvm_access_is_told_to_join_the_kvm_group() {
    let _one = serial();
    if !on_vm() {
        eprintln!("[test] skipped: a VM container's check (HULL_TEST_BACKEND=vm)");
        return;
    }
    // /dev/kvm is the tests' gid's, 0660 (give_kvm): this user is in neither.
    give_kvm(user().1);
    let r = Rootless::as_ids(NO_KVM, NO_KVM, &["true"]);
    let o = r.create("rl-nokvm");
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("/dev/kvm: Permission denied") && err.contains("needs to be in the kvm group"),
        "{err}"
    );
    assert_eq!(r.leftovers("rl-nokvm"), Vec::<String>::new());
}

/// A rootless container whose spec [`Rootless::new`] wrote, edited by `edit`, with a tmpfs at
/// /tmp, run in cgroups the user owns (as a systemd user session's are): the probe's output
/// (common/cgroup_ro.rs).
fn cve_2023_25809_probe(id: &str, edit: impl FnOnce(&mut Value)) -> String {
    let (uid, gid, _) = user();
    // Declared before the sandbox, so it is removed after the container is gone.
    let cgroups = cgroup_ro::OwnedCgroups::new(uid, gid);
    let mut r = Rootless::new(&["sh", "-c", &cgroup_ro::probe(cgroup_ro::CG_NAME)]);
    r.env.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]
    }));
    edit(&mut r.env.config);
    r.env.write_config();
    let c = r.cmd_in(&cgroups.procs(), &["run", "--bundle", r.bundle(), id]);
    let o = run_bounded(&r.env.dir, c, None, 30);
    assert!(o.status.success(), "{id}: {}\n{}", stderr(&o), stdout(&o));
    assert_eq!(r.leftovers(id), Vec::<String>::new());
    stdout(&o)
}

fn without_cgroup_namespace(config: &mut Value) {
    config["linux"]["namespaces"].as_array_mut().unwrap().retain(|n| n["type"] != "cgroup");
}

/// The spec's mount at /sys/fs/cgroup.
fn cgroup_mount(config: &mut Value) -> &mut Value {
    let mounts = config["mounts"].as_array_mut().unwrap();
    mounts.iter_mut().find(|m| m["destination"] == "/sys/fs/cgroup").expect("a mount at /sys/fs/cgroup")
}

/// CVE-2023-25809, case (a): rootless, no cgroup namespace (as `podman run --cgroupns=host`
/// runs runc): hull cannot mount a cgroupfs of the container's own and binds the host's
/// cgroups instead. Those binds are read-only, with the spec's `ro` and without it (runc's fix
/// makes the fallback bind read-only unless the spec says `rw`), although the cgroups bound
/// are the user's own.
#[test]
fn cve_2023_25809_rootless_without_a_cgroup_namespace_gets_a_read_only_cgroup_mount() {
    let _one = serial();
    if on_vm() {
        common::skipped("skipped: a VM container's cgroups are the guest's (native check)");
        return;
    }
    let out = cve_2023_25809_probe("rl-25809-a", without_cgroup_namespace);
    cgroup_ro::assert_cgroup_read_only(&out, true, "the spec's cgroup mount (ro)");
    let out = cve_2023_25809_probe("rl-25809-a2", |c| {
        without_cgroup_namespace(c);
        let m = cgroup_mount(c);
        m["options"] = json!(["nosuid", "noexec", "nodev", "relatime"]);
    });
    cgroup_ro::assert_cgroup_read_only(&out, true, "a cgroup mount without ro");
}

/// CVE-2023-25809, case (b): `hull spec --rootless` binds /sys with `rbind,ro`. Every mount
/// the recursive bind brings along (/sys/fs/cgroup and the hierarchies below it) is read-only
/// too, with the spec as written and without its cgroup mount (then the host's tree, the
/// user's cgroups in it, is what /sys/fs/cgroup shows).
#[test]
fn cve_2023_25809_rootless_spec_rbind_ro_sys_keeps_its_submounts_read_only() {
    let _one = serial();
    if on_vm() {
        common::skipped("skipped: a VM container's /sys is the guest's (native check)");
        return;
    }
    let out = cve_2023_25809_probe("rl-25809-b", |_| {});
    cgroup_ro::assert_cgroup_read_only(&out, true, "spec --rootless as written");
    let out = cve_2023_25809_probe("rl-25809-b2", |c| {
        c["mounts"].as_array_mut().unwrap().retain(|m| m["destination"] != "/sys/fs/cgroup");
    });
    cgroup_ro::assert_cgroup_read_only(&out, true, "spec --rootless without its cgroup mount");
}
