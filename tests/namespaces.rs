//! Namespaces as the container sees them: its hostname, its pid 1, its network devices, its
//! ipc objects, its user and gid maps, its clocks, its cgroup paths; and joining an existing
//! namespace by path. Each test compares with what the host (this test process) sees.

mod common;
use common::*;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

// ---- helpers ----

fn h(env: &Env, args: &[&str]) -> Output {
    run_bounded(&env.dir, env.cmd(args), None, 20)
}

/// `hull run` of the bundle: the container's output, after checking it exited 0.
#[track_caller]
fn run_ok(env: &Env, id: &str) -> String {
    let o = h(env, &["run", "--bundle", env.bundle.to_str().unwrap(), id]);
    ok(&o, &format!("run {id}"));
    stdout(&o)
}

/// `hull run --detach`: the container runs on, its output going to `<id>.out` in env.dir.
#[track_caller]
fn run_detached(env: &Env, id: &str) -> i32 {
    let c = env.cmd(&["run", "--detach", "--bundle", env.bundle.to_str().unwrap(), id]);
    let o = run_bounded_to(c, env.dir.join(format!("{id}.out")), env.dir.join(format!("{id}.err")), None, 20);
    assert!(o.status.success(), "run --detach {id}: {}", stderr(&o));
    env.state(id)["pid"].as_i64().unwrap() as i32
}

/// Stops and removes a container without `delete --force` racing anything.
fn stop(env: &Env, id: &str) {
    let _ = h(env, &["kill", id, "KILL"]);
    env.wait_status(id, "stopped");
    let o = h(env, &["delete", id]);
    assert!(o.status.success(), "delete {id}: {}", stderr(&o));
}

#[track_caller]
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + patience(10);
    while !cond() {
        if Instant::now() > deadline {
            let detail = |p: &str| {
                what.split(' ')
                    .filter(|w| w.ends_with(p))
                    .map(|f| {
                        format!(
                            "\n{f}: {:?}",
                            std::fs::read_to_string(f.trim_end_matches(')')).unwrap_or_default()
                        )
                    })
                    .collect::<String>()
            };
            panic!("timed out waiting for: {what}{}{}", detail(".out"), detail(".err)"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// This process's namespace of `kind`, as `readlink /proc/self/ns/<kind>` prints it.
fn host_ns(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}")).unwrap().display().to_string()
}

fn add_ns(env: &mut Env, ns: Value) {
    env.config["linux"]["namespaces"].as_array_mut().unwrap().push(ns);
    env.write_config();
}

fn remove_ns(env: &mut Env, kind: &str) {
    env.config["linux"]["namespaces"].as_array_mut().unwrap().retain(|n| n["type"] != kind);
    env.write_config();
}

// ---- uts ----

#[test]
fn uts_hostname_and_domainname() {
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let host_domain = std::fs::read_to_string("/proc/sys/kernel/domainname").unwrap();
    let (mut env, _r) =
        env_of(&["sh", "-c", "hostname; cat /proc/sys/kernel/domainname; readlink /proc/self/ns/uts"]);
    env.config["hostname"] = json!("box-one");
    env.config["domainname"] = json!("example.test");
    env.write_config();
    let out = run_ok(&env, "ns-uts");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0], "box-one");
    assert_eq!(lines[1], "example.test");
    assert_ne!(lines[2], host_ns("uts"), "the container shares the host's uts namespace");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        host_name,
        "host hostname changed"
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/domainname").unwrap(),
        host_domain,
        "host domainname changed"
    );
}

// ---- pid ----

#[test]
fn pid_namespace_program_is_pid_1() {
    let (env, _r) = env_of(&["sh", "-c", "echo $$; cat /proc/1/cmdline | tr '\\0' ' '; echo; readlink /proc/self/ns/pid; ls /proc | grep -c '^[0-9]'"]);
    let out = run_ok(&env, "ns-pid");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(lines[0], "1", "the program is not pid 1: {out}");
    assert!(lines[1].starts_with("sh -c echo $$"), "pid 1 is not the program: {out}");
    assert_ne!(lines[2], host_ns("pid"));
    // The container's /proc shows its own few processes, not the host's.
    let n: usize = lines[3].parse().unwrap();
    assert!(n <= 5, "the container's /proc shows {n} processes: it is not its own pid namespace's procfs");
}

// ---- network ----

#[test]
fn network_namespace_has_only_lo() {
    let (env, _r) = env_of(&["sh", "-c", "ls /sys/class/net; echo --; tail -n +3 /proc/net/dev | cut -d: -f1; echo --; readlink /proc/self/ns/net"]);
    let out = run_ok(&env, "ns-net");
    let parts: Vec<&str> = out.split("--\n").collect();
    assert_eq!(parts.len(), 3, "{out}");
    assert_eq!(parts[0].split_whitespace().collect::<Vec<_>>(), vec!["lo"], "/sys/class/net: {out}");
    assert_eq!(parts[1].split_whitespace().collect::<Vec<_>>(), vec!["lo"], "/proc/net/dev: {out}");
    // On a VM the container's network namespace is the guest's initial one (the VM is the
    // boundary), whose inode number is that of every kernel's initial namespace, the host's too.
    if !on_vm() {
        assert_ne!(parts[2].trim(), host_ns("net"));
    }
}

#[test]
fn without_network_namespace_the_host_network_is_seen() {
    if native_only(
        "without a network namespace a VM container sees the guest's network (loopback only), not the host's",
    ) {
        return;
    }
    // The control for the test above: it would see more than lo if hull forgot the namespace.
    let (mut env, _r) =
        env_of(&["sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1; readlink /proc/self/ns/net"]);
    remove_ns(&mut env, "network");
    let out = run_ok(&env, "ns-nonet");
    assert!(out.contains(&host_ns("net")), "{out}");
    let host_devs = std::fs::read_to_string("/proc/net/dev").unwrap().lines().count() - 2;
    assert_eq!(out.lines().count() - 1, host_devs, "{out}");
}

// ---- ipc ----

#[test]
fn ipc_namespace_is_private() {
    // A SysV shared memory segment made on the host must not be visible inside.
    const KEY: i32 = 0x48554c4c; // "HULL"
                                 // SAFETY: shmget with plain integers.
    let shmid = unsafe { libc::shmget(KEY, 4096, libc::IPC_CREAT | 0o600) };
    assert!(shmid >= 0, "shmget: {}", std::io::Error::last_os_error());
    let (env, _r) = env_of(&["sh", "-c", "readlink /proc/self/ns/ipc; cat /proc/sysvipc/shm"]);
    let out = run_ok(&env, "ns-ipc");
    let host_shm = std::fs::read_to_string("/proc/sysvipc/shm").unwrap();
    // SAFETY: removes the segment made above.
    unsafe { libc::shmctl(shmid, libc::IPC_RMID, std::ptr::null_mut()) };
    let key_dec = KEY.to_string();
    assert!(host_shm.lines().any(|l| l.split_whitespace().next() == Some(&key_dec)), "host: {host_shm}");
    let mut lines = out.lines();
    assert_ne!(lines.next().unwrap(), host_ns("ipc"));
    assert!(
        !lines.any(|l| l.split_whitespace().next() == Some(&key_dec)),
        "the host's segment is visible inside: {out}"
    );
}

// ---- joining by path ----

#[test]
fn join_network_namespace_by_path() {
    if native_only("namespaces by path are the host's: the guest makes its own (guest_spec.rs; docs/vm.md)") {
        return;
    }
    let (env_a, _ra) = env_of(&["sleep", "1000"]);
    let a = "ns-join-a";
    let pid_a = run_detached(&env_a, a);
    let a_net = std::fs::read_link(format!("/proc/{pid_a}/ns/net")).unwrap().display().to_string();
    assert_ne!(a_net, host_ns("net"));

    let (mut env_b, _rb) = env_of(&["sh", "-c", "readlink /proc/self/ns/net; readlink /proc/self/ns/uts"]);
    remove_ns(&mut env_b, "network");
    add_ns(&mut env_b, json!({"type": "network", "path": format!("/proc/{pid_a}/ns/net")}));
    let out = run_ok(&env_b, "ns-join-b");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], a_net, "B is not in A's network namespace");
    // The namespaces B creates are still its own.
    let a_uts = std::fs::read_link(format!("/proc/{pid_a}/ns/uts")).unwrap().display().to_string();
    assert_ne!(lines[1], a_uts);
    assert_ne!(lines[1], host_ns("uts"));
    stop(&env_a, a);
}

#[test]
fn join_missing_namespace_path_fails_cleanly() {
    let (mut env, _r) = env_of(&["true"]);
    remove_ns(&mut env, "network");
    add_ns(&mut env, json!({"type": "network", "path": "/proc/999999999/ns/net"}));
    let id = "ns-join-missing";
    let o = env.create(id);
    assert!(!o.status.success(), "create joining a missing namespace must fail");
    let e = stderr(&o);
    assert!(e.contains(&format!("create {id}")) && e.contains("/proc/999999999/ns/net"), "{e}");
    assert!(env.root_is_empty(), "state left behind");
}

// ---- mount ----

/// The host's mounts whose mount point is below `dir` (not `dir` itself), as "point fstype".
fn host_mounts_under(dir: &std::path::Path) -> Vec<String> {
    let d = format!("{}/", dir.display());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let point = left.split(' ').nth(4)?;
            let fstype = right.split(' ').next()?;
            point.starts_with(&d).then(|| format!("{point} {fstype}"))
        })
        .collect()
}

/// The propagation fields (shared:N, master:N) of the host's topmost mount at `point`.
fn host_propagation(point: &str) -> String {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = text.lines().rfind(|l| l.split(' ').nth(4) == Some(point)).unwrap().to_string();
    let left = line.split_once(" - ").unwrap().0;
    left.split(' ').skip(6).collect::<Vec<_>>().join(" ")
}

/// Without a mount namespace (runtime-tools' linux_ns_itype): the container shares the host's
/// mount namespace, its mounts (proc, /dev, sysfs, ...) are made under a bind of its rootfs
/// in the host's table and it is chrooted there; `exec` lands in the same root; delete takes
/// every one of those mounts away, and no host mount's propagation changed.
#[test]
fn without_mount_namespace() {
    let host_only = std::env::temp_dir();
    let script = format!(
        "readlink /proc/self/ns/mnt; echo $$; test -e /bin/busybox && echo in-rootfs; \
         test -e {} || echo host-hidden; echo x > /dev/null && echo null-ok; \
         grep -c . /proc/self/mountinfo > /dev/null && echo proc-ok; echo ready; exec sleep 1000",
        host_only.join("hull-test-no-such-file-in-the-rootfs").display()
    );
    let (mut env, _r) = env_of(&["sh", "-c", &script]);
    // The host side of the check below: this path exists on the host only.
    std::fs::write(host_only.join("hull-test-no-such-file-in-the-rootfs"), "").unwrap();
    remove_ns(&mut env, "mount");
    let root_before = host_propagation("/");
    let id = "ns-no-mnt";
    run_detached(&env, id);
    let outf = env.dir.join(format!("{id}.out"));
    wait_until(&format!("ready ({})", outf.display()), || {
        std::fs::read_to_string(&outf).unwrap_or_default().contains("ready")
    });
    let out = std::fs::read_to_string(&outf).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    // On a VM the container shares the guest's mount namespace (exec must land in it too),
    // and the host's holds nothing of it: its mounts are in the guest's table.
    if !on_vm() {
        assert_eq!(lines[0], host_ns("mnt"), "{out}");
    }
    assert_eq!(&lines[1..], ["1", "in-rootfs", "host-hidden", "null-ok", "proc-ok", "ready"], "{out}");

    // The container's mounts are in the host's table, all under its rootfs.
    let rootfs = std::fs::canonicalize(env.rootfs()).unwrap();
    let under = host_mounts_under(&env.dir);
    if on_vm() {
        assert_eq!(under, Vec::<String>::new(), "a VM container mounted on the host");
    } else {
        // The bind of the rootfs itself ("<rootfs> <fstype>"), then what the spec mounts below it.
        for want in [" ", "/proc proc", "/dev tmpfs", "/dev/pts devpts", "/sys sysfs"] {
            let want = format!("{}{want}", rootfs.display());
            assert!(under.iter().any(|m| m.starts_with(&want)), "{want} not among {under:?}");
        }
    }
    let o = h(
        &env,
        &["exec", id, "sh", "-c", "readlink /proc/self/ns/mnt; test -e /bin/busybox && echo in-rootfs"],
    );
    assert!(o.status.success(), "exec: {}", stderr(&o));
    assert_eq!(stdout(&o), format!("{}\nin-rootfs\n", lines[0]));

    stop(&env, id);
    assert_eq!(host_mounts_under(&env.dir), Vec::<String>::new(), "mounts left after delete");
    assert_eq!(host_propagation("/"), root_before, "the host's / changed propagation");
    let _ = std::fs::remove_file(host_only.join("hull-test-no-such-file-in-the-rootfs"));
}

/// Detaches the host mounts a test made, last made first, then removes the directories it
/// made for them (a failing test leaves nothing either).
struct Unmount(Vec<PathBuf>, Vec<PathBuf>);

impl Drop for Unmount {
    fn drop(&mut self) {
        for p in self.0.iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(p).status();
        }
        for d in &self.1 {
            let _ = std::fs::remove_dir(d);
        }
    }
}

#[track_caller]
fn sh_ok(cmd: &str) {
    let st = Command::new("sh").arg("-c").arg(cmd).status().unwrap();
    assert!(st.success(), "{cmd}");
}

/// The bundle under a shared host mount with a peer elsewhere (a systemd host's "/" is shared):
/// the container's mounts reach the peer as any host mount would, and delete takes them away
/// there too; the shared mount stays shared (runc would have made it private).
#[test]
fn without_mount_namespace_under_a_shared_mount() {
    if native_only("a VM container's mounts are made in the guest's mount table: no host peer sees them") {
        return;
    }
    let (mut env, _r) = env_of(&["sh", "-c", "echo ready; exec sleep 1000"]);
    remove_ns(&mut env, "mount");
    let dir = std::fs::canonicalize(&env.dir).unwrap();
    let peer = PathBuf::from(format!("{}-peer", dir.display()));
    std::fs::create_dir_all(&peer).unwrap();
    let mut guard = Unmount(vec![], vec![peer.clone()]);
    sh_ok(&format!("mount --bind {0} {0} && mount --make-shared {0}", dir.display()));
    guard.0.push(dir.clone());
    sh_ok(&format!("mount --bind {} {}", dir.display(), peer.display()));
    guard.0.push(peer.clone());
    let shared_before = host_propagation(dir.to_str().unwrap());
    assert!(shared_before.contains("shared:"), "{shared_before}");

    let id = "ns-no-mnt-shared";
    run_detached(&env, id);
    let outf = env.dir.join(format!("{id}.out"));
    wait_until("ready", || std::fs::read_to_string(&outf).unwrap_or_default().contains("ready"));
    let in_peer = host_mounts_under(&peer);
    assert!(in_peer.iter().any(|m| m.ends_with("/bundle/rootfs/proc proc")), "{in_peer:?}");

    stop(&env, id);
    assert_eq!(host_mounts_under(&dir), Vec::<String>::new(), "mounts left after delete");
    assert_eq!(host_mounts_under(&peer), Vec::<String>::new(), "mounts left in the peer after delete");
    assert_eq!(host_propagation(dir.to_str().unwrap()), shared_before);
    drop(guard);
    assert!(!peer.exists());
}

/// Without a mount namespace a read-only root is the container's bind only, and a create that
/// fails half-way takes its mounts in the host's table away again.
#[test]
fn without_mount_namespace_readonly_root_and_failed_create() {
    let (mut env, _r) = env_of(&["sh", "-c", "touch /x 2>&1; echo done"]);
    remove_ns(&mut env, "mount");
    env.config["root"]["readonly"] = json!(true);
    env.write_config();
    assert_eq!(run_ok(&env, "ns-no-mnt-ro"), "touch: /x: Read-only file system\ndone\n");
    assert_eq!(host_mounts_under(&env.dir), Vec::<String>::new(), "mounts left after run");
    // The rootfs and the host's mount it lives on are writable as before.
    std::fs::write(env.rootfs().join("x"), "host\n").unwrap();

    env.config["root"]["readonly"] = json!(false);
    env.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/data", "type": "bind", "source": env.dir.join("no-such-dir").to_str().unwrap(),
        "options": ["rbind"]
    }));
    env.write_config();
    let o = env.create("ns-no-mnt-fail");
    assert!(!o.status.success(), "create with a missing bind source succeeded");
    assert!(stderr(&o).contains("no-such-dir"), "{}", stderr(&o));
    assert_eq!(host_mounts_under(&env.dir), Vec::<String>::new(), "mounts left after a failed create");
    assert!(env.root_is_empty());
}

// ---- user ----

fn userns_config(env: &mut Env) {
    add_ns(env, json!({"type": "user"}));
    env.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    env.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    env.write_config();
}

#[test]
fn user_namespace_with_mappings() {
    let script = "cat /proc/self/uid_map; cat /proc/self/gid_map; id -u; id -g; \
                  stat -c %u /bin/busybox; touch /etc/hull-x 2>/dev/null && echo wrote-etc || echo etc-ro; \
                  readlink /proc/self/ns/user; echo ready; exec sleep 1000";
    let (mut env, _r) = env_of(&["sh", "-c", script]);
    userns_config(&mut env);
    let id = "ns-user";
    let pid = run_detached(&env, id);
    let outf = env.dir.join(format!("{id}.out"));
    let errf = env.dir.join(format!("{id}.err"));
    wait_until(
        &format!("ready (container stdout/stderr so far in {} and {})", outf.display(), errf.display()),
        || std::fs::read_to_string(&outf).unwrap_or_default().contains("ready"),
    );
    let out = std::fs::read_to_string(&outf).unwrap();
    // What the host sees: the container's root is host uid 100000. On a VM the state's pid
    // is the VMM and the ids are the guest's (its maps are checked from inside below).
    let host_ids = (!on_vm()).then(|| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let field = |k: &str| {
            status.lines().find(|l| l.starts_with(k)).unwrap().split_whitespace().nth(1).unwrap().to_string()
        };
        (field("Uid:"), field("Gid:"))
    });
    stop(&env, id);

    let lines: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    assert!(lines.len() >= 8, "{out}");
    assert_eq!(lines[0], ["0", "100000", "65536"], "uid_map: {out}");
    assert_eq!(lines[1], ["0", "100000", "65536"], "gid_map: {out}");
    assert_eq!(lines[2], ["0"], "id -u: {out}");
    assert_eq!(lines[3], ["0"], "id -g: {out}");
    assert_eq!(lines[4], ["65534"], "host root's files must look unmapped (overflow uid): {out}");
    assert_eq!(lines[5], ["etc-ro"], "the container's root could write a host-root-owned dir: {out}");
    assert_ne!(lines[6][0], host_ns("user"));
    if let Some((host_uid, host_gid)) = host_ids {
        assert_eq!(host_uid, "100000");
        assert_eq!(host_gid, "100000");
    }
    assert!(!env.rootfs().join("etc/hull-x").exists());
}

/// A container that joins another's user namespace by path (a Kubernetes pod with user
/// namespaces: each app container joins the sandbox's), with mount, pid, network and the
/// other namespaces of its own: it is root of that namespace, and its /dev, devpts and /proc
/// are made there (each mount owned by the joined namespace's root, host 100000).
#[test]
fn join_user_namespace_by_path() {
    if native_only("namespaces by path are the host's: the guest makes its own (guest_spec.rs; docs/vm.md)") {
        return;
    }
    let (mut env_a, _ra) = env_of(&["sleep", "1000"]);
    userns_config(&mut env_a);
    let a = "ns-userjoin-a";
    let pid_a = run_detached(&env_a, a);
    let a_user = std::fs::read_link(format!("/proc/{pid_a}/ns/user")).unwrap().display().to_string();

    let script = "id -u; id -g; cat /proc/self/uid_map; readlink /proc/self/ns/user; \
                  ls /dev/pts >/dev/null && touch /dev/shm/x && echo dev-ok";
    let (mut env_b, _rb) = env_of(&["sh", "-c", script]);
    add_ns(&mut env_b, json!({"type": "user", "path": format!("/proc/{pid_a}/ns/user")}));
    let out = run_ok(&env_b, "ns-userjoin-b");
    stop(&env_a, a);
    let lines: Vec<String> =
        out.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    assert_eq!(lines, ["0", "0", "0 100000 65536", a_user.as_str(), "dev-ok"], "{out}");
}

#[test]
fn user_namespace_with_proc_sys_and_dev() {
    // The usual mounts work inside a user namespace: proc, sysfs (own netns), devices (bound
    // from the host), devpts, mqueue.
    let script = "grep -c . /proc/self/uid_map; ls /sys/class/net; echo x > /dev/null && echo null-ok; \
                  head -c 4 /dev/zero | od -An -tx1 | tr -d ' '; \
                  awk '$5 == \"/dev/pts\" || $5 == \"/dev/mqueue\" || $5 == \"/sys\" { print $5 }' /proc/self/mountinfo | sort";
    let (mut env, _r) = env_of(&["sh", "-c", script]);
    userns_config(&mut env);
    let out = run_ok(&env, "ns-user-mounts");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1", "{out}");
    assert_eq!(lines[1], "lo", "{out}");
    assert_eq!(lines[2], "null-ok", "{out}");
    assert_eq!(lines[3], "00000000", "{out}");
    assert_eq!(&lines[4..], &["/dev/mqueue", "/dev/pts", "/sys"], "{out}");
}

/// In a user namespace device nodes are bound from the host, but a FIFO is made (mknod of a
/// FIFO needs no privilege, and the host has no node of that name to bind).
#[test]
fn user_namespace_fifo_device() {
    let (mut env, _r) =
        env_of(&["sh", "-c", "test -p /dev/myfifo && echo fifo; stat -c '%a %u:%g' /dev/myfifo"]);
    userns_config(&mut env);
    env.config["linux"]["devices"] =
        json!([{"path": "/dev/myfifo", "type": "p", "fileMode": 0o620, "uid": 1000, "gid": 1001}]);
    env.write_config();
    assert_eq!(run_ok(&env, "ns-user-fifo"), "fifo\n620 1000:1001\n");
}

// ---- time ----

#[test]
fn time_namespace_offsets() {
    const YEAR: u64 = 86400 * 365;
    let (mut env, _r) =
        env_of(&["sh", "-c", "cat /proc/uptime; cat /proc/self/timens_offsets; readlink /proc/self/ns/time"]);
    add_ns(&mut env, json!({"type": "time"}));
    env.config["linux"]["timeOffsets"] = json!({
        "boottime": {"secs": YEAR, "nanosecs": 0},
        "monotonic": {"secs": 86400, "nanosecs": 0}
    });
    env.write_config();
    let before = Instant::now();
    let out = run_ok(&env, "ns-time");
    let lines: Vec<&str> = out.lines().collect();
    let up: f64 = lines[0].split_whitespace().next().unwrap().parse().unwrap();
    assert!(up > YEAR as f64, "uptime inside {up} does not include the boottime offset: {out}");
    let since_boot = up - YEAR as f64;
    if on_vm() {
        // The guest booted during this `run`: its own uptime is no older than the run.
        let run_took = before.elapsed().as_secs_f64();
        assert!(
            since_boot < run_took + 5.0,
            "inside {up}: guest up {since_boot} s, run took {run_took} s: {out}"
        );
    } else {
        let host_up: f64 = std::fs::read_to_string("/proc/uptime")
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!((since_boot - host_up).abs() < 30.0, "inside {up}, host {host_up}: {out}");
    }
    let offsets: Vec<Vec<&str>> = lines[1..3].iter().map(|l| l.split_whitespace().collect()).collect();
    assert!(offsets.contains(&vec!["monotonic", "86400", "0"]), "{out}");
    assert!(offsets.contains(&vec!["boottime", &YEAR.to_string(), "0"]), "{out}");
    assert_ne!(lines[3], host_ns("time"));
}

// ---- cgroup ----

/// A child cgroup of this host's pids hierarchy (v1), removed on drop.
struct HostCgroup(PathBuf);

impl HostCgroup {
    fn new(name: &str) -> Option<HostCgroup> {
        let base = PathBuf::from("/sys/fs/cgroup/pids");
        if !base.join("cgroup.procs").exists() {
            return None;
        }
        let p = base.join(format!("hull-test-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&p).ok()?;
        Some(HostCgroup(p))
    }
}

impl Drop for HostCgroup {
    fn drop(&mut self) {
        for _ in 0..100 {
            if std::fs::remove_dir(&self.0).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `hull run` started from inside `cg` (through a shell that moves itself there first).
fn run_in_cgroup(env: &Env, cg: &HostCgroup, id: &str) -> String {
    let script = format!(
        "echo $$ > {}/cgroup.procs && exec \"$0\" --root \"$1\" run --bundle \"$2\" \"$3\"",
        cg.0.display()
    );
    let mut c = Command::new("/bin/sh");
    c.args(["-c", &script, HULL, env.root.to_str().unwrap(), env.bundle.to_str().unwrap(), id]);
    let o = run_bounded(&env.dir, c, None, 20);
    assert!(o.status.success(), "run {id}: {}", stderr(&o));
    stdout(&o)
}

#[test]
fn cgroup_namespace_roots_the_container_at_its_cgroup() {
    let Some(cg) = HostCgroup::new("cgns") else {
        eprintln!("no v1 pids hierarchy here; skipped");
        return;
    };
    // Control: without a cgroup namespace the container sees the host path of its cgroup.
    let (env, _r) = env_of(&["sh", "-c", "cat /proc/self/cgroup; readlink /proc/self/ns/cgroup"]);
    let out = run_in_cgroup(&env, &cg, "ns-nocg");
    // (It is in the caller's cgroup, or in one hull made for it: either way not the root.)
    let pids_line =
        out.lines().find(|l| l.split(':').nth(1) == Some("pids")).unwrap_or_else(|| panic!("{out}"));
    assert!(!pids_line.ends_with(":/"), "the control container is in the root cgroup: {out}");
    assert!(out.contains(&host_ns("cgroup")), "{out}");

    // With one, every hierarchy's path is "/".
    let (mut env, _r2) = env_of(&["sh", "-c", "cat /proc/self/cgroup; readlink /proc/self/ns/cgroup"]);
    add_ns(&mut env, json!({"type": "cgroup"}));
    let out = run_in_cgroup(&env, &cg, "ns-cg");
    let mut lines: Vec<&str> = out.lines().collect();
    let ns = lines.pop().unwrap();
    assert_ne!(ns, host_ns("cgroup"));
    assert!(!lines.is_empty());
    for l in lines {
        assert!(l.ends_with(":/"), "{l} is not rooted at the container's cgroup: {out}");
    }
}
