//! The runtime spec's `process` section and its Linux relatives, checked from inside the
//! container: user, capabilities, rlimits, no_new_privs, oomScoreAdj, sysctl, personality,
//! ioPriority, scheduler, execCPUAffinity, LSM labels, fds, terminal, systemd hand-offs.

mod common;
use common::fdpass::recv_fd;
use common::*;
use serde_json::json;

/// Runs a shell snippet in a fresh container with `edit` applied to its config.
fn sh(script: &str, edit: impl FnOnce(&mut serde_json::Value)) -> (Env, std::process::Output) {
    let mut env = Env::new(&["sh", "-c", script]);
    edit(&mut env.config);
    env.write_config();
    // A fresh id each time: the default cgroup path is /hull/<id>, shared by parallel tests.
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let id = format!("proc-{}", N.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
    let out = env.run(&id);
    (env, out)
}

fn status_field(out: &str, key: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

#[test]
fn user_groups_and_umask() {
    let (_e, out) = sh("id; umask", |c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1001, "additionalGids": [5, 7], "umask": 63});
    });
    let o = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(o.contains("uid=1000 gid=1001 groups=5,7"), "{o}");
    assert!(o.contains("0077"), "{o}");
}

/// Whatever starts hull may ignore or block signals (nohup ignores SIGHUP; a supervisor may
/// ignore SIGPIPE or SIGINT): ignored signals survive execve, and a shell cannot trap a signal
/// that was ignored when it started. The program must start with every default action and
/// an empty mask, as crun's do.
#[test]
fn signals_the_caller_ignored_or_blocked_have_their_defaults_in_the_container() {
    use std::os::unix::process::CommandExt;
    let script = "grep -E '^Sig(Ign|Blk):' /proc/self/status; trap 'echo got-hup' HUP; \
                  trap 'echo got-usr1' USR1; kill -HUP $$; kill -USR1 $$; echo after";
    let env = Env::new(&["sh", "-c", script]);
    let mut c = env.cmd(&["run", "--bundle", env.bundle.to_str().unwrap(), "proc-sig-defaults"]);
    c.stdin(std::process::Stdio::null());
    // SAFETY: only async-signal-safe calls between fork and exec: sigaction and sigprocmask.
    unsafe {
        c.pre_exec(|| {
            for signo in [libc::SIGHUP, libc::SIGINT, libc::SIGUSR1, libc::SIGPIPE, libc::SIGRTMIN() + 3] {
                libc::signal(signo, libc::SIG_IGN);
            }
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGUSR2);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
    let o = c.output().expect("run hull run");
    let out = stdout(&o);
    assert!(o.status.success(), "{}\n{out}", stderr(&o));
    assert_eq!(status_field(&out, "SigIgn"), "0000000000000000", "{out}");
    assert_eq!(status_field(&out, "SigBlk"), "0000000000000000", "{out}");
    assert!(out.contains("got-hup") && out.contains("got-usr1") && out.contains("after"), "{out}");
}

#[test]
fn capabilities_sets() {
    let caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let (_e, out) = sh("cat /proc/self/status", |c| {
        c["process"]["capabilities"] = json!({
            "bounding": caps, "effective": caps, "permitted": caps,
        });
    });
    let o = stdout(&out);
    // AUDIT_WRITE=29, KILL=5, NET_BIND_SERVICE=10.
    let want = format!("{:016x}", (1u64 << 29) | (1 << 5) | (1 << 10));
    assert_eq!(status_field(&o, "CapBnd"), want, "{o}");
    assert_eq!(status_field(&o, "CapEff"), want, "{o}");
    assert_eq!(status_field(&o, "CapInh"), "0000000000000000", "inheritable only when asked: {o}");
}

#[test]
fn ambient_capabilities_reach_a_non_root_program() {
    let (_e, out) = sh("cat /proc/self/status", |c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        c["process"]["capabilities"] = json!({
            "bounding": ["CAP_KILL", "CAP_CHOWN"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"],
            "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"],
        });
    });
    let o = stdout(&out);
    assert_eq!(status_field(&o, "CapAmb"), format!("{:016x}", 1u64 << 5), "{o}");
    assert_eq!(status_field(&o, "CapEff"), format!("{:016x}", 1u64 << 5), "{o}");
}

#[test]
fn no_capabilities_section_means_none() {
    let (_e, out) = sh("cat /proc/self/status", |_| {});
    let o = stdout(&out);
    assert_eq!(status_field(&o, "CapEff"), "0000000000000000", "{o}");
    assert_eq!(status_field(&o, "NoNewPrivs"), "1", "{o}");
}

#[test]
fn rlimits_are_applied() {
    let (_e, out) = sh("ulimit -n; ulimit -Hn; ulimit -c", |c| {
        c["process"]["rlimits"] = json!([
            {"type": "RLIMIT_NOFILE", "soft": 321, "hard": 654},
            {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
        ]);
    });
    assert_eq!(stdout(&out).split_whitespace().collect::<Vec<_>>(), ["321", "654", "0"]);
}

#[test]
fn an_rlimit_the_kernel_refuses_is_named() {
    // Above the host's hard limit: needs CAP_SYS_RESOURCE in the initial namespace, which
    // these machines withhold; where it is granted the limit simply applies.
    let mut env = Env::new(&["true"]);
    env.config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 1 << 30, "hard": 1 << 30}]);
    env.write_config();
    let out = env.run("rl");
    let e = stderr(&out);
    if !out.status.success() {
        assert!(e.contains("RLIMIT_NOFILE"), "{e}");
    }
    assert!(env.root_is_empty(), "{}; run's stderr: {e}", env.root_left());
}

#[test]
fn oom_score_adj() {
    let (_e, out) = sh("cat /proc/self/oom_score_adj", |c| c["process"]["oomScoreAdj"] = json!(123));
    assert_eq!(stdout(&out).trim(), "123");
}

#[test]
fn namespaced_sysctls_are_set_in_the_container_only() {
    let host_before = std::fs::read_to_string("/proc/sys/kernel/shmmni").unwrap();
    let (_e, out) = sh("cat /proc/sys/kernel/shmmni /proc/sys/net/ipv4/ip_forward", |c| {
        c["linux"]["sysctl"] = json!({"kernel.shmmni": "1234", "net.ipv4.ip_forward": "1"});
    });
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).split_whitespace().collect::<Vec<_>>(), ["1234", "1"]);
    assert_eq!(std::fs::read_to_string("/proc/sys/kernel/shmmni").unwrap(), host_before);
}

#[test]
fn a_host_wide_sysctl_is_refused() {
    let mut env = Env::new(&["true"]);
    env.config["linux"]["sysctl"] = json!({"vm.swappiness": "1"});
    env.write_config();
    let out = env.run("sy");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("vm.swappiness"), "{}", stderr(&out));
    assert!(env.root_is_empty());
}

#[test]
fn personality_linux32() {
    let (_e, out) = sh("uname -m", |c| c["linux"]["personality"] = json!({"domain": "LINUX32"}));
    assert_eq!(stdout(&out).trim(), "i686", "{}", stderr(&out));
}

/// LINUX is the native personality: the machine stays what the host says.
#[test]
fn personality_linux_leaves_the_machine() {
    let host = std::process::Command::new("uname").arg("-m").output().unwrap();
    let (_e, out) = sh("uname -m", |c| c["linux"]["personality"] = json!({"domain": "LINUX"}));
    assert_eq!(stdout(&out), stdout(&host), "{}", stderr(&out));
}

// ---- linux.memoryPolicy ----

/// The policy column of the container's first mapping in /proc/self/numa_maps (the task's
/// policy: no mapping of a fresh process has one of its own).
fn numa_policy_with(policy: serde_json::Value) -> String {
    let (_e, out) = sh("head -n 1 /proc/self/numa_maps", |c| c["linux"]["memoryPolicy"] = policy);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).split_whitespace().nth(1).unwrap_or_default().to_string()
}

#[test]
fn memory_policy_modes_reach_the_program() {
    if native_only("the guest kernel has no NUMA support: a memoryPolicy fails create in the guest") {
        return;
    }
    if !std::path::Path::new("/proc/self/numa_maps").exists() {
        return eprintln!("[skipped] memoryPolicy: the kernel has no NUMA support");
    }
    assert_eq!(numa_policy_with(json!({"mode": "MPOL_BIND", "nodes": "0"})), "bind:0");
    assert_eq!(numa_policy_with(json!({"mode": "MPOL_INTERLEAVE", "nodes": "0"})), "interleave:0");
    assert_eq!(
        numa_policy_with(json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]})),
        "bind=static:0"
    );
    assert_eq!(numa_policy_with(json!({"mode": "MPOL_PREFERRED", "nodes": "0"})), "prefer:0");
    assert_eq!(numa_policy_with(json!({"mode": "MPOL_LOCAL"})), "local");
    assert_eq!(numa_policy_with(json!({"mode": "MPOL_DEFAULT"})), "default");
}

/// A policy the spec's rules refuse, and one only the kernel can refuse (a node this machine
/// does not have): both fail create, name the field, and leave nothing behind.
#[test]
fn bad_memory_policy_fails_create_and_leaves_nothing() {
    if !std::path::Path::new("/proc/self/numa_maps").exists() {
        return eprintln!("[skipped] memoryPolicy: the kernel has no NUMA support");
    }
    let missing =
        (0..4096).find(|n| !std::path::Path::new(&format!("/sys/devices/system/node/node{n}")).exists());
    let mut cases = vec![
        (json!({"mode": "MPOL_BIND", "nodes": "1-0"}), "linux.memoryPolicy.nodes"),
        (json!({"mode": "MPOL_INTERLEAVE"}), "linux.memoryPolicy.nodes"),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]}),
            "linux.memoryPolicy.flags",
        ),
    ];
    if let Some(n) = missing {
        cases.push((json!({"mode": "MPOL_BIND", "nodes": n.to_string()}), "set_mempolicy"));
    }
    for (i, (policy, want)) in cases.into_iter().enumerate() {
        let (mut env, _r) = env_of(&["touch", "/ran"]);
        env.config["linux"]["memoryPolicy"] = policy.clone();
        env.write_config();
        let id = format!("mpol-bad-{}-{i}", std::process::id());
        let out = env.create(&id);
        assert!(!out.status.success(), "{policy} was accepted");
        assert!(stderr(&out).contains(want), "{policy}: {}", stderr(&out));
        assert!(env.root_is_empty(), "{policy}: state left behind");
        assert_eq!(cgroup_dirs_named(&id), Vec::<std::path::PathBuf>::new(), "{policy}: cgroup left behind");
        assert!(!env.rootfs().join("ran").exists());
    }
}

#[test]
fn io_priority() {
    let (_e, out) = sh("ionice -p $$", |c| {
        c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 6});
    });
    let o = stdout(&out);
    assert!(o.contains("best-effort") && o.contains('6'), "{o} {}", stderr(&out));
}

#[test]
fn scheduler_batch_with_nice() {
    let (_e, out) = sh("cat /proc/self/stat", |c| {
        c["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 5});
    });
    // Fields after the command: state is field 3; nice is 19, policy is 41.
    let o = stdout(&out);
    let rest = &o[o.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    assert_eq!(f[19 - 3], "5", "nice: {o}");
    assert_eq!(f[41 - 3], "3", "policy SCHED_BATCH: {o}");
}

#[test]
fn exec_cpu_affinity_final() {
    let (_e, out) = sh("grep Cpus_allowed_list /proc/self/status", |c| {
        c["process"]["execCPUAffinity"] = json!({"initial": "0", "final": "0"});
    });
    assert!(stdout(&out).trim().ends_with("\t0"), "{}", stdout(&out));
}

#[test]
fn an_lsm_the_host_lacks_is_a_clear_error() {
    if native_only("the guest applies no AppArmor profile or SELinux label (its kernel has neither; guest_spec.rs drops them), so create does not fail") {
        return;
    }
    for (key, value) in
        [("apparmorProfile", "hull-test"), ("selinuxLabel", "system_u:system_r:container_t:s0")]
    {
        let enabled = match key {
            "apparmorProfile" => std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
                .map(|s| s.starts_with('Y'))
                .unwrap_or(false),
            _ => std::path::Path::new("/sys/fs/selinux/enforce").exists(),
        };
        if enabled {
            continue;
        }
        let mut env = Env::new(&["true"]);
        env.config["process"][key] = json!(value);
        env.write_config();
        let out = env.create("lsm");
        assert!(!out.status.success());
        assert!(stderr(&out).contains(key) && stderr(&out).contains("not enabled"), "{}", stderr(&out));
        assert!(env.root_is_empty());
    }
}

#[test]
fn a_missing_program_fails_create_with_its_name() {
    let env = Env::new(&["no-such-program"]);
    let out = env.create("np");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no-such-program"), "{}", stderr(&out));
    assert!(env.root_is_empty());
}

#[test]
fn env_and_cwd() {
    let (_e, out) = sh("pwd; echo $FOO", |c| {
        c["process"]["cwd"] = json!("/tmp");
        c["process"]["env"] = json!(["PATH=/bin", "FOO=bar baz"]);
    });
    assert_eq!(stdout(&out), "/tmp\nbar baz\n");
}

#[test]
fn only_preserved_fds_reach_the_program() {
    let env = Env::new(&["sh", "-c", "ls /proc/self/fd"]);
    let f = std::fs::File::open(env.bundle.join("config.json")).unwrap();
    let mut c = env.cmd(&["run", "--preserve-fds", "1", "--bundle", env.bundle.to_str().unwrap(), "fds"]);
    // The file becomes fd 3 of hull, and so of the program.
    as_fds(&mut c, &[f.as_raw_fd()]);
    let out = c.output().unwrap();
    let fds: Vec<String> = stdout(&out).split_whitespace().map(String::from).collect();
    // 0-2, the preserved 3, and ls's own directory fd: nothing of hull's (nor, on a VM, of the
    // guest agent's).
    assert!(fds.contains(&"3".to_string()), "{fds:?} {}", stderr(&out));
    assert!(fds.len() <= 5, "unexpected fds reached the program: {fds:?}");
}

use std::os::fd::{AsRawFd, OwnedFd};

/// A close-on-exec pipe (read end, write end): only the fds `as_fds` places reach hull.
fn pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap()
}

/// Bytes cross preserved fds as natively, on a VM through the relays: fd 3 a pipe the
/// program reads to its end (1 MiB), fd 4 a pipe it writes, fd 5 a connected socket it
/// answers on; the writes reach the caller before `run` returns, and each end of file is seen.
#[test]
fn preserved_fds_carry_bytes_both_ways() {
    use std::io::{BufRead, Read, Write};
    let script = "wc -c <&3; echo written >&4; read l <&5; echo \"echo $l\" >&5";
    let env = Env::new(&["sh", "-c", script]);
    let (in_r, in_w) = pipe();
    let (out_r, out_w) = pipe();
    let (sock, peer) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut c = env.cmd(&["run", "--preserve-fds", "3", "--bundle", env.bundle.to_str().unwrap(), "pfd-io"]);
    c.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    as_fds(&mut c, &[in_r.as_raw_fd(), out_w.as_raw_fd(), sock.as_raw_fd()]);
    let child = c.spawn().unwrap();
    drop((in_r, out_w, sock));
    let writer = std::thread::spawn(move || {
        let mut w = std::fs::File::from(in_w);
        let chunk: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
        for _ in 0..256 {
            w.write_all(&chunk).unwrap();
        }
    });
    let mut peer_w = peer.try_clone().unwrap();
    peer_w.write_all(b"ping\n").unwrap();
    let mut answer = String::new();
    std::io::BufReader::new(peer).read_line(&mut answer).unwrap();
    let mut written = String::new();
    std::fs::File::from(out_r).read_to_string(&mut written).unwrap();
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "1048576", "what the program read on fd 3; {}", stderr(&out));
    assert_eq!(written, "written\n", "what the program wrote on fd 4");
    assert_eq!(answer, "echo ping\n", "the program's answer on fd 5");
    assert!(env.root_is_empty(), "state left behind");
}

#[test]
fn listen_fds_are_passed_on() {
    let env = Env::new(&["sh", "-c", "echo $LISTEN_FDS $LISTEN_PID; ls /proc/self/fd"]);
    let f = std::fs::File::open(env.bundle.join("config.json")).unwrap();
    let mut c = env.cmd(&["run", "--bundle", env.bundle.to_str().unwrap(), "sd-listen"]);
    c.env("LISTEN_FDS", "1");
    as_fds(&mut c, &[f.as_raw_fd()]);
    let out = c.output().unwrap();
    let o = stdout(&out);
    let mut lines = o.lines();
    assert_eq!(lines.next(), Some("1 1"), "{o} {}", stderr(&out));
    let fds: Vec<&str> = o.split_whitespace().skip(2).collect();
    assert!(fds.contains(&"3"), "the socket activation fd reaches the program: {fds:?}");
}

/// Socket activation as systemd does it: a listening TCP socket at fd 3 and a listening unix
/// socket at fd 4, LISTEN_FDS=2; the program (this test binary, copied into the rootfs:
/// `common::accept_on_preserved_listeners`) accepts a connection on each and answers. On a VM each
/// connection to the host's listener becomes one to a listener of the guest's at that number.
#[test]
fn socket_activated_listeners_take_connections() {
    use std::io::{BufRead, Write};
    let mut env = Env::new(&["true"]);
    env.config["process"]["args"] = json!([
        "/hull-test-helper",
        "--exact",
        "common::accept_on_preserved_listeners",
        "--ignored",
        "--nocapture",
        "--test-threads=1"
    ]);
    env.write_config();
    install_test_binary(&env.rootfs(), "hull-test-helper");
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let unix_path = env.dir.join("activation.sock");
    let unix = std::os::unix::net::UnixListener::bind(&unix_path).unwrap();
    let mut c = env.cmd(&["run", "--bundle", env.bundle.to_str().unwrap(), "sd-accept"]);
    c.env("LISTEN_FDS", "2")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    as_fds(&mut c, &[tcp.as_raw_fd(), unix.as_raw_fd()]);
    let child = c.spawn().unwrap();
    // The listeners are the container's now; connections wait in their backlogs.
    let addr = tcp.local_addr().unwrap();
    drop((tcp, unix));
    let mut t = std::net::TcpStream::connect(addr).unwrap();
    let mut u = std::os::unix::net::UnixStream::connect(&unix_path).unwrap();
    t.write_all(b"over tcp\n").unwrap();
    u.write_all(b"over unix\n").unwrap();
    let (mut ta, mut ua) = (String::new(), String::new());
    std::io::BufReader::new(t).read_line(&mut ta).unwrap();
    std::io::BufReader::new(u).read_line(&mut ua).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(ta, "fd 3 accepted: over tcp\n", "{}{}", stdout(&out), stderr(&out));
    assert_eq!(ua, "fd 4 accepted: over unix\n", "{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A datagram socket cannot be relayed into a VM (its message boundaries): `run` on a VM
/// refuses it naming the fd, and leaves nothing; natively the program has it.
#[test]
fn a_preserved_datagram_socket_is_refused_on_a_vm_only() {
    let env = Env::new(&["sh", "-c", "ls -l /proc/self/fd/3"]);
    let (d, _peer) = std::os::unix::net::UnixDatagram::pair().unwrap();
    let mut c =
        env.cmd(&["run", "--preserve-fds", "1", "--bundle", env.bundle.to_str().unwrap(), "pfd-dgram"]);
    as_fds(&mut c, &[d.as_raw_fd()]);
    let out = c.output().unwrap();
    if on_vm() {
        assert!(!out.status.success(), "a VM container took a datagram socket");
        let err = stderr(&out);
        assert!(
            err.contains("--preserve-fds 1") && err.contains("preserved fd 3: a datagram socket"),
            "{err}"
        );
        assert!(env.root_is_empty(), "state left behind");
        return;
    }
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("socket:["), "{}", stdout(&out));
}

#[test]
fn notify_socket_is_passed_on() {
    let env = Env::new(&["sh", "-c", "echo $NOTIFY_SOCKET; stat -c '%F %i' $NOTIFY_SOCKET"]);
    let sock = env.dir.join("notify.sock");
    let _listener = std::os::unix::net::UnixDatagram::bind(&sock).unwrap();
    let out = env
        .cmd(&["run", "--bundle", env.bundle.to_str().unwrap(), "sd"])
        .env("NOTIFY_SOCKET", &sock)
        .output()
        .unwrap();
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata(&sock).unwrap().ino();
    let o = stdout(&out);
    assert!(o.starts_with("/run/notify/notify.sock\n"), "{o} {}", stderr(&out));
    assert!(o.contains(&format!("socket {ino}")), "the container sees the host's socket: {o}");
}

#[test]
fn terminal_through_a_console_socket() {
    let mut env = Env::new(&["sh", "-c", "tty; stty size; echo done"]);
    env.config["process"]["terminal"] = json!(true);
    env.config["process"]["consoleSize"] = json!({"height": 33, "width": 111});
    env.write_config();
    let sock = env.dir.join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let t = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let (name, master) = recv_fd(&conn);
        (master, name)
    });
    let out = env
        .cmd(&[
            "create",
            "--console-socket",
            sock.to_str().unwrap(),
            "--bundle",
            env.bundle.to_str().unwrap(),
            "tt",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let (master, name) = t.join().unwrap();
    assert_eq!(name, b"/dev/ptmx");
    assert!(env.hull(&["start", "tt"]).status.success());
    let got = read_until(std::fs::File::from(master), "done");
    assert!(got.contains("/dev/pts/0"), "{got}");
    assert!(got.contains("33 111"), "{got}");
}

/// A window size set on the console's master reaches the program's terminal while it runs
/// (natively the slave is the program's; on a VM the VMM gets SIGWINCH on its host pty and
/// sends the size to the guest's pty).
#[test]
fn a_window_size_change_reaches_the_running_program() {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let mut env = Env::new(&["sh", "-c", "while :; do stty size; sleep 0.2; done"]);
    env.config["process"]["terminal"] = json!(true);
    env.config["process"]["consoleSize"] = json!({"height": 33, "width": 111});
    env.write_config();
    let sock = env.dir.join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let t = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        recv_fd(&conn).1
    });
    let out = env
        .cmd(&[
            "create",
            "--console-socket",
            sock.to_str().unwrap(),
            "--bundle",
            env.bundle.to_str().unwrap(),
            "ws",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let master = std::fs::File::from(t.join().unwrap());
    let fd = master.as_raw_fd();
    // The reader runs apart so that every wait below has a deadline.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let mut reader = master.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(String::from_utf8_lossy(&buf[..n]).into_owned()).is_err() {
                break;
            }
        }
    });
    let wait_for = |want: &str, seen: &mut String| {
        let deadline = std::time::Instant::now() + patience(10);
        while !seen.contains(want) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(chunk) => seen.push_str(&chunk),
                Err(_) => break,
            }
        }
        seen.contains(want)
    };
    assert!(env.hull(&["start", "ws"]).status.success());
    let mut seen = String::new();
    assert!(wait_for("33 111", &mut seen), "the initial size: {seen:?}");
    let size = libc::winsize { ws_row: 40, ws_col: 120, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer, which lives across the call.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &size) };
    assert_eq!(rc, 0, "TIOCSWINSZ on the master: {}", std::io::Error::last_os_error());
    seen.clear();
    assert!(wait_for("40 120", &mut seen), "the new size never reached the program: {seen:?}");
}

#[test]
fn terminal_without_console_socket_fails_create() {
    let mut env = Env::new(&["true"]);
    env.config["process"]["terminal"] = json!(true);
    env.write_config();
    let out = env.create("nt");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("console-socket"), "{}", stderr(&out));
    assert!(env.root_is_empty());
}
