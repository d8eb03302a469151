//! cgroups through the real binary: every resource checked in the host's control file of
//! the container's cgroup (found from /proc/<init>/cgroup, not from what hull says), the
//! container's own view, limits that really hold (a fork bomb, a denied device), placement
//! (absolute, relative, systemd form), pause/resume, update, events, ps, kill --all and what
//! delete leaves.
//!
//! Written for both layouts: the v1/hybrid hosts these machines are, and a pure cgroup v2
//! host (detected by /sys/fs/cgroup/cgroup.controllers), where the v2 file names are read.
//! A resource whose controller or file the host lacks is skipped with a note on stderr.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

// ---- helpers: commands ----

static PROBE: AtomicUsize = AtomicUsize::new(0);

/// A container id no other test (nor another test binary running beside this one) uses:
/// relative and default cgroup paths share /hull.
fn uid(name: &str) -> String {
    format!("cg{}-{name}", std::process::id())
}

fn h(env: &Env, args: &[&str]) -> Output {
    run_bounded(&env.dir, env.cmd(args), None, 30)
}

fn h_stdin(env: &Env, args: &[&str], input: &str) -> Output {
    run_bounded(&env.dir, env.cmd(args), Some(input), 30)
}

/// `hull [global] create` with the container's stdio in `<id>.out` / `<id>.err`, like
/// [`Env::create`], with global flags before the command.
fn create_global(env: &Env, id: &str, global: &[&str]) -> Output {
    let (o, e) = (env.dir.join(format!("{id}.out")), env.dir.join(format!("{id}.err")));
    let mut args: Vec<&str> = global.to_vec();
    args.extend(["create", "--bundle", env.bundle.to_str().unwrap(), id]);
    let status = env
        .cmd(&args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&o).unwrap())
        .stderr(std::fs::File::create(&e).unwrap())
        .status()
        .expect("run hull create");
    Output {
        status,
        stdout: std::fs::read(o).unwrap_or_default(),
        stderr: std::fs::read(e).unwrap_or_default(),
    }
}

fn set_resources(env: &mut Env, r: Value) {
    env.config["linux"]["resources"] = r;
    env.write_config();
}

/// Creates the container and returns its init's pid.
#[track_caller]
fn create(env: &Env, id: &str) -> i32 {
    ok(&env.create(id), "create");
    pid_of(env, id)
}

fn pid_of(env: &Env, id: &str) -> i32 {
    env.state(id)["pid"].as_i64().unwrap_or(0) as i32
}

#[track_caller]
fn start(env: &Env, id: &str) {
    ok(&h(env, &["start", id]), "start");
}

/// Starts a created container and waits for it to end; returns what it printed.
#[track_caller]
fn start_and_wait(env: &Env, id: &str) -> String {
    start(env, id);
    env.wait_status(id, "stopped");
    env.container_stdout(id)
}

/// A process that exists and has not exited (zombies count as gone).
fn alive(pid: i32) -> bool {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    let state = text.rfind(')').and_then(|i| text[i + 1..].split_whitespace().next().map(String::from));
    !matches!(state.as_deref(), None | Some("Z") | Some("X"))
}

// ---- helpers: the host's cgroups ----

/// A pure cgroup v2 host.
fn v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// v1 hierarchies: (controllers, including "name=..." ones; mount point).
fn v1_mounts() -> Vec<(Vec<String>, PathBuf)> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut out: Vec<(Vec<String>, PathBuf)> = Vec::new();
    for l in text.lines() {
        let Some((left, right)) = l.split_once(" - ") else { continue };
        let r: Vec<&str> = right.split(' ').collect();
        if r.first() != Some(&"cgroup") {
            continue;
        }
        let ctrls = r.get(2).unwrap_or(&"").split(',').map(String::from).collect();
        let mp = PathBuf::from(left.split(' ').nth(4).unwrap());
        if !out.iter().any(|(_, p)| *p == mp) {
            out.push((ctrls, mp));
        }
    }
    out
}

/// The v1 mount point of `ctrl`.
fn v1_mount(ctrl: &str) -> Option<PathBuf> {
    v1_mounts().into_iter().find(|(c, _)| c.iter().any(|x| x == ctrl)).map(|(_, p)| p)
}

/// True when the host has the controller (v2: enabled at the root; v1: mounted).
fn has_controller(ctrl: &str) -> bool {
    if v2() {
        std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
            .unwrap_or_default()
            .split_whitespace()
            .any(|c| c == ctrl)
    } else {
        v1_mount(ctrl).is_some()
    }
}

/// The host directory of `pid`'s cgroup holding `ctrl` (on v2 the one directory), from
/// /proc/<pid>/cgroup.
fn host_dir(pid: i32, ctrl: &str) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    for l in text.lines() {
        let mut p = l.splitn(3, ':');
        let (_, ctrls, path) = (p.next()?, p.next()?, p.next()?);
        let rel = path.trim_start_matches('/');
        if v2() {
            if ctrls.is_empty() {
                return Some(Path::new("/sys/fs/cgroup").join(rel));
            }
        } else if ctrls.split(',').any(|c| c == ctrl) {
            return Some(v1_mount(ctrl)?.join(rel));
        }
    }
    None
}

/// `pid`'s cgroup path as /proc/<pid>/cgroup shows it for `ctrl` (or the v2 line).
fn cgroup_path(pid: i32, ctrl: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    for l in text.lines() {
        let mut p = l.splitn(3, ':');
        let (_, ctrls, path) = (p.next().unwrap_or(""), p.next().unwrap_or(""), p.next().unwrap_or(""));
        if (v2() && ctrls.is_empty()) || (!v2() && ctrls.split(',').any(|c| c == ctrl)) {
            return path.to_string();
        }
    }
    panic!("no {ctrl} line in /proc/{pid}/cgroup: {text}")
}

/// Every directory a cgroup path has on this host (one per v1 hierarchy, or one).
fn all_dirs(path: &str) -> Vec<PathBuf> {
    let rel = path.trim_start_matches('/');
    if v2() {
        vec![Path::new("/sys/fs/cgroup").join(rel)]
    } else {
        v1_mounts().into_iter().map(|(_, mp)| mp.join(rel)).collect()
    }
}

#[track_caller]
fn assert_no_dirs(path: &str) {
    let left: Vec<PathBuf> = all_dirs(path).into_iter().filter(|d| d.exists()).collect();
    assert!(left.is_empty(), "cgroup {path} left behind: {left:?}");
}

/// A control file of the container's cgroup, trimmed; panics when it cannot be read.
#[track_caller]
fn read_cg(pid: i32, ctrl: &str, file: &str) -> String {
    let d = host_dir(pid, ctrl).unwrap_or_else(|| panic!("no {ctrl} cgroup for pid {pid}"));
    std::fs::read_to_string(d.join(file))
        .unwrap_or_else(|e| panic!("read {}: {e}", d.join(file).display()))
        .trim()
        .to_string()
}

fn cg_has(pid: i32, ctrl: &str, file: &str) -> bool {
    host_dir(pid, ctrl).is_some_and(|d| d.join(file).exists())
}

/// Makes the container's cgroups visible at /sys/fs/cgroup inside it. On v2 the cgroup2
/// mount needs a cgroup namespace to start at the container's cgroup; on v1 hull binds each
/// hierarchy's own directory (see `v1_view_with_cgroup_namespace` for the namespace case).
fn add_cgroup_mount(env: &mut Env) {
    env.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
        "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]
    }));
    if v2() {
        env.config["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "cgroup"}));
    }
    env.write_config();
}

/// Where a control file appears inside the container with [`add_cgroup_mount`].
fn view_path(ctrl: &str, file: &str) -> String {
    if v2() {
        return format!("/sys/fs/cgroup/{file}");
    }
    let mp = v1_mount(ctrl).unwrap();
    format!("/sys/fs/cgroup/{}/{file}", mp.file_name().unwrap().to_string_lossy())
}

fn skip(what: &str) {
    eprintln!("[skipped] {what}");
}

/// The control files of the container's `ctrl` directory, from a probe container: which
/// files a v1 controller or a v2 directory has depends on the kernel and its IO scheduler.
fn probe_files(ctrl: &str) -> Vec<String> {
    let env = Env::new(&["sleep", "1000"]);
    let id = uid(&format!("probe-{ctrl}-{}", PROBE.fetch_add(1, Ordering::SeqCst)));
    if !env.create(&id).status.success() {
        return vec![];
    }
    let pid = pid_of(&env, &id);
    let files = host_dir(pid, ctrl)
        .and_then(|d| std::fs::read_dir(d).ok())
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect())
        .unwrap_or_default();
    let _ = h(&env, &["delete", "--force", &id]);
    files
}

fn state_json(env: &Env, id: &str) -> Value {
    serde_json::from_slice(&std::fs::read(env.root.join(id).join("state.json")).unwrap()).unwrap()
}

// ---- resources, on the host and in the container ----

/// A memory limit of `mib` MiB, four times that on the vm backend: a VM container's guest
/// RAM is its limit less the VMM's overhead, and `create` refuses a limit under 96 MiB.
fn mem_limit(mib: i64) -> i64 {
    let scale = if on_vm() { 4 } else { 1 };
    (mib * scale) << 20
}

#[test]
fn memory_limits_host_files_and_container_view() {
    let mut env = Env::new(&[]);
    let id = uid("mem");
    let limit = mem_limit(64);
    let view =
        if v2() { view_path("memory", "memory.max") } else { view_path("memory", "memory.limit_in_bytes") };
    set_args(&mut env, &["sh", "-c", &format!("cat {view}; cat /proc/self/cgroup")]);
    add_cgroup_mount(&mut env);
    let swap_file = if v2() { "memory.swap.max" } else { "memory.memsw.limit_in_bytes" };
    let has_swap = probe_files("memory").iter().any(|f| f == swap_file);
    let (reservation, swap) = (limit / 2, limit * 3 / 2);
    let mut mem = json!({"limit": limit, "reservation": reservation});
    if has_swap {
        mem["swap"] = json!(swap);
    } else {
        skip("memory.swap: no swap accounting on this host");
    }
    if !v2() {
        mem["swappiness"] = json!(30);
    }
    set_resources(&mut env, json!({"memory": mem}));
    let pid = create(&env, &id);
    if v2() {
        assert_eq!(read_cg(pid, "memory", "memory.max"), limit.to_string());
        assert_eq!(read_cg(pid, "memory", "memory.low"), reservation.to_string());
        if has_swap {
            // The spec's swap is memory+swap; v2's swap.max is swap alone.
            assert_eq!(read_cg(pid, "memory", "memory.swap.max"), (swap - limit).to_string());
        }
    } else {
        assert_eq!(read_cg(pid, "memory", "memory.limit_in_bytes"), limit.to_string());
        assert_eq!(read_cg(pid, "memory", "memory.soft_limit_in_bytes"), reservation.to_string());
        assert_eq!(read_cg(pid, "memory", "memory.swappiness"), "30");
        if has_swap {
            assert_eq!(read_cg(pid, "memory", "memory.memsw.limit_in_bytes"), swap.to_string());
        }
    }
    let path = cgroup_path(pid, "memory");
    assert_eq!(path, format!("/hull/{id}"), "the default cgroup path");
    let out = start_and_wait(&env, &id);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some(limit.to_string().as_str()), "the container's view of its limit: {out}");
    let own: Vec<&str> = lines.collect();
    if v2() {
        // Its cgroup namespace starts at its cgroup.
        assert!(own.contains(&"0::/"), "{out}");
    } else {
        assert!(own.iter().any(|l| l.ends_with(&format!(":memory:/hull/{id}"))), "{out}");
    }
    ok(&h(&env, &["delete", &id]), "delete");
    assert_no_dirs(&path);
}

#[test]
fn cpu_and_cpuset_settings() {
    let mut env = Env::new(&["sh", "-c", "nproc"]);
    let id = uid("cpu");
    let files = probe_files("cpu");
    let burst_file = if v2() { "cpu.max.burst" } else { "cpu.cfs_burst_us" };
    let has_burst = files.iter().any(|f| f == burst_file);
    let has_cpuset = if v2() {
        probe_files("cpuset").iter().any(|f| f == "cpuset.cpus")
    } else {
        has_controller("cpuset")
    };
    let mut cpu = json!({"shares": 512, "quota": 50000, "period": 100000});
    if has_burst {
        cpu["burst"] = json!(20000);
    } else {
        skip("cpu.burst: the kernel has no burst file");
    }
    if has_cpuset {
        cpu["cpus"] = json!("0");
        cpu["mems"] = json!("0");
    } else {
        skip("cpu.cpus/mems: no cpuset controller");
    }
    set_resources(&mut env, json!({"cpu": cpu}));
    let pid = create(&env, &id);
    if v2() {
        // runc's shares -> weight: 1 + ((512 - 2) * 9999) / 262142.
        assert_eq!(read_cg(pid, "cpu", "cpu.weight"), "20");
        assert_eq!(read_cg(pid, "cpu", "cpu.max"), "50000 100000");
        if has_burst {
            assert_eq!(read_cg(pid, "cpu", "cpu.max.burst"), "20000");
        }
    } else {
        assert_eq!(read_cg(pid, "cpu", "cpu.shares"), "512");
        assert_eq!(read_cg(pid, "cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(read_cg(pid, "cpu", "cpu.cfs_period_us"), "100000");
        if has_burst {
            assert_eq!(read_cg(pid, "cpu", "cpu.cfs_burst_us"), "20000");
        }
    }
    if has_cpuset {
        assert_eq!(read_cg(pid, "cpuset", "cpuset.cpus"), "0");
        assert_eq!(read_cg(pid, "cpuset", "cpuset.mems"), "0");
    }
    let out = start_and_wait(&env, &id);
    if has_cpuset {
        assert_eq!(out.trim(), "1", "nproc in a container pinned to cpu 0");
    }
    ok(&h(&env, &["delete", &id]), "delete");
}

#[test]
fn pids_limit_holds_against_a_fork_bomb() {
    let mut env = Env::new(&[]);
    let id = uid("pids");
    set_args(&mut env, &["sh", "-c", "exec 2>&1; for i in $(seq 20); do sleep 5 & done; echo loop-done"]);
    set_resources(&mut env, json!({"pids": {"limit": 10}}));
    let pid = create(&env, &id);
    assert_eq!(read_cg(pid, "pids", "pids.max"), "10");
    let out = start_and_wait(&env, &id);
    assert!(
        out.contains("can't fork") || out.contains("Resource temporarily unavailable"),
        "20 background processes under pids.limit 10 should fail to fork: {out}"
    );
    ok(&h(&env, &["delete", &id]), "delete");
}

#[test]
fn block_io_weight() {
    let files = probe_files("blkio");
    let file = if v2() {
        ["io.weight", "io.bfq.weight"].into_iter().find(|f| files.iter().any(|x| x == f))
    } else {
        ["blkio.weight", "blkio.bfq.weight"].into_iter().find(|f| files.iter().any(|x| x == f))
    };
    let Some(file) = file else {
        return skip("blockIO.weight: the host's block controller has no weight file");
    };
    let mut env = Env::new(&["true"]);
    let id = uid("blkio");
    set_resources(&mut env, json!({"blockIO": {"weight": 500}}));
    let pid = create(&env, &id);
    let v = read_cg(pid, "blkio", file);
    let want = match file {
        // blkio weight [10, 1000] -> io.weight [1, 10000].
        "io.weight" => "default 4950",
        "io.bfq.weight" => "default 500",
        _ => "500",
    };
    assert!(v.lines().any(|l| l.trim() == want), "{file}: {v:?}, want {want:?}");
    ok(&h(&env, &["delete", "--force", &id]), "delete");
}

/// Docker sends blockIO weight 0 and leafWeight 0 for every container: 0 means "not set"
/// (as in runc), so the container runs and its weight stays the kernel's default, the value
/// a container with no blockIO gets.
#[test]
fn block_io_weight_zero_is_unset() {
    if !has_controller(if v2() { "io" } else { "blkio" }) {
        return skip("blockIO.weight 0: no block IO controller");
    }
    let files = probe_files("blkio");
    let weight_files = ["blkio.weight", "blkio.bfq.weight", "io.weight", "io.bfq.weight"];
    let file = weight_files.into_iter().find(|f| files.iter().any(|x| x == f));
    let mut env = Env::new(&["echo", "ran"]);
    let id = uid("blkio0");
    set_resources(
        &mut env,
        json!({"blockIO": {"weight": 0, "leafWeight": 0,
            "weightDevice": [{"major": 8, "minor": 0, "weight": 0, "leafWeight": 0}]}}),
    );
    let pid = create(&env, &id);
    let got = file.map(|f| read_cg(pid, "blkio", f));
    assert_eq!(start_and_wait(&env, &id).trim(), "ran");
    ok(&h(&env, &["delete", &id]), "delete");
    let Some(file) = file else {
        return skip("blockIO.weight 0: ran; the host's block controller has no weight file to compare");
    };
    // The default, from a container that asks for nothing.
    let plain = Env::new(&["sleep", "1000"]);
    let pid = create(&plain, &uid("blkio0-plain"));
    let want = read_cg(pid, "blkio", file);
    ok(&h(&plain, &["delete", "--force", &uid("blkio0-plain")]), "delete");
    assert_eq!(got.as_deref(), Some(want.as_str()), "{file} with weight 0");
}

/// "2MB" for hugepages-2048kB.
fn page_size_name(kb: u64) -> String {
    if kb.is_multiple_of(1 << 20) {
        format!("{}GB", kb >> 20)
    } else if kb.is_multiple_of(1024) {
        format!("{}MB", kb >> 10)
    } else {
        format!("{kb}KB")
    }
}

#[test]
fn hugepage_limits() {
    let sizes: Vec<u64> = std::fs::read_dir("/sys/kernel/mm/hugepages")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().to_string();
            n.strip_prefix("hugepages-")?.strip_suffix("kB")?.parse().ok()
        })
        .collect();
    let Some(kb) = sizes.iter().copied().min() else {
        return skip("hugepageLimits: the kernel has no huge pages");
    };
    let size = page_size_name(kb);
    let limit = (kb * 1024 * 4) as i64;
    let mut env = Env::new(&["true"]);
    let id = uid("huge");
    set_resources(&mut env, json!({"hugepageLimits": [{"pageSize": size, "limit": limit}]}));
    if !has_controller("hugetlb") {
        // What the host cannot apply fails create, naming the controller, and leaves nothing.
        let out = env.create(&id);
        fails(&out, "create with hugepageLimits and no hugetlb controller");
        assert!(stderr(&out).contains("hugetlb"), "{}", stderr(&out));
        assert!(env.root_is_empty());
        assert_no_dirs(&format!("/hull/{id}"));
        return skip("hugepageLimits: no hugetlb controller (checked that create fails cleanly)");
    }
    let pid = create(&env, &id);
    let file = if v2() { format!("hugetlb.{size}.max") } else { format!("hugetlb.{size}.limit_in_bytes") };
    assert_eq!(read_cg(pid, "hugetlb", &file), limit.to_string());
    ok(&h(&env, &["delete", "--force", &id]), "delete");
}

#[test]
fn network_class_id() {
    let mut env = Env::new(&["true"]);
    let id = uid("netcls");
    set_resources(&mut env, json!({"network": {"classID": 1048577}}));
    if v2() || !has_controller("net_cls") {
        let out = env.create(&id);
        fails(&out, "create with network.classID where there is no net_cls");
        let err = stderr(&out);
        assert!(err.contains("net_cls") || err.contains("network.classID"), "{err}");
        assert!(env.root_is_empty());
        assert_no_dirs(&format!("/hull/{id}"));
        return skip("network.classID: no v1 net_cls controller (checked that create fails cleanly)");
    }
    let pid = create(&env, &id);
    assert_eq!(read_cg(pid, "net_cls", "net_cls.classid"), "1048577");
    ok(&h(&env, &["delete", "--force", &id]), "delete");
}

#[test]
fn device_allow_list_denies_the_rest() {
    // hull, like runc, appends allow rules for the devices every container gets (null, zero,
    // full, random, urandom, tty, console, ptmx, pts) and for those linux.devices lists, so
    // a denied device must come from elsewhere: nodes made in the rootfs, outside /dev.
    // b 7:0 (/dev/loop0) is denied (the rules allow only mknod of block devices); c 1:3
    // (/dev/null's numbers) is allowed.
    let mut env = Env::new(&[]);
    let id = uid("dev");
    let nodes = env.rootfs().join("devtest");
    std::fs::create_dir_all(&nodes).unwrap();
    for (name, typ, ma, mi) in [("denied", "b", "7", "0"), ("null2", "c", "1", "3")] {
        let o = Command::new("mknod").arg(nodes.join(name)).args([typ, ma, mi]).output().unwrap();
        ok(&o, "mknod");
    }
    set_args(
        &mut env,
        &[
            "sh",
            "-c",
            "exec 2>&1; echo x > /devtest/null2 && echo null-ok; \
             head -c1 /devtest/denied > /dev/null && echo denied-opened || echo denied-refused",
        ],
    );
    set_resources(
        &mut env,
        json!({"devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "access": "m"},
            {"allow": true, "type": "b", "access": "m"},
        ]}),
    );
    let pid = create(&env, &id);
    if !v2() {
        let list = read_cg(pid, "devices", "devices.list");
        assert!(list.lines().any(|l| l == "c 1:3 rwm"), "{list}");
        assert!(!list.lines().any(|l| l.starts_with("b 7:0 ") || l.starts_with("a ")), "{list}");
    }
    let out = start_and_wait(&env, &id);
    assert!(out.contains("null-ok"), "{out}");
    assert!(out.contains("denied-refused") && out.contains("Operation not permitted"), "{out}");
    ok(&h(&env, &["delete", &id]), "delete");

    // Without device rules the same node opens (the tun driver then refuses the read, or the
    // node has no driver: either way not EPERM): the refusal above was the cgroup's.
    let id = uid("dev2");
    set_resources(&mut env, json!({}));
    create(&env, &id);
    let out = start_and_wait(&env, &id);
    assert!(!out.contains("Operation not permitted"), "{out}");
    ok(&h(&env, &["delete", &id]), "delete");
}

#[test]
fn docker_device_rules_allow_mknod_and_tun_as_runc_does() {
    if native_only("the guest's cgroup repeats memory, cpu and pids only (guest_spec.rs)") {
        return;
    }
    // The device rules dockerd 20.10 writes in every container's spec: deny all, a few
    // standard devices, deny /dev/fuse. runc adds mknod of any node and /dev/net/tun to
    // them, and Docker users count on it (mknod of a block device in an image build, a VPN
    // client making /dev/net/tun): issue 18. Making a node is not opening it: reading the
    // block device made here stays refused.
    let mut env = Env::new(&[]);
    let id = uid("dockerdev");
    set_args(
        &mut env,
        &[
            "sh",
            "-c",
            "exec 2>&1; mkdir /devtest; mknod /devtest/loop b 7 0 && echo mknod-b-ok; \
             mknod /devtest/tty c 4 64 && echo mknod-c-ok; \
             head -c1 /devtest/loop > /dev/null && echo loop-opened || echo loop-refused; \
             mknod /devtest/tun c 10 200 && echo mknod-tun-ok; head -c1 /devtest/tun; echo tun-read-done",
        ],
    );
    let caps = json!(["CAP_MKNOD", "CAP_KILL"]);
    env.config["process"]["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
    set_resources(
        &mut env,
        json!({"devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
            {"allow": true, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
            {"allow": true, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
            {"allow": false, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
        ], "memory": {"disableOOMKiller": false}, "cpu": {"shares": 0}, "blockIO": {"weight": 0}}),
    );
    let pid = create(&env, &id);
    if !v2() {
        let list = read_cg(pid, "devices", "devices.list");
        for want in ["c *:* m", "b *:* m", "c 10:200 rwm", "c 136:* rwm"] {
            assert!(list.lines().any(|l| l == want), "no {want:?} in devices.list: {list}");
        }
        assert!(!list.lines().any(|l| l.starts_with("a ") || l.starts_with("c 10:229 ")), "{list}");
    }
    let out = start_and_wait(&env, &id);
    for want in ["mknod-b-ok", "mknod-c-ok", "loop-refused", "mknod-tun-ok", "tun-read-done"] {
        assert!(out.contains(want), "no {want} in: {out}");
    }
    // The loop device's read is the only refusal: the tun device opens (its read then fails
    // with EBADFD, no interface attached, or ENODEV without the tun driver).
    assert_eq!(out.matches("Operation not permitted").count(), 1, "{out}");
    ok(&h(&env, &["delete", &id]), "delete");
    assert!(env.root_is_empty(), "state left after delete");
}

#[test]
fn unappliable_value_fails_create_and_leaves_nothing() {
    let mut env = Env::new(&["true"]);
    let id = uid("bad");
    set_resources(&mut env, json!({"cpu": {"cpus": "999"}}));
    let out = env.create(&id);
    fails(&out, "create with cpu.cpus 999");
    assert!(stderr(&out).contains("cpu.cpus"), "the error names the key: {}", stderr(&out));
    assert!(env.root_is_empty(), "state left after a failed create");
    assert_no_dirs(&format!("/hull/{id}"));
}

// ---- placement ----

#[test]
fn cgroups_path_absolute_relative_and_systemd() {
    let mut env = Env::new(&["sleep", "1000"]);
    let me = std::process::id();

    // Absolute: exactly there; the parent hull made goes with the container.
    let id = uid("abs");
    let parent = format!("/hulltest-{me}-abs");
    env.config["linux"]["cgroupsPath"] = json!(format!("{parent}/{id}"));
    env.write_config();
    let pid = create(&env, &id);
    assert_eq!(cgroup_path(pid, "memory"), format!("{parent}/{id}"));
    assert_eq!(cgroup_path(pid, "pids"), format!("{parent}/{id}"));
    ok(&h(&env, &["delete", "--force", &id]), "delete");
    assert_no_dirs(&format!("{parent}/{id}"));
    assert_no_dirs(&parent);

    // Relative: under hull's /hull; /hull itself is shared with other tests.
    let id = uid("rel");
    let sub = format!("hulltest-{me}-rel");
    env.config["linux"]["cgroupsPath"] = json!(format!("{sub}/{id}"));
    env.write_config();
    let pid = create(&env, &id);
    assert_eq!(cgroup_path(pid, "memory"), format!("/hull/{sub}/{id}"));
    ok(&h(&env, &["delete", "--force", &id]), "delete");
    assert_no_dirs(&format!("/hull/{sub}/{id}"));
    assert_no_dirs(&format!("/hull/{sub}"));

    // systemd's slice:prefix:name. Without systemd as PID 1 (these machines) hull maps it to
    // the cgroupfs path systemd would use; with systemd the scope has the same path.
    let systemd_pid1 = std::fs::read_to_string("/proc/1/comm").unwrap_or_default().trim() == "systemd";
    eprintln!("PID 1 is systemd: {systemd_pid1}");
    let id = uid("sd");
    env.config["linux"]["cgroupsPath"] = json!(format!("system.slice:hulltest:{id}"));
    env.write_config();
    ok(&create_global(&env, &id, &["--systemd-cgroup"]), "create --systemd-cgroup");
    let pid = pid_of(&env, &id);
    let want = format!("/system.slice/hulltest-{id}.scope");
    assert_eq!(cgroup_path(pid, "memory"), want);
    ok(&h(&env, &["delete", "--force", &id]), "delete");
    assert_no_dirs(&want);

    // A nested slice expands by its dashes; no cgroupsPath gives system.slice/hull-<id>.
    let id = uid("sd2");
    env.config["linux"]["cgroupsPath"] = json!(format!("hulltest{me}-a.slice:p:{id}"));
    env.write_config();
    ok(&create_global(&env, &id, &["--systemd-cgroup"]), "create --systemd-cgroup (nested slice)");
    let want = format!("/hulltest{me}.slice/hulltest{me}-a.slice/p-{id}.scope");
    assert_eq!(cgroup_path(pid_of(&env, &id), "pids"), want);
    ok(&h(&env, &["delete", "--force", &id]), "delete");
    assert_no_dirs(&format!("/hulltest{me}.slice"));

    let id = uid("sd3");
    env.config["linux"].as_object_mut().unwrap().remove("cgroupsPath");
    env.write_config();
    ok(&create_global(&env, &id, &["--systemd-cgroup"]), "create --systemd-cgroup (default path)");
    assert_eq!(cgroup_path(pid_of(&env, &id), "memory"), format!("/system.slice/hull-{id}.scope"));
    ok(&h(&env, &["delete", "--force", &id]), "delete");
    assert_no_dirs(&format!("/system.slice/hull-{id}.scope"));
}

// ---- pause / resume ----

fn counter(env: &Env) -> Option<u64> {
    std::fs::read_to_string(env.rootfs().join("tmp/counter")).ok()?.trim().parse().ok()
}

#[test]
fn pause_and_resume() {
    let env =
        Env::new(&["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /tmp/counter; sleep 0.02; done"]);
    let id = uid("pause");
    let pid = create(&env, &id);

    // Only a running (or created: tests/lifecycle.rs) container pauses, only a paused one
    // resumes.
    start(&env, &id);
    wait_until("the counter runs", || counter(&env).is_some_and(|c| c > 2));
    let o = h(&env, &["resume", &id]);
    fails(&o, "resume of a running container");
    assert!(stderr(&o).contains("container not paused"), "{}", stderr(&o));

    ok(&h(&env, &["pause", &id]), "pause");
    assert_eq!(env.status(&id), "paused");
    if v2() {
        assert!(read_cg(pid, "freezer", "cgroup.events").lines().any(|l| l == "frozen 1"));
    } else {
        assert_eq!(read_cg(pid, "freezer", "freezer.state"), "FROZEN");
    }
    let frozen_at = std::fs::read_to_string(env.rootfs().join("tmp/counter")).unwrap_or_default();
    std::thread::sleep(Duration::from_millis(300));
    let later = std::fs::read_to_string(env.rootfs().join("tmp/counter")).unwrap_or_default();
    assert_eq!(frozen_at, later, "the counter moved while paused");
    let o = h(&env, &["pause", &id]);
    fails(&o, "pause of a paused container");
    assert!(stderr(&o).contains("container not running"), "{}", stderr(&o));
    // A paused container is still there for kill and state; exec refuses.
    fails(&h(&env, &["exec", &id, "true"]), "exec into a paused container");

    ok(&h(&env, &["resume", &id]), "resume");
    assert_eq!(env.status(&id), "running");
    let base: u64 = frozen_at.trim().parse().unwrap_or(0);
    wait_until("the counter moves again after resume", || counter(&env).is_some_and(|c| c > base));

    // A paused container can be force-deleted: hull thaws it so SIGKILL lands.
    ok(&h(&env, &["pause", &id]), "pause again");
    let path = cgroup_path(pid, "freezer");
    ok(&h(&env, &["delete", "--force", &id]), "delete --force of a paused container");
    assert!(!alive(pid));
    assert_no_dirs(&path);
    assert!(env.root_is_empty());
}

// ---- update ----

#[test]
fn update_changes_the_live_container() {
    if native_only("it sets memory limits of 64 and 96 MiB, under what a VM can hold (guest RAM is the limit less the VMM's 32 MiB)") {
        return;
    }
    let mut env = Env::new(&["sleep", "1000"]);
    let id = uid("upd");
    add_cgroup_mount(&mut env);
    set_resources(&mut env, json!({"memory": {"limit": 64 << 20}, "pids": {"limit": 100}}));
    let pid = create(&env, &id);
    start(&env, &id);
    let mem_file = if v2() { "memory.max" } else { "memory.limit_in_bytes" };

    // --memory: the host file and the container's own view.
    ok(&h(&env, &["update", "--memory", "128m", &id]), "update --memory");
    assert_eq!(read_cg(pid, "memory", mem_file), (128 << 20).to_string());
    let o = h(&env, &["exec", &id, "cat", &view_path("memory", mem_file)]);
    ok(&o, "exec cat");
    assert_eq!(stdout(&o).trim(), (128 << 20).to_string(), "the container sees the new limit");
    let st = state_json(&env, &id);
    assert_eq!(st["config"]["linux"]["resources"]["memory"]["limit"], json!(128 << 20));

    // --resources FILE: merged into what the container has (the memory limit stays).
    let file = env.dir.join("res.json");
    std::fs::write(
        &file,
        r#"{"cpu": {"shares": 256, "quota": 30000, "period": 60000}, "pids": {"limit": 42}}"#,
    )
    .unwrap();
    ok(&h(&env, &["update", "--resources", file.to_str().unwrap(), &id]), "update --resources FILE");
    if v2() {
        assert_eq!(read_cg(pid, "cpu", "cpu.weight"), "10");
        assert_eq!(read_cg(pid, "cpu", "cpu.max"), "30000 60000");
    } else {
        assert_eq!(read_cg(pid, "cpu", "cpu.shares"), "256");
        assert_eq!(read_cg(pid, "cpu", "cpu.cfs_quota_us"), "30000");
        assert_eq!(read_cg(pid, "cpu", "cpu.cfs_period_us"), "60000");
    }
    assert_eq!(read_cg(pid, "pids", "pids.max"), "42");
    assert_eq!(read_cg(pid, "memory", mem_file), (128 << 20).to_string());
    let st = state_json(&env, &id);
    let r = &st["config"]["linux"]["resources"];
    assert_eq!(r["pids"]["limit"], 42);
    assert_eq!(r["cpu"]["shares"], 256);
    assert_eq!(r["memory"]["limit"], json!(128 << 20));

    // --resources - (stdin), what containerd does.
    ok(
        &h_stdin(&env, &["update", "--resources", "-", &id], r#"{"memory": {"limit": 100663296}}"#),
        "update -r -",
    );
    assert_eq!(read_cg(pid, "memory", mem_file), "100663296");

    // runc's flags, with k/m/g sizes and -1 for unlimited.
    let mut args = vec![
        "update",
        "--memory-reservation",
        "16m",
        "--pids-limit",
        "-1",
        "--cpu-quota",
        "-1",
        "--cpu-share",
        "1024",
    ];
    let has_cpuset = if v2() {
        probe_files("cpuset").iter().any(|f| f == "cpuset.cpus")
    } else {
        has_controller("cpuset")
    };
    if has_cpuset {
        args.extend(["--cpuset-cpus", "0", "--cpuset-mems", "0"]);
    }
    args.push(&id);
    ok(&h(&env, &args), "update with flags");
    assert_eq!(read_cg(pid, "pids", "pids.max"), "max");
    if v2() {
        assert_eq!(read_cg(pid, "memory", "memory.low"), (16 << 20).to_string());
        assert_eq!(read_cg(pid, "cpu", "cpu.max"), "max 60000");
        assert_eq!(read_cg(pid, "cpu", "cpu.weight"), "39");
    } else {
        assert_eq!(read_cg(pid, "memory", "memory.soft_limit_in_bytes"), (16 << 20).to_string());
        assert_eq!(read_cg(pid, "cpu", "cpu.cfs_quota_us"), "-1");
        assert_eq!(read_cg(pid, "cpu", "cpu.shares"), "1024");
    }
    if has_cpuset {
        assert_eq!(read_cg(pid, "cpuset", "cpuset.cpus"), "0");
    }

    // --memory with --memory-swap, where the host accounts swap.
    let swap_file = if v2() { "memory.swap.max" } else { "memory.memsw.limit_in_bytes" };
    if cg_has(pid, "memory", swap_file) {
        ok(&h(&env, &["update", "--memory", "64m", "--memory-swap", "96m", &id]), "update --memory-swap");
        assert_eq!(read_cg(pid, "memory", mem_file), (64 << 20).to_string());
        let want = if v2() { 32 << 20 } else { 96 << 20 };
        assert_eq!(read_cg(pid, "memory", swap_file), want.to_string());
    } else {
        skip("update --memory-swap: no swap accounting");
    }
    if !v2() && cg_has(pid, "memory", "memory.kmem.tcp.limit_in_bytes") {
        ok(&h(&env, &["update", "--kernel-memory-tcp", "8m", &id]), "update --kernel-memory-tcp");
        assert_eq!(read_cg(pid, "memory", "memory.kmem.tcp.limit_in_bytes"), (8 << 20).to_string());
    }
    let weight = if v2() { ["io.weight", "io.bfq.weight"] } else { ["blkio.weight", "blkio.bfq.weight"] };
    if let Some(f) = weight.into_iter().find(|f| cg_has(pid, "blkio", f)) {
        ok(&h(&env, &["update", "--blkio-weight", "300", &id]), "update --blkio-weight");
        let v = read_cg(pid, "blkio", f);
        // io.weight: 1 + ((300 - 10) * 9999) / 990.
        let want = if f == "io.weight" {
            "default 2930"
        } else if f.starts_with("io.") {
            "default 300"
        } else {
            "300"
        };
        assert!(v.lines().any(|l| l.trim() == want), "{f}: {v:?}, want {want:?}");
    } else {
        skip("update --blkio-weight: no weight file");
    }

    // Errors: bad sizes and JSON are refused before anything changes; a value the host
    // cannot take names its key and leaves the stored config as it was.
    let before = state_json(&env, &id)["config"]["linux"]["resources"].clone();
    let o = h(&env, &["update", "--memory", "12x", &id]);
    fails(&o, "update --memory 12x");
    let o = h_stdin(&env, &["update", "-r", "-", &id], "{not json");
    fails(&o, "update with bad JSON");
    let o = h(&env, &["update", "--cpuset-cpus", "999", &id]);
    fails(&o, "update --cpuset-cpus 999");
    assert!(stderr(&o).contains("cpu.cpus"), "{}", stderr(&o));
    assert_eq!(state_json(&env, &id)["config"]["linux"]["resources"], before);
    let o = h(&env, &["update", "--memory", "1m", "nosuch"]);
    fails(&o, "update of an unknown container");
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));

    ok(&h(&env, &["kill", &id, "KILL"]), "kill");
    env.wait_status(&id, "stopped");
    let o = h(&env, &["update", "--memory", "32m", &id]);
    fails(&o, "update of a stopped container");
    assert!(stderr(&o).contains("not running"), "{}", stderr(&o));
    ok(&h(&env, &["delete", &id]), "delete");
}

// ---- events ----

#[test]
fn events_stats_document() {
    let mut env = Env::new(&["sh", "-c", "echo hi > /tmp/x; exec sleep 1000"]);
    let id = uid("stats");
    set_resources(&mut env, json!({"memory": {"limit": mem_limit(64)}, "pids": {"limit": 20}}));
    create(&env, &id);
    start(&env, &id);
    let o = h(&env, &["events", "--stats", &id]);
    ok(&o, "events --stats");
    let text = stdout(&o);
    assert_eq!(text.lines().count(), 1, "one JSON document: {text}");
    let ev: Value = serde_json::from_str(&text).expect("events --stats prints JSON");
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["id"], id.as_str());
    let d = &ev["data"];
    assert!(d["memory"]["usage"]["usage"].as_u64().unwrap_or(0) > 0, "memory usage: {d}");
    assert_eq!(d["memory"]["usage"]["limit"].as_u64(), Some(mem_limit(64) as u64), "{d}");
    assert!(d["memory"]["raw"].is_object(), "memory.stat as raw: {d}");
    assert!(d["pids"]["current"].as_u64().unwrap_or(0) >= 1, "pids current: {d}");
    assert_eq!(d["pids"]["limit"].as_u64(), Some(20), "{d}");
    assert!(d["cpu"]["usage"]["total"].as_u64().unwrap_or(0) > 0, "cpu usage: {d}");
    for k in ["kernel", "user"] {
        assert!(d["cpu"]["usage"][k].is_u64(), "cpu.usage.{k}: {d}");
    }
    assert!(d["cpu"]["throttling"].is_object() && d["blkio"].is_object() && d["hugetlb"].is_object(), "{d}");
    for k in ["swap", "kernel", "kernelTCP"] {
        assert!(d["memory"][k]["limit"].is_u64(), "memory.{k}: {d}");
    }

    let o = h(&env, &["events", "--stats", "nosuch"]);
    fails(&o, "events of an unknown container");
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    ok(&h(&env, &["kill", &id, "KILL"]), "kill");
    env.wait_status(&id, "stopped");
    let o = h(&env, &["events", "--stats", &id]);
    fails(&o, "events of a stopped container");
    assert!(stderr(&o).contains("not running"), "{}", stderr(&o));
    ok(&h(&env, &["delete", &id]), "delete");
}

/// `hull events` in the background, its stdout in a file.
fn spawn_events(env: &Env, id: &str, interval: &str) -> (std::process::Child, PathBuf) {
    let out = env.dir.join(format!("events-{id}.out"));
    let child = env
        .cmd(&["events", "--interval", interval, id])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(env.dir.join(format!("events-{id}.err"))).unwrap())
        .spawn()
        .expect("spawn hull events");
    (child, out)
}

/// The complete JSON lines `hull events` has written so far (a line still being written,
/// without its newline yet, is left for the next look).
fn lines_of(p: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(p).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line: {l:?}: {e}")))
        .collect()
}

#[track_caller]
fn wait_exit(child: &mut std::process::Child, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + patience(20);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn events_stream_until_the_container_stops() {
    let env = Env::new(&["sleep", "1000"]);
    let id = uid("evs");
    create(&env, &id);
    start(&env, &id);
    let (mut child, out) = spawn_events(&env, &id, "100ms");
    wait_until("two stats lines", || lines_of(&out).len() >= 2);
    ok(&h(&env, &["kill", &id, "KILL"]), "kill");
    let status = wait_exit(&mut child, "hull events after the container stopped");
    assert!(status.success(), "events: {status:?}");
    let lines = lines_of(&out);
    assert!(
        lines.iter().all(|l| l["type"] == "stats" && l["id"] == id.as_str() && l["data"].is_object()),
        "{lines:?}"
    );
    ok(&h(&env, &["delete", &id]), "delete");
}

#[test]
fn events_stream_reports_oom() {
    if native_only("a 32 MiB limit cannot hold a VM (integration/vm/backend.sh drives an OOM in a 128 MiB guest and checks its event)") {
        return;
    }
    let mut env = Env::new(&[]);
    let id = uid("oom");
    set_args(
        &mut env,
        &[
            "sh",
            "-c",
            "while [ ! -e /tmp/go ]; do sleep 0.05; done; tail /dev/zero; echo survived; exec sleep 1000",
        ],
    );
    let swap_file = if v2() { "memory.swap.max" } else { "memory.memsw.limit_in_bytes" };
    let mut mem = json!({"limit": 32 << 20});
    if probe_files("memory").iter().any(|f| f == swap_file) {
        // No swap to escape into.
        mem["swap"] = json!(32 << 20);
    }
    set_resources(&mut env, json!({"memory": mem}));
    create(&env, &id);
    start(&env, &id);
    let (mut child, out) = spawn_events(&env, &id, "200ms");
    wait_until("the first stats line", || !lines_of(&out).is_empty());
    std::fs::write(env.rootfs().join("tmp/go"), "").unwrap();
    wait_until("an oom event", || lines_of(&out).iter().any(|l| l["type"] == "oom"));
    let oom = lines_of(&out).into_iter().find(|l| l["type"] == "oom").unwrap();
    assert_eq!(oom, json!({"type": "oom", "id": id}));
    ok(&h(&env, &["kill", &id, "KILL"]), "kill");
    wait_exit(&mut child, "hull events");
    ok(&h(&env, &["delete", &id]), "delete");
}

// ---- ps ----

#[test]
fn ps_lists_the_container_processes() {
    if native_only("the guest's processes are not host processes: ps lists the VMM and the exec stand-ins") {
        return;
    }
    let env = Env::new(&["sh", "-c", "sleep 1001 & exec sleep 1000"]);
    let id = uid("ps");
    let init = create(&env, &id);
    start(&env, &id);
    let pidf = env.dir.join("exec.pid");
    ok(
        &h(&env, &["exec", "--detach", "--pid-file", pidf.to_str().unwrap(), &id, "sleep", "1002"]),
        "exec --detach",
    );
    let exec_pid: i32 = std::fs::read_to_string(&pidf).unwrap().trim().parse().unwrap();

    let pids = || -> Vec<i64> {
        let o = h(&env, &["ps", "--format", "json", &id]);
        ok(&o, "ps --format json");
        serde_json::from_str::<Vec<i64>>(stdout(&o).trim()).expect("a JSON array of pids")
    };
    wait_until("ps lists init, its child and the exec'd process", || {
        let p = pids();
        p.contains(&(init as i64)) && p.contains(&(exec_pid as i64)) && p.len() >= 3
    });
    let all = pids();

    let o = h(&env, &["ps", &id]);
    ok(&o, "ps (table)");
    let text = stdout(&o);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let col = header.split_whitespace().position(|f| f == "PID").expect("a PID column");
    let shown: Vec<i64> = lines.filter_map(|l| l.split_whitespace().nth(col)?.parse().ok()).collect();
    assert!(shown.contains(&(init as i64)) && shown.contains(&(exec_pid as i64)), "{text}");
    assert!(shown.iter().all(|p| all.contains(p)), "only the container's processes: {text}");
    assert!(!shown.contains(&(std::process::id() as i64)), "{text}");

    let o = h(&env, &["ps", &id, "--", "-o", "pid,args"]);
    ok(&o, "ps -- -o pid,args");
    let text = stdout(&o);
    assert!(text.lines().next().unwrap_or("").contains("PID"), "{text}");
    assert!(text.contains("sleep 1002") && text.contains("sleep 1001"), "{text}");

    let o = h(&env, &["ps", "nosuch"]);
    fails(&o, "ps of an unknown container");
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    ok(&h(&env, &["delete", "--force", &id]), "delete");
}

// ---- kill --all and delete ----

#[test]
fn kill_all_kills_every_process_of_the_cgroup() {
    if native_only("the guest's processes are not host processes: ps -f json lists the VMM and the exec stand-ins, not the workload's children") {
        return;
    }
    let mut env = Env::new(&["sh", "-c", "sleep 1001 & sleep 1002 & exec sleep 1000"]);
    // Without a pid namespace the init's death does not take the others with it: only the
    // cgroup knows them.
    env.config["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "ipc"}, {"type": "uts"}]);
    env.write_config();
    let id = uid("killall");
    let init = create(&env, &id);
    start(&env, &id);
    let list = || -> Vec<i32> {
        let o = h(&env, &["ps", "-f", "json", &id]);
        serde_json::from_str(stdout(&o).trim()).unwrap_or_default()
    };
    wait_until("three processes", || list().len() >= 3);
    let pids = list();
    assert!(pids.contains(&init));
    ok(&h(&env, &["kill", "--all", &id, "KILL"]), "kill --all");
    wait_until("every process gone", || pids.iter().all(|p| !alive(*p)));
    env.wait_status(&id, "stopped");
    ok(&h(&env, &["delete", &id]), "delete");
}

#[test]
fn delete_removes_the_cgroup_with_nested_children_and_its_own_parents() {
    let mut env = Env::new(&["sleep", "1000"]);
    let id = uid("del");
    let parent = format!("/hulltest-{}-del", std::process::id());
    let path = format!("{parent}/a/{id}");
    env.config["linux"]["cgroupsPath"] = json!(path);
    env.write_config();
    let pid = create(&env, &id);
    start(&env, &id);
    // A child cgroup the container's workload made (systemd in a container does this).
    for d in all_dirs(&path) {
        if d.exists() {
            std::fs::create_dir(d.join("nested")).unwrap();
        }
    }
    ok(&h(&env, &["delete", "--force", &id]), "delete --force");
    assert!(!alive(pid));
    assert_no_dirs(&path);
    assert_no_dirs(&format!("{parent}/a"));
    assert_no_dirs(&parent);
    assert!(env.root_is_empty());

    // The default path: the container's own directory goes (the shared /hull may stay).
    let id = uid("del2");
    env.config["linux"].as_object_mut().unwrap().remove("cgroupsPath");
    env.write_config();
    create(&env, &id);
    assert!(all_dirs(&format!("/hull/{id}")).iter().any(|d| d.exists()));
    ok(&h(&env, &["delete", &id]), "delete of a created container");
    assert_no_dirs(&format!("/hull/{id}"));
}

/// With a cgroup namespace on a v1 host, the container's cgroup mount should still show its
/// own cgroup, as without one (and as runc's fresh per-hierarchy mounts do).
#[test]
fn v1_view_with_cgroup_namespace() {
    if v2() {
        return skip("v1 only");
    }
    let mut env = Env::new(&[]);
    let id = uid("cgns");
    set_args(&mut env, &["sh", "-c", &format!("cat {}", view_path("memory", "memory.limit_in_bytes"))]);
    add_cgroup_mount(&mut env);
    env.config["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "cgroup"}));
    set_resources(&mut env, json!({"memory": {"limit": 48 << 20}}));
    create(&env, &id);
    let out = start_and_wait(&env, &id);
    assert_eq!(out.trim(), (48 << 20).to_string());
    ok(&h(&env, &["delete", &id]), "delete");
}
