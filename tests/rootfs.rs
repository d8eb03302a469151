//! The container's root filesystem as the container sees it: every kind of mount, /dev and its
//! devices, masked and read-only paths, a read-only root, --no-pivot, rootfs propagation, a
//! symlink in the image that tries to send a mount to the host, idmapped mounts, and mounts
//! that fail (which must leave nothing behind).

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

// ---- helpers ----

fn h(env: &Env, args: &[&str]) -> Output {
    run_bounded(&env.dir, env.cmd(args), None, 20)
}

/// One line of /proc/<pid>/mountinfo.
#[derive(Debug, Clone)]
struct Mnt {
    dev: String,
    root: String,
    point: String,
    opts: Vec<String>,
    tags: Vec<String>,
    fstype: String,
    super_opts: Vec<String>,
}

impl Mnt {
    fn has(&self, o: &str) -> bool {
        self.opts.iter().any(|x| x == o)
    }
    fn has_super(&self, o: &str) -> bool {
        self.super_opts.iter().any(|x| x == o)
    }
}

fn parse_mountinfo(text: &str) -> Vec<Mnt> {
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let f: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            Some(Mnt {
                dev: f.get(2)?.to_string(),
                root: f.get(3)?.to_string(),
                point: f.get(4)?.to_string(),
                opts: f.get(5)?.split(',').map(String::from).collect(),
                tags: f[6..].iter().map(|s| s.to_string()).collect(),
                fstype: r.first()?.to_string(),
                super_opts: r.get(2).map(|s| s.split(',').map(String::from).collect()).unwrap_or_default(),
            })
        })
        .collect()
}

const SEP: &str = "@@MOUNTINFO@@";

/// Runs `script` in the container, then has it print its mountinfo. Returns what the script
/// printed (stderr included, so an unexpected error shows in the comparison) and the
/// container's mounts.
#[track_caller]
fn run_script(env: &mut Env, id: &str, script: &str, extra: &[&str]) -> (String, Vec<Mnt>) {
    env.config["process"]["args"] =
        json!(["sh", "-c", format!("exec 2>&1\n{script}\necho {SEP}; cat /proc/self/mountinfo")]);
    env.write_config();
    let mut args = vec!["run", "--bundle", env.bundle.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.push(id);
    let o = h(env, &args);
    ok(&o, &format!("run {id}"));
    let out = stdout(&o);
    let (before, mi) =
        out.split_once(&format!("{SEP}\n")).unwrap_or_else(|| panic!("no mountinfo in {out:?}"));
    (before.to_string(), parse_mountinfo(mi))
}

/// The mount visible at `point` (the last one mounted there).
#[track_caller]
fn at<'a>(mounts: &'a [Mnt], point: &str) -> &'a Mnt {
    mounts
        .iter()
        .rev()
        .find(|m| m.point == point)
        .unwrap_or_else(|| panic!("nothing mounted on {point}: {mounts:#?}"))
}

fn host_mountinfo() -> String {
    std::fs::read_to_string("/proc/self/mountinfo").unwrap()
}

/// The host's mounts under this test's directory (other tests mount on the host meanwhile).
fn host_mounts_under(dir: &Path) -> Vec<String> {
    let d = dir.display().to_string();
    host_mountinfo().lines().filter(|l| l.contains(&d)).map(String::from).collect()
}

fn add_mount(env: &mut Env, m: Value) {
    env.config["mounts"].as_array_mut().unwrap().push(m);
    env.write_config();
}

/// A directory under the test's dir, with the given files.
fn host_dir(env: &Env, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let d = env.dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    for (f, content) in files {
        std::fs::write(d.join(f), content).unwrap();
    }
    d
}

fn list_dir(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|t| t[t.rfind(')')? + 1..].split_whitespace().next().map(|s| s != "Z" && s != "X"))
        .unwrap_or(false)
}

/// Live processes whose command line names this test's state root (hull commands, and inits
/// that never exec'd their program).
fn stray_hull_processes(env: &Env) -> Vec<(i32, String)> {
    let root = env.root.to_str().unwrap().to_string();
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|p| *p != me && alive(*p))
        .map(|p| (p, cmdline(p)))
        .filter(|(_, c)| c.contains(&root))
        .collect()
}

/// A tmpfs mounted on the host for the test, detached on drop.
struct HostMount(PathBuf);

impl HostMount {
    fn tmpfs(at: &Path) -> HostMount {
        std::fs::create_dir_all(at).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "hulltest", at.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs on {}", at.display());
        HostMount(at.to_path_buf())
    }
}

impl Drop for HostMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

// ---- bind mounts ----

#[test]
fn bind_ro_cannot_be_written() {
    let (mut env, _r) = env_of(&["true"]);
    let ro = host_dir(&env, "ro-src", &[("f", "orig\n")]);
    let rw = host_dir(&env, "rw-src", &[]);
    add_mount(
        &mut env,
        json!({"destination": "/data", "type": "bind", "source": ro.to_str().unwrap(), "options": ["bind", "ro"]}),
    );
    add_mount(
        &mut env,
        json!({"destination": "/rw", "type": "bind", "source": rw.to_str().unwrap(), "options": ["bind", "rw"]}),
    );
    let script = "cat /data/f; echo new 2>/dev/null > /data/f && echo WROTE; touch /data/g 2>/dev/null && echo TOUCHED; \
                  echo from-container > /rw/new && echo rw-ok";
    let (out, mounts) = run_script(&mut env, "rf-bind-ro", script, &[]);
    assert_eq!(out, "orig\nrw-ok\n");
    let m = at(&mounts, "/data");
    assert!(m.has("ro"), "{m:?}");
    assert!(at(&mounts, "/rw").has("rw"));
    assert_eq!(std::fs::read_to_string(ro.join("f")).unwrap(), "orig\n", "host file changed");
    assert_eq!(list_dir(&ro), vec!["f"], "host dir changed");
    assert_eq!(std::fs::read_to_string(rw.join("new")).unwrap(), "from-container\n");
}

#[test]
fn bind_mount_of_a_file_and_relative_source() {
    let (mut env, _r) = env_of(&["true"]);
    std::fs::write(env.bundle.join("hosts.txt"), "127.0.0.1 hull\n").unwrap();
    // A relative source is relative to the bundle; the destination file is made.
    add_mount(
        &mut env,
        json!({"destination": "/etc/myhosts", "type": "bind", "source": "hosts.txt", "options": ["rbind", "ro", "nosuid", "nodev", "noexec"]}),
    );
    let (out, mounts) = run_script(&mut env, "rf-bind-file", "cat /etc/myhosts", &[]);
    assert_eq!(out, "127.0.0.1 hull\n");
    let m = at(&mounts, "/etc/myhosts");
    for o in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(m.has(o), "{o} missing: {m:?}");
    }
}

#[test]
fn rbind_carries_submounts_and_bind_does_not() {
    let (mut env, _r) = env_of(&["true"]);
    let tree = host_dir(&env, "tree", &[("top", "t\n")]);
    let sub = HostMount::tmpfs(&tree.join("sub"));
    std::fs::write(sub.0.join("marker"), "in-submount\n").unwrap();
    add_mount(
        &mut env,
        json!({"destination": "/r", "type": "bind", "source": tree.to_str().unwrap(), "options": ["rbind"]}),
    );
    add_mount(
        &mut env,
        json!({"destination": "/b", "type": "bind", "source": tree.to_str().unwrap(), "options": ["bind"]}),
    );
    let script = "cat /r/top /r/sub/marker; echo --; cat /b/top; ls -A /b/sub";
    let (out, mounts) = run_script(&mut env, "rf-rbind", script, &[]);
    assert_eq!(out, "t\nin-submount\n--\nt\n", "rbind must show the submount, bind must not");
    if on_vm() {
        // The guest sees a bind's host submounts inside one virtio-fs mount, not as mounts of
        // their own: what they hold (above) is what holds there.
        return;
    }
    assert_eq!(at(&mounts, "/r/sub").fstype, "tmpfs");
    assert!(!mounts.iter().any(|m| m.point == "/b/sub"), "bind (not rbind) carried a submount");
    drop(sub);
}

/// `rro` makes the whole rbind read-only, submounts included (a plain `ro` reaches only the
/// top mount, shown beside it); `rnosuid`, `rnodev`, `rnoexec` likewise reach the submount.
#[test]
fn recursive_mount_attributes_reach_submounts() {
    if native_only("the guest sees a bind's host submounts inside one virtio-fs mount, not as mounts of their own, so a plain ro covers them too (docs/vm.md)") {
        return;
    }
    let (mut env, _r) = env_of(&["true"]);
    let tree = host_dir(&env, "rtree", &[("top", "t\n")]);
    let sub = HostMount::tmpfs(&tree.join("sub"));
    let src = tree.to_str().unwrap();
    add_mount(
        &mut env,
        json!({"destination": "/rro", "type": "bind", "source": src, "options": ["rbind", "rro"]}),
    );
    add_mount(
        &mut env,
        json!({"destination": "/ro", "type": "bind", "source": src, "options": ["rbind", "ro"]}),
    );
    add_mount(
        &mut env,
        json!({"destination": "/rflags", "type": "bind", "source": src,
               "options": ["rbind", "rnosuid", "rnodev", "rnoexec", "rnoatime"]}),
    );
    let script = "touch /rro/sub/x 2>&1; touch /rro/y 2>&1; \
                  touch /ro/sub/from-ro && echo ro-sub-writable; touch /ro/z 2>&1";
    let (out, mounts) = run_script(&mut env, "rf-rro", script, &[]);
    assert_eq!(
        out,
        "touch: /rro/sub/x: Read-only file system\ntouch: /rro/y: Read-only file system\n\
         ro-sub-writable\ntouch: /ro/z: Read-only file system\n"
    );
    assert!(at(&mounts, "/rro/sub").has("ro"), "{:?}", at(&mounts, "/rro/sub"));
    let m = at(&mounts, "/rflags/sub");
    for o in ["nosuid", "nodev", "noexec", "noatime", "rw"] {
        assert!(m.has(o), "{o} missing: {m:?}");
    }
    assert!(!at(&mounts, "/rflags").has("ro"));
    // The host's own submount is untouched.
    let host = host_mountinfo();
    let line = host.lines().find(|l| l.split(' ').nth(4) == Some(sub.0.to_str().unwrap())).unwrap();
    assert!(line.split(' ').nth(5).unwrap().split(',').any(|o| o == "rw"), "{line}");
    drop(sub);
}

// ---- idmapped mounts ----

/// The container's user namespace of the idmap tests: its root is host uid and gid 100000.
fn idmap_userns(env: &mut Env) {
    env.config["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "user"}));
    env.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    env.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    env.write_config();
}

/// Mount points made in the image beforehand: the root of a user namespace cannot make them
/// in a rootfs that host root owns.
fn mount_points(env: &Env, dirs: &[&str]) {
    for d in dirs {
        std::fs::create_dir_all(env.rootfs().join(d)).unwrap();
    }
}

/// A host file owned by `uid`:`gid`.
fn owned_file(path: &Path, uid: u32, gid: u32) {
    std::fs::write(path, "x\n").unwrap();
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
}

fn host_owner(path: &Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (m.uid(), m.gid())
}

/// Why the filesystem holding `dir` cannot be idmapped on this kernel, if it cannot: ramfs
/// never, tmpfs before Linux 6.3 (the test machine's initramfs root, on Debian 12's 6.1).
/// The tests then skip, saying so, rather than test the kernel.
fn idmap_unsupported(dir: &Path) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statfs writes one struct statfs, zeroed here, and reads the NUL-terminated path.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above; both pointers are valid for the call.
    if unsafe { libc::statfs(path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut v = release.trim().split(|c: char| !c.is_ascii_digit()).map(|n| n.parse::<u32>().unwrap_or(0));
    let (major, minor) = (v.next().unwrap_or(0), v.next().unwrap_or(0));
    // linux/magic.h's RAMFS_MAGIC, which the libc crate does not define.
    const RAMFS_MAGIC: libc::c_long = 0x8584_58f6;
    match st.f_type {
        RAMFS_MAGIC => Some("the test directory is on ramfs, which cannot be idmapped".to_string()),
        libc::TMPFS_MAGIC if (major, minor) < (6, 3) => Some(format!(
            "the test directory is on tmpfs, which Linux {} cannot idmap (6.3 can)",
            release.trim()
        )),
        _ => None,
    }
}

/// On the vm backend an idmapped mount is refused, naming it (docs/vm.md): checks that and
/// returns true there. Natively: true, after saying why, where the test directory's
/// filesystem cannot be idmapped; else false.
#[track_caller]
fn refused_on_vm(env: &Env, id: &str, dest: &str) -> bool {
    if !on_vm() {
        if let Some(why) = idmap_unsupported(&env.dir) {
            common::skipped(&format!("skipped: {why}"));
            return true;
        }
        return false;
    }
    let o = env.create(id);
    fails(&o, &format!("create {id}"));
    let e = stderr(&o);
    for n in [dest, "not supported by the vm backend"] {
        assert!(e.contains(n), "the message should name {n:?}: {e}");
    }
    assert!(env.root_is_empty(), "state dir left after a refused create");
    true
}

/// `idmap` with the container's mappings (0 -> 100000): a host file owned by 1000 shows as
/// 1000 in the container (a plain bind of the same directory shows the overflow id), and a
/// file the container's uid 5 makes through it is stored as host uid 5 (through the plain
/// bind: 100005).
#[test]
fn idmap_maps_host_owners_into_the_container() {
    let (mut env, _r) = env_of(&["true"]);
    idmap_userns(&mut env);
    let src = host_dir(&env, "idsrc", &[]);
    std::fs::set_permissions(&src, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    owned_file(&src.join("f"), 1000, 1000);
    let s = src.to_str().unwrap();
    add_mount(
        &mut env,
        json!({"destination": "/data", "type": "bind", "source": s, "options": ["bind", "idmap"]}),
    );
    add_mount(&mut env, json!({"destination": "/plain", "type": "bind", "source": s, "options": ["bind"]}));
    if refused_on_vm(&env, "rf-idmap", "/data") {
        return;
    }
    mount_points(&env, &["data", "plain"]);
    env.config["process"]["user"] = json!({"uid": 5, "gid": 6});
    let script =
        "stat -c %u:%g /data/f /plain/f; touch /data/by-5 /plain/by-5-plain; stat -c %u:%g /data/by-5";
    let (out, mounts) = run_script(&mut env, "rf-idmap", script, &[]);
    assert_eq!(out, "1000:1000\n65534:65534\n5:6\n");
    assert_eq!(host_owner(&src.join("by-5")), (5, 6), "a file made through the idmapped mount");
    assert_eq!(host_owner(&src.join("by-5-plain")), (100005, 100006), "a file made through the plain bind");
    assert!(at(&mounts, "/data").has("idmapped"), "{:?}", at(&mounts, "/data"));
    assert!(!at(&mounts, "/plain").has("idmapped"), "{:?}", at(&mounts, "/plain"));
}

/// A mount's own uidMappings/gidMappings win over the container's: on-disk 2000 is host id
/// 100007 at the mount, the container's 7; an owner outside them shows as the overflow id.
/// Without a user namespace in the container, the mount's mappings are all there is.
#[test]
fn idmap_with_the_mounts_own_mappings() {
    let (mut env, _r) = env_of(&["true"]);
    idmap_userns(&mut env);
    let src = host_dir(&env, "own-src", &[]);
    owned_file(&src.join("g"), 2000, 2000);
    owned_file(&src.join("f"), 1000, 1000);
    let maps = json!([{"containerID": 2000, "hostID": 100007, "size": 1}]);
    add_mount(
        &mut env,
        json!({"destination": "/own", "type": "bind", "source": src.to_str().unwrap(),
               "options": ["rbind", "idmap"], "uidMappings": maps, "gidMappings": maps}),
    );
    if refused_on_vm(&env, "rf-idmap-own", "/own") {
        return;
    }
    mount_points(&env, &["own"]);
    let (out, _) = run_script(&mut env, "rf-idmap-own", "stat -c %u:%g /own/g /own/f", &[]);
    assert_eq!(out, "7:7\n65534:65534\n");

    // No user namespace: the container's ids are the host's.
    let (mut env, _r2) = env_of(&["true"]);
    let src = host_dir(&env, "own-src-2", &[]);
    owned_file(&src.join("root-owned"), 0, 0);
    let maps = json!([{"containerID": 0, "hostID": 5000, "size": 10}]);
    add_mount(
        &mut env,
        json!({"destination": "/own", "type": "bind", "source": src.to_str().unwrap(),
               "options": ["bind", "idmap"], "uidMappings": maps, "gidMappings": maps}),
    );
    let (out, mounts) = run_script(&mut env, "rf-idmap-own-2", "stat -c %u:%g /own/root-owned", &[]);
    assert_eq!(out, "5000:5000\n");
    assert!(at(&mounts, "/own").has("idmapped"), "{:?}", at(&mounts, "/own"));
}

/// A process holding a user namespace whose root is host 100000 (the maps written here), as a
/// pod's sandbox holds the one its containers join; killed on drop.
struct UsernsHolder(std::process::Child);

impl UsernsHolder {
    fn new() -> UsernsHolder {
        let child = Command::new("unshare").args(["--user", "sleep", "1000"]).spawn().unwrap();
        let holder = UsernsHolder(child);
        let pid = holder.0.id();
        let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/user")).ok();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while ns(&pid.to_string()) == ns("self") || ns(&pid.to_string()).is_none() {
            assert!(std::time::Instant::now() < deadline, "unshare --user did not make its namespace");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        for f in ["uid_map", "gid_map"] {
            std::fs::write(format!("/proc/{pid}/{f}"), "0 100000 65536\n").unwrap();
        }
        holder
    }

    fn path(&self) -> String {
        format!("/proc/{}/ns/user", self.0.id())
    }
}

impl Drop for UsernsHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `idmap` without mappings of its own in a container that joins a user namespace by path
/// takes that namespace's (runc's reading): a host file owned by 1000 shows as 1000.
#[test]
fn idmap_takes_a_joined_user_namespaces_mappings() {
    if native_only("namespaces by path are the host's: the guest makes its own (docs/vm.md)") {
        return;
    }
    let (mut env, _r) = env_of(&["true"]);
    if let Some(why) = idmap_unsupported(&env.dir) {
        common::skipped(&format!("skipped: {why}"));
        return;
    }
    let holder = UsernsHolder::new();
    env.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user", "path": holder.path()}));
    let src = host_dir(&env, "idsrc", &[]);
    owned_file(&src.join("f"), 1000, 1000);
    let s = src.to_str().unwrap();
    add_mount(
        &mut env,
        json!({"destination": "/data", "type": "bind", "source": s, "options": ["bind", "idmap"]}),
    );
    mount_points(&env, &["data"]);
    let (out, mounts) = run_script(&mut env, "rf-idmap-joined", "id -u; stat -c %u:%g /data/f", &[]);
    assert_eq!(out, "0\n1000:1000\n");
    assert!(at(&mounts, "/data").has("idmapped"), "{:?}", at(&mounts, "/data"));
}

/// `ridmap` on an rbind idmaps the submounts it brings too; plain `idmap` on an rbind idmaps
/// the top mount only (as runc does: AT_RECURSIVE for ridmap alone), so a file owned by 1000
/// in the submount shows as the overflow id there. Flags like `ro` apply to an idmapped bind
/// as to any.
#[test]
fn ridmap_reaches_submounts_and_idmap_does_not() {
    let (mut env, _r) = env_of(&["true"]);
    idmap_userns(&mut env);
    let tree = host_dir(&env, "idtree", &[]);
    owned_file(&tree.join("top"), 1000, 1000);
    let sub = HostMount::tmpfs(&tree.join("sub"));
    owned_file(&sub.0.join("marker"), 1000, 1000);
    let t = tree.to_str().unwrap();
    add_mount(
        &mut env,
        json!({"destination": "/r", "type": "bind", "source": t, "options": ["rbind", "ridmap"]}),
    );
    add_mount(
        &mut env,
        json!({"destination": "/i", "type": "bind", "source": t, "options": ["rbind", "idmap", "ro"]}),
    );
    if refused_on_vm(&env, "rf-ridmap", "/r") {
        return;
    }
    mount_points(&env, &["r", "i"]);
    let script = "stat -c %u:%g /r/top /r/sub/marker /i/top /i/sub/marker";
    let (out, mounts) = run_script(&mut env, "rf-ridmap", script, &[]);
    assert_eq!(out, "1000:1000\n1000:1000\n1000:1000\n65534:65534\n");
    for p in ["/r", "/r/sub", "/i"] {
        assert!(at(&mounts, p).has("idmapped"), "{p}: {:?}", at(&mounts, p));
    }
    assert!(!at(&mounts, "/i/sub").has("idmapped"), "{:?}", at(&mounts, "/i/sub"));
    assert!(at(&mounts, "/i").has("ro"), "{:?}", at(&mounts, "/i"));
    drop(sub);
}

// ---- filesystems ----

#[test]
fn tmpfs_size_and_mode() {
    let (mut env, _r) = env_of(&["true"]);
    add_mount(
        &mut env,
        json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev", "noexec", "mode=1750", "size=1m"]}),
    );
    let script = "stat -c %a /scratch; df -k /scratch | awk 'NR==2 {print $2}'; \
                  dd if=/dev/zero of=/scratch/big bs=1024 count=2048 2>/dev/null && echo FILLED || echo full";
    let (out, mounts) = run_script(&mut env, "rf-tmpfs", script, &[]);
    assert_eq!(out, "1750\n1024\nfull\n");
    let m = at(&mounts, "/scratch");
    assert_eq!(m.fstype, "tmpfs");
    assert!(m.has_super("size=1024k") && m.has_super("mode=1750"), "{m:?}");
    for o in ["nosuid", "nodev", "noexec"] {
        assert!(m.has(o), "{o} missing: {m:?}");
    }
}

#[test]
fn dev_is_a_tmpfs_with_devpts_shm_mqueue() {
    let (mut env, _r) = env_of(&["true"]);
    let script = "readlink /dev/ptmx; ls -A /dev/pts; stat -c '%t:%T' /dev/pts/ptmx; \
                  echo x > /dev/shm/f && echo shm-ok; stat -c %a /dev/shm";
    let (out, mounts) = run_script(&mut env, "rf-dev", script, &[]);
    assert_eq!(out, "pts/ptmx\nptmx\n5:2\nshm-ok\n1777\n");
    let dev = at(&mounts, "/dev");
    assert_eq!(dev.fstype, "tmpfs");
    assert!(dev.has_super("mode=755") && dev.has_super("size=65536k"), "{dev:?}");
    let pts = at(&mounts, "/dev/pts");
    assert_eq!(pts.fstype, "devpts");
    assert!(pts.has_super("ptmxmode=666") && pts.has_super("mode=620"), "{pts:?}");
    assert!(pts.has("nosuid") && pts.has("noexec"), "{pts:?}");
    // newinstance: not the host's devpts (on a VM the guest's device numbers are its own).
    let host = parse_mountinfo(&host_mountinfo());
    for hp in host.iter().filter(|m| m.fstype == "devpts" && !on_vm()) {
        assert_ne!(hp.dev, pts.dev, "the container's /dev/pts is the host's devpts instance");
    }
    let shm = at(&mounts, "/dev/shm");
    assert_eq!(shm.fstype, "tmpfs");
    assert!(shm.has("nosuid") && shm.has("nodev") && shm.has("noexec"), "{shm:?}");
    let mq = at(&mounts, "/dev/mqueue");
    assert_eq!(mq.fstype, "mqueue");
    assert!(mq.has("nosuid") && mq.has("nodev") && mq.has("noexec"), "{mq:?}");
}

#[test]
fn proc_and_sysfs() {
    let (mut env, _r) = env_of(&["true"]);
    let (out, mounts) = run_script(&mut env, "rf-procsys", "echo $$; ls /sys/class/net", &[]);
    assert_eq!(out, "1\nlo\n");
    assert_eq!(at(&mounts, "/proc").fstype, "proc");
    let sys = at(&mounts, "/sys");
    assert_eq!(sys.fstype, "sysfs");
    assert!(sys.has("ro") && sys.has("nosuid") && sys.has("nodev") && sys.has("noexec"), "{sys:?}");
}

#[test]
fn cgroup_mount_is_read_only() {
    let (mut env, _r) = env_of(&["true"]);
    add_mount(
        &mut env,
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
        "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    );
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        // Pure v2: the container's own cgroup, read-only; its init (pid 1 inside) is in it.
        let script = "mkdir /sys/fs/cgroup/hull-x 2>/dev/null && echo MADE || echo ro; \
                      test -f /sys/fs/cgroup/cgroup.procs && echo has-procs; grep -x 1 /sys/fs/cgroup/cgroup.procs";
        let (out, mounts) = run_script(&mut env, "rf-cgroup", script, &[]);
        assert_eq!(out, "ro\nhas-procs\n1\n");
        assert!(at(&mounts, "/sys/fs/cgroup").has("ro"));
        return;
    }
    let script = "ls /sys/fs/cgroup | sort | tr '\\n' ' '; echo; \
                  mkdir /sys/fs/cgroup/pids/hull-x 2>/dev/null && echo MADE || echo ro; \
                  test -f /sys/fs/cgroup/pids/cgroup.procs && echo has-procs";
    let (out, mounts) = run_script(&mut env, "rf-cgroup", script, &[]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].split_whitespace().any(|h| h == "pids"), "{out}");
    assert_eq!(&lines[1..], &["ro", "has-procs"], "{out}");
    assert!(at(&mounts, "/sys/fs/cgroup").has("ro"));
    assert!(!Path::new("/sys/fs/cgroup/pids/hull-x").exists(), "the container made a cgroup on the host");
}

// ---- devices ----

#[test]
fn default_devices() {
    let (mut env, _r) = env_of(&["true"]);
    let script = "for d in null zero full random urandom tty; do stat -c '%n %F %t:%T %a %u:%g' /dev/$d; done; \
                  for l in fd stdin stdout stderr; do echo $l=$(readlink /dev/$l); done; \
                  echo x > /dev/null && echo null-ok; head -c 3 /dev/zero | od -An -tx1 | tr -d ' '; \
                  echo x 2>/dev/null > /dev/full || echo full-ok; test $(head -c 16 /dev/urandom | wc -c) = 16 && echo urandom-ok";
    let (out, _) = run_script(&mut env, "rf-devices", script, &[]);
    let want = "/dev/null character special file 1:3 666 0:0\n\
                /dev/zero character special file 1:5 666 0:0\n\
                /dev/full character special file 1:7 666 0:0\n\
                /dev/random character special file 1:8 666 0:0\n\
                /dev/urandom character special file 1:9 666 0:0\n\
                /dev/tty character special file 5:0 666 0:0\n\
                fd=/proc/self/fd\nstdin=/proc/self/fd/0\nstdout=/proc/self/fd/1\nstderr=/proc/self/fd/2\n\
                null-ok\n000000\nfull-ok\nurandom-ok\n";
    assert_eq!(out, want);
}

#[test]
fn spec_devices_are_created() {
    let (mut env, _r) = env_of(&["true"]);
    env.config["linux"]["devices"] = json!([
        {"path": "/dev/mydev", "type": "c", "major": 10, "minor": 229, "fileMode": 0o640, "uid": 1000, "gid": 1001},
        {"path": "/dev/sub/myblk", "type": "b", "major": 7, "minor": 0, "fileMode": 0o600, "uid": 0, "gid": 0},
        {"path": "/dev/myfifo", "type": "p", "fileMode": 0o666},
        // Overrides a default device.
        {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600}
    ]);
    env.write_config();
    let script = "stat -c '%n|%F|%t:%T|%a|%u:%g' /dev/mydev /dev/sub/myblk /dev/myfifo /dev/null";
    let (out, _) = run_script(&mut env, "rf-specdev", script, &[]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "/dev/mydev|character special file|a:e5|640|1000:1001", "{out}");
    assert_eq!(lines[1], "/dev/sub/myblk|block special file|7:0|600|0:0", "{out}");
    assert_eq!(lines[2].split('|').take(2).collect::<Vec<_>>(), ["/dev/myfifo", "fifo"], "{out}");
    assert_eq!(lines[2].split('|').nth(3), Some("666"), "{out}");
    assert_eq!(lines[3], "/dev/null|character special file|1:3|600|0:0", "{out}");
}

/// A FIFO in linux.devices beside a device-cgroup list (what Docker sends): the node is made
/// with its mode and owner and no 'p' rule goes to the device cgroup, which rejects one.
#[test]
fn spec_fifo_with_device_cgroup_rules() {
    let (mut env, _r) = env_of(&["true"]);
    env.config["linux"]["devices"] = json!([
        {"path": "/dev/myfifo", "type": "p", "major": 8, "minor": 666, "fileMode": 0o640, "uid": 1000, "gid": 1001},
        {"path": "/dev/openfifo", "type": "p", "fileMode": 0o666}
    ]);
    env.config["linux"]["resources"] = json!({"devices": [{"allow": false, "access": "rwm"}]});
    env.write_config();
    let script = "test -p /dev/myfifo && echo fifo; stat -c '%a %u:%g' /dev/myfifo; \
                  (echo through > /dev/openfifo &) ; read -r l < /dev/openfifo; echo read=$l";
    let (out, _) = run_script(&mut env, "rf-fifo", script, &[]);
    assert_eq!(out, "fifo\n640 1000:1001\nread=through\n");
}

// ---- masked and read-only paths ----

#[test]
fn masked_paths_hide_files_and_dirs() {
    let (mut env, _r) = env_of(&["true"]);
    std::fs::write(env.rootfs().join("etc/secret"), "s3cret\n").unwrap();
    std::fs::create_dir_all(env.rootfs().join("secretdir")).unwrap();
    std::fs::write(env.rootfs().join("secretdir/inner"), "hidden\n").unwrap();
    let masked = env.config["linux"]["maskedPaths"].as_array_mut().unwrap();
    masked.push(json!("/etc/secret"));
    masked.push(json!("/secretdir"));
    masked.push(json!("/no/such/path"));
    env.write_config();
    let script = "echo secret=$(cat /etc/secret); echo secretdir=$(ls -A /secretdir); \
                  touch /secretdir/x 2>/dev/null && echo WROTE-MASKED-DIR; \
                  echo firmware=$(ls -A /sys/firmware); echo keys=$(cat /proc/keys | wc -c); \
                  echo timer_list=$(cat /proc/timer_list | wc -c); \
                  test -e /proc/kcore && echo kcore=$(head -c 16 /proc/kcore | wc -c) || echo kcore=0";
    let (out, mounts) = run_script(&mut env, "rf-masked", script, &[]);
    assert_eq!(out, "secret=\nsecretdir=\nfirmware=\nkeys=0\ntimer_list=0\nkcore=0\n");
    assert!(at(&mounts, "/secretdir").has("ro"));
    // The image itself is untouched.
    assert_eq!(std::fs::read_to_string(env.rootfs().join("etc/secret")).unwrap(), "s3cret\n");
    assert_eq!(list_dir(&env.rootfs().join("secretdir")), vec!["inner"]);
    // The control: these exist and are not empty on the host.
    if Path::new("/sys/firmware").is_dir() {
        assert!(!list_dir(Path::new("/sys/firmware")).is_empty());
    }
}

#[test]
fn readonly_paths() {
    let (mut env, _r) = env_of(&["true"]);
    std::fs::create_dir_all(env.rootfs().join("rodir")).unwrap();
    env.config["linux"]["readonlyPaths"].as_array_mut().unwrap().push(json!("/rodir"));
    env.write_config();
    let script =
        "echo evil 2>/dev/null > /proc/sys/kernel/hostname && echo WROTE-PROC-SYS || echo proc-sys-ro; \
                  hostname; touch /rodir/x 2>/dev/null && echo WROTE-RODIR || echo rodir-ro; \
                  touch /rootfs-rw && echo root-rw; cat /proc/sys/kernel/ostype";
    let (out, mounts) = run_script(&mut env, "rf-ro", script, &[]);
    assert_eq!(out, "proc-sys-ro\nhull-test\nrodir-ro\nroot-rw\nLinux\n");
    let ps = at(&mounts, "/proc/sys");
    assert!(ps.has("ro"), "{ps:?}");
    // What /proc already had stays (nosuid, nodev, noexec are not dropped by the ro remount).
    let proc_ = at(&mounts, "/proc");
    for o in ["nosuid", "nodev", "noexec"] {
        if proc_.has(o) {
            assert!(ps.has(o), "/proc/sys lost {o}: {ps:?}");
        }
    }
    assert!(at(&mounts, "/rodir").has("ro"));
    assert!(!env.rootfs().join("rodir/x").exists());
}

#[test]
fn readonly_root_with_writable_tmpfs() {
    let (mut env, _r) = env_of(&["true"]);
    env.config["root"]["readonly"] = json!(true);
    add_mount(
        &mut env,
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]}),
    );
    let script = "touch /x 2>/dev/null && echo WROTE-ROOT || echo root-ro; touch /etc/y 2>/dev/null && echo WROTE-ETC || echo etc-ro; \
                  touch /tmp/y && echo tmp-rw; touch /dev/shm/z && echo shm-rw";
    let (out, mounts) = run_script(&mut env, "rf-roroot", script, &[]);
    assert_eq!(out, "root-ro\netc-ro\ntmp-rw\nshm-rw\n");
    assert!(at(&mounts, "/").has("ro"), "{:?}", at(&mounts, "/"));
    assert!(at(&mounts, "/tmp").has("rw"));
    assert!(!env.rootfs().join("x").exists() && !env.rootfs().join("etc/y").exists());
}

// ---- entering the root ----

#[test]
fn no_pivot() {
    let (mut env, _r) = env_of(&["true"]);
    std::fs::write(env.rootfs().join("rootfs-marker"), "inside\n").unwrap();
    let outside = env.dir.join("outside-marker");
    std::fs::write(&outside, "outside\n").unwrap();
    let script = format!(
        "cat /rootfs-marker; cat {} 2>/dev/null || echo no-outside; ls /work >/dev/null 2>&1 || echo no-host; echo $$",
        outside.display()
    );
    let (out, mounts) = run_script(&mut env, "rf-nopivot", &script, &["--no-pivot"]);
    assert_eq!(out, "inside\nno-outside\nno-host\n1\n");
    assert!(mounts.iter().any(|m| m.point == "/proc"), "{mounts:?}");
}

#[test]
fn pivot_root_leaves_no_host_mounts_visible() {
    let (mut env, _r) = env_of(&["true"]);
    let (_, mounts) = run_script(&mut env, "rf-pivot", "true", &[]);
    let rootfs = env.rootfs().display().to_string();
    for m in &mounts {
        assert!(
            !m.point.starts_with("/work") && !m.point.starts_with(&rootfs) && m.point != "/mnt/sandboxing",
            "a host mount is visible in the container: {m:?}"
        );
    }
    let points: Vec<&str> = mounts.iter().map(|m| m.point.as_str()).collect();
    for p in ["/", "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"] {
        assert!(points.contains(&p), "{p} missing: {points:?}");
    }
    // The root is the bundle's rootfs (mountinfo's root is the path inside its filesystem,
    // so a suffix of the absolute path when /tmp is a mount of its own).
    let root = &at(&mounts, "/").root;
    if on_vm() {
        // The guest's share is the rootfs itself.
        assert_eq!((at(&mounts, "/").fstype.as_str(), root.as_str()), ("virtiofs", "/"));
    } else {
        assert!(root != "/" && rootfs.ends_with(root.as_str()), "{:?}", at(&mounts, "/"));
    }
}

/// Runs a container with `rootfsPropagation` = `prop` and checks the tags on its "/".
fn check_propagation(prop: &str, want_shared: bool, want_unbindable: bool) {
    let (mut env, _r) = env_of(&["true"]);
    env.config["linux"]["rootfsPropagation"] = json!(prop);
    // mount(2) inside needs CAP_SYS_ADMIN (a spec without capabilities gets none).
    let caps = json!(["CAP_SYS_ADMIN"]);
    env.config["process"]["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
    env.write_config();
    // A mount the container makes itself must never show up on the host.
    let script = "mkdir -p /mnt/inner && mount -t tmpfs inner-tmpfs /mnt/inner && echo mounted";
    let id = format!("rf-prop-{prop}");
    let (out, mounts) = run_script(&mut env, &id, script, &[]);
    assert_eq!(out, "mounted\n", "{prop}");
    let root = at(&mounts, "/");
    assert_eq!(root.tags.iter().any(|t| t.starts_with("shared:")), want_shared, "{prop}: {root:?}");
    assert_eq!(root.tags.iter().any(|t| t == "unbindable"), want_unbindable, "{prop}: {root:?}");
    assert!(!host_mountinfo().contains("inner-tmpfs"), "{prop}: a container mount reached the host");
}

#[test]
fn rootfs_propagation_private() {
    check_propagation("private", false, false);
    check_propagation("rprivate", false, false);
}

#[test]
fn rootfs_propagation_slave() {
    // The host's mounts here are private, so a slave shows no master: tag; it must work.
    check_propagation("slave", false, false);
    check_propagation("rslave", false, false);
}

#[test]
fn rootfs_propagation_shared() {
    check_propagation("shared", true, false);
    check_propagation("rshared", true, false);
}

#[test]
fn rootfs_propagation_unbindable() {
    check_propagation("unbindable", false, true);
    check_propagation("runbindable", false, true);
}

// ---- symlink escapes ----

/// The image holds symlinks whose targets are host paths (absolute, and climbing with `..`),
/// and the spec mounts on them. With `in_image`, the targets also exist inside the rootfs;
/// without, hull must create them there (as runc's MkdirAll-in-root does).
fn symlink_escape(id: &str, in_image: bool) {
    let (mut env, _r) = env_of(&["true"]);
    let targets: Vec<PathBuf> =
        (1..=4).map(|i| host_dir(&env, &format!("target{i}"), &[("host-marker", "host\n")])).collect();
    let payload = host_dir(&env, "payload", &[("payload-file", "payload\n")]);
    let rootfs = env.rootfs();
    if in_image {
        for t in &targets {
            std::fs::create_dir_all(rootfs.join(t.strip_prefix("/").unwrap())).unwrap();
        }
    }
    // Absolute symlink to the host path.
    std::os::unix::fs::symlink(&targets[0], rootfs.join("evil")).unwrap();
    // Relative symlink that climbs out of the rootfs.
    let climb = format!("../../../../../../../../..{}", targets[1].display());
    std::os::unix::fs::symlink(&climb, rootfs.join("evil2")).unwrap();
    // A bind mount aimed through a symlink.
    std::os::unix::fs::symlink(&targets[2], rootfs.join("evil3")).unwrap();
    // A nested destination under a symlink: mkdir must not happen on the host either.
    std::os::unix::fs::symlink(&targets[3], rootfs.join("evil4")).unwrap();
    add_mount(
        &mut env,
        json!({"destination": "/evil", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}),
    );
    add_mount(
        &mut env,
        json!({"destination": "/evil2", "type": "tmpfs", "source": "tmpfs", "options": ["size=2m"]}),
    );
    add_mount(
        &mut env,
        json!({"destination": "/evil3", "type": "bind", "source": payload.to_str().unwrap(), "options": ["bind"]}),
    );
    add_mount(
        &mut env,
        json!({"destination": "/evil4/sub", "type": "tmpfs", "source": "tmpfs", "options": ["size=3m"]}),
    );
    let script =
        "touch /evil/x /evil2/x /evil4/sub/x && echo touched; ls -A /evil; cat /evil3/payload-file; \
                  ls /evil/host-marker 2>/dev/null && echo SAW-HOST";
    let (out, mounts) = run_script(&mut env, id, script, &[]);

    // The host: no mount on any target, no file written there, nothing created there.
    let host_after = host_mountinfo();
    for t in targets.iter().chain([&payload]) {
        let s = t.display().to_string();
        assert!(!host_after.contains(&s), "the host has a mount on {s}");
    }
    assert_eq!(host_mounts_under(&env.dir), Vec::<String>::new(), "the host has mounts under the test dir");
    for t in &targets {
        assert_eq!(list_dir(t), vec!["host-marker"], "{} changed on the host", t.display());
    }
    assert_eq!(list_dir(&payload), vec!["payload-file"]);

    // The container: each mount is at the symlink's target resolved inside the rootfs.
    assert_eq!(out, "touched\nx\npayload\n", "{out}");
    let inside = |t: &Path| t.display().to_string();
    let m = at(&mounts, &inside(&targets[0]));
    assert!(m.fstype == "tmpfs" && m.has_super("size=1024k"), "{m:?}");
    let m = at(&mounts, &inside(&targets[1]));
    assert!(m.fstype == "tmpfs" && m.has_super("size=2048k"), "{m:?}");
    at(&mounts, &inside(&targets[2]));
    let m = at(&mounts, &format!("{}/sub", inside(&targets[3])));
    assert!(m.fstype == "tmpfs" && m.has_super("size=3072k"), "{m:?}");
    // The files went to the tmpfs, not the image's directories.
    for t in &targets[..2] {
        let in_rootfs = rootfs.join(t.strip_prefix("/").unwrap());
        assert!(in_rootfs.is_dir(), "{} was not made inside the rootfs", in_rootfs.display());
        assert!(!in_rootfs.join("x").exists());
    }
    assert!(rootfs.join(targets[3].strip_prefix("/").unwrap()).join("sub").is_dir());
}

#[test]
fn symlink_in_image_cannot_send_a_mount_to_the_host() {
    symlink_escape("rf-symlink", true);
}

#[test]
fn symlink_to_a_missing_target_is_created_inside_the_rootfs() {
    symlink_escape("rf-symlink-missing", false);
}

#[test]
fn symlink_to_host_proc_cannot_redirect_proc() {
    // An image whose /proc is a symlink to somewhere else must get procfs at the resolved
    // path inside the rootfs (and hull must not write to a non-procfs "proc").
    let (mut env, _r) = env_of(&["true"]);
    let rootfs = env.rootfs();
    std::fs::remove_dir(rootfs.join("proc")).unwrap();
    std::fs::create_dir_all(rootfs.join("realproc")).unwrap();
    std::os::unix::fs::symlink("/realproc", rootfs.join("proc")).unwrap();
    // runc refuses procfs on anything but a plain directory; following the symlink inside
    // the rootfs is safe too. Either is fine; mounting outside the rootfs is not.
    env.config["process"]["args"] =
        json!(["sh", "-c", "echo $$; awk '$5 == \"/realproc\" {print $9}' /realproc/self/mountinfo"]);
    env.write_config();
    let id = "rf-symproc";
    let o = h(&env, &["run", "--bundle", env.bundle.to_str().unwrap(), id]);
    if o.status.success() {
        assert_eq!(stdout(&o), "1\nproc\n", "procfs is not at the symlink's target inside the rootfs");
    } else {
        let e = stderr(&o);
        assert!(e.contains(&format!("create {id}")) && e.contains("/proc"), "{e}");
        assert!(env.root_is_empty());
        assert_eq!(stray_hull_processes(&env), vec![]);
    }
    assert_eq!(host_mounts_under(&env.dir), Vec::<String>::new());
    assert!(list_dir(&rootfs.join("realproc")).is_empty(), "something was written into the image's realproc");
}

// ---- failures leave nothing behind ----

/// Creates with the given extra mount and checks it fails cleanly, naming `needles`.
#[track_caller]
fn create_fails_cleanly(env: &mut Env, id: &str, mount: Value, needles: &[&str]) {
    add_mount(env, mount);
    let o = env.create(id);
    assert!(!o.status.success(), "create {id} should fail: {}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains(&format!("create {id}:")), "{e}");
    for n in needles {
        assert!(e.contains(n), "the message should name {n:?}: {e}");
    }
    assert_eq!(e.trim().lines().count(), 1, "one clear message, not several: {e}");
    assert!(env.root_is_empty(), "state dir left after a failed create");
    assert_eq!(stray_hull_processes(env), vec![], "processes left after a failed create");
    assert_eq!(cgroup_dirs_named(id), Vec::<PathBuf>::new(), "cgroups left after a failed create");
    assert_eq!(host_mounts_under(&env.dir), Vec::<String>::new(), "mounts left on the host");
    assert_eq!(env.container_stdout(id), "");
    // The id is free again.
    let o = h(env, &["state", id]);
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
}

#[test]
fn failing_bind_mount_leaves_nothing() {
    let (mut env, _r) = env_of(&["touch", "/ran"]);
    create_fails_cleanly(
        &mut env,
        "rf-fail-bind",
        json!({"destination": "/data", "type": "bind", "source": "/no/such/source", "options": ["bind"]}),
        &["/data", "/no/such/source"],
    );
    assert!(!env.rootfs().join("ran").exists());
}

#[test]
fn unknown_filesystem_type_leaves_nothing() {
    let (mut env, _r) = env_of(&["touch", "/ran"]);
    create_fails_cleanly(
        &mut env,
        "rf-fail-fs",
        json!({"destination": "/weird", "type": "nosuchfs", "source": "none"}),
        &["/weird", "nosuchfs"],
    );
    assert!(!env.rootfs().join("ran").exists());
}

#[test]
fn mount_over_a_file_with_a_directory_fs_leaves_nothing() {
    let (mut env, _r) = env_of(&["touch", "/ran"]);
    create_fails_cleanly(
        &mut env,
        "rf-fail-notdir",
        json!({"destination": "/etc/passwd/sub", "type": "tmpfs", "source": "tmpfs"}),
        &["/etc/passwd/sub"],
    );
    assert!(env.rootfs().join("etc/passwd").is_file());
}

#[test]
fn failing_mount_after_good_ones_leaves_nothing() {
    // Earlier mounts (a bind of a host dir included) succeeded before the failure.
    let (mut env, _r) = env_of(&["touch", "/ran"]);
    let src = host_dir(&env, "good-src", &[("f", "x")]);
    add_mount(
        &mut env,
        json!({"destination": "/good", "type": "bind", "source": src.to_str().unwrap(), "options": ["rbind"]}),
    );
    create_fails_cleanly(
        &mut env,
        "rf-fail-late",
        json!({"destination": "/bad", "type": "bind", "source": "/no/such/late/source", "options": ["bind"]}),
        &["/bad", "/no/such/late/source"],
    );
    assert_eq!(list_dir(&src), vec!["f"]);
}

/// Mappings on a mount without `idmap` or `ridmap` are refused, naming the mount (runc would
/// take them as idmap; the spec asks for the option).
#[test]
fn mount_mappings_without_idmap_leave_nothing() {
    let (mut env, _r) = env_of(&["touch", "/ran"]);
    let src = host_dir(&env, "maps-src", &[("f", "x")]);
    let maps = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    create_fails_cleanly(
        &mut env,
        "rf-fail-maps",
        json!({"destination": "/mapped", "type": "bind", "source": src.to_str().unwrap(), "options": ["rbind"],
               "uidMappings": maps, "gidMappings": maps}),
        &["mounts[6].uidMappings", "/mapped", "neither idmap nor ridmap"],
    );
    assert!(!env.rootfs().join("ran").exists());
}

/// idmap on a filesystem the kernel cannot idmap (procfs): the kernel's EINVAL, with the
/// mount and the likely reason named, and nothing left (the user namespace made for the
/// mappings included: its holder process is a fork of `hull create`).
#[test]
fn idmap_on_a_filesystem_without_support_leaves_nothing() {
    let (mut env, _r) = env_of(&["touch", "/ran"]);
    let maps = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    let mount = json!({"destination": "/psys", "type": "bind", "source": "/proc/sys", "options": ["rbind", "idmap"],
                       "uidMappings": maps, "gidMappings": maps});
    let needles: &[&str] = if on_vm() {
        &["/psys", "not supported by the vm backend"]
    } else {
        &["mounts[6]", "/psys", "/proc/sys", "may not support idmapped mounts"]
    };
    create_fails_cleanly(&mut env, "rf-fail-idmap-fs", mount, needles);
    assert!(!env.rootfs().join("ran").exists());
}
