//! linux.seccomp through the real binary: busybox containers under real filters, each result
//! read from what the program inside saw (its errno's message, its exit signal, the Seccomp
//! line of /proc/self/status), and a seccomp agent at listenerPath written here.

mod common;
use common::fdpass::recv_fd;
use common::*;

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

// ---- helpers ----

/// `hull [global...] run` of the bundle, with a deadline.
fn run(env: &Env, global: &[&str], id: &str) -> Output {
    let mut c = Command::new(HULL);
    c.args(global).arg("--root").arg(&env.root).args(["run", "--bundle", env.bundle.to_str().unwrap(), id]);
    run_bounded(&env.dir, c, None, 30)
}

/// A container running `sh -c script` under `seccomp`.
fn env_with(script: &str, seccomp: Value) -> Env {
    let mut env = Env::new(&["sh", "-c", script]);
    env.config["linux"]["seccomp"] = seccomp;
    env.write_config();
    env
}

fn both(o: &Output) -> String {
    format!("{}{}", stdout(o), stderr(o))
}

const PODMAN_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
];

const PROFILE: &str = "/usr/share/containers/seccomp.json";

/// Go's name for this machine, which the profile's includes/excludes use.
fn go_arch() -> &'static str {
    if cfg!(target_arch = "x86_64") {
        "amd64"
    } else if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        std::env::consts::ARCH
    }
}

fn scmp_arch() -> &'static str {
    if cfg!(target_arch = "x86_64") {
        "SCMP_ARCH_X86_64"
    } else if cfg!(target_arch = "aarch64") {
        "SCMP_ARCH_AARCH64"
    } else {
        "SCMP_ARCH_NATIVE"
    }
}

fn kernel_at_least(want: &str) -> bool {
    let rel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let nums =
        |s: &str| -> Vec<u32> { s.split(['.', '-']).take(2).map(|p| p.parse().unwrap_or(0)).collect() };
    nums(rel.trim()) >= nums(want)
}

/// Turns containers-common's profile (Docker's format: archMap, includes/excludes by
/// capability, arch and kernel) into the OCI section for a container with `caps`, the way
/// podman and Docker do before they call the runtime.
fn oci_profile(caps: &[&str]) -> Value {
    let p: Value =
        serde_json::from_str(&std::fs::read_to_string(PROFILE).expect("read the profile")).unwrap();
    let mut archs = vec![json!(scmp_arch())];
    for m in p["archMap"].as_array().unwrap() {
        if m["architecture"] == scmp_arch() {
            archs.extend(m["subArchitectures"].as_array().unwrap().iter().cloned());
        }
    }
    let has = |list: &Value, f: &dyn Fn(&str) -> bool| {
        list.as_array().is_some_and(|a| a.iter().any(|v| f(v.as_str().unwrap_or(""))))
    };
    let all = |list: &Value, f: &dyn Fn(&str) -> bool| {
        list.as_array().is_none_or(|a| a.iter().all(|v| f(v.as_str().unwrap_or(""))))
    };
    let mut syscalls = vec![];
    for s in p["syscalls"].as_array().unwrap() {
        let (inc, exc) = (&s["includes"], &s["excludes"]);
        let arch_ok =
            inc["arches"].as_array().is_none_or(|a| a.is_empty() || a.iter().any(|x| x == go_arch()));
        if !arch_ok || !all(&inc["caps"], &|c| caps.contains(&c)) {
            continue;
        }
        if let Some(k) = inc["minKernel"].as_str() {
            if !kernel_at_least(k) {
                continue;
            }
        }
        if has(&exc["arches"], &|a| a == go_arch()) || has(&exc["caps"], &|c| caps.contains(&c)) {
            continue;
        }
        let mut e = json!({"names": s["names"], "action": s["action"]});
        if let Some(r) = s.get("errnoRet") {
            e["errnoRet"] = r.clone();
        }
        if s["args"].as_array().is_some_and(|a| !a.is_empty()) {
            e["args"] = s["args"].clone();
        }
        syscalls.push(e);
    }
    let mut out = json!({"defaultAction": p["defaultAction"], "architectures": archs, "syscalls": syscalls});
    if let Some(r) = p.get("defaultErrnoRet") {
        out["defaultErrnoRet"] = r.clone();
    }
    out
}

fn caps_json(caps: &[&str]) -> Value {
    json!({"bounding": caps, "effective": caps, "permitted": caps})
}

// ---- the real default profile ----

/// busybox works as usual under the containers-common profile, and what the profile denies
/// is denied: swapon is on its EPERM list, sethostname is EPERM without CAP_SYS_ADMIN; its
/// rules with args let personality(PER_LINUX32) and a netlink route socket through.
#[test]
fn containers_common_profile() {
    if !Path::new(PROFILE).exists() {
        panic!("{PROFILE} is missing: apt-get install golang-github-containers-common");
    }
    let script = "echo hello; ls /; cat /etc/group; echo a b c | wc -w; mkdir -p /tmp/d && touch /tmp/d/f && ls /tmp/d; \
        id -u; grep -E '^Seccomp:' /proc/self/status; linux32 uname -m; ip link show lo; \
        hostname other; echo hostname=$?; swapon /dev/null; echo swapon=$?; \
        chroot / true; echo chroot=$?";
    let mut env = env_with(script, oci_profile(PODMAN_CAPS));
    env.config["process"]["capabilities"] = caps_json(PODMAN_CAPS);
    env.write_config();
    let o = run(&env, &[], "cc");
    let out = both(&o);
    assert!(o.status.success(), "{out}");
    for want in ["hello\n", "bin\n", "root:x:0:\n", "3\n", "f\n", "Seccomp:\t2\n"] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    // personality(PER_LINUX32) is one of the values the profile allows.
    assert!(out.contains("i686") || out.contains("armv"), "linux32: {out}");
    assert!(out.contains(": lo: <LOOPBACK"), "ip link: {out}");
    assert!(out.contains("sethostname: Operation not permitted") && out.contains("hostname=1"), "{out}");
    assert!(out.contains("swapon: /dev/null: Operation not permitted") && out.contains("swapon=1"), "{out}");
    // chroot is allowed with CAP_SYS_CHROOT.
    assert!(out.contains("chroot=0"), "{out}");
}

/// Without CAP_SYS_CHROOT the same profile turns chroot into EPERM (its excludes rule), and
/// personality values it does not list are refused.
#[test]
fn containers_common_profile_follows_capabilities() {
    let caps: Vec<&str> = PODMAN_CAPS.iter().copied().filter(|c| *c != "CAP_SYS_CHROOT").collect();
    let mut env = env_with("chroot / true; echo chroot=$?; echo done", oci_profile(&caps));
    env.config["process"]["capabilities"] = caps_json(&caps);
    env.write_config();
    let o = run(&env, &[], "cc2");
    let out = both(&o);
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(out.contains("chroot=1") && out.contains("done"), "{out}");
}

/// A non-root user without noNewPrivileges: the filter must go in before the user switch
/// drops CAP_SYS_ADMIN (as runc does), and the rest of the setup must work under it.
#[test]
fn profile_with_non_root_user_and_without_no_new_privileges() {
    for nnp in [false, true] {
        let mut env = env_with(
            "id -u; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; hostname x",
            oci_profile(PODMAN_CAPS),
        );
        env.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        env.config["process"]["noNewPrivileges"] = json!(nnp);
        env.config["process"]["capabilities"] = caps_json(PODMAN_CAPS);
        env.write_config();
        let o = run(&env, &[], &format!("user{nnp}"));
        let out = both(&o);
        assert!(out.contains("1000\n"), "nnp={nnp}: {out}");
        assert!(out.contains("Seccomp:\t2\n"), "nnp={nnp}: {out}");
        assert!(out.contains(&format!("NoNewPrivs:\t{}\n", nnp as u8)), "nnp={nnp}: {out}");
        assert!(out.contains("sethostname: Operation not permitted"), "nnp={nnp}: {out}");
    }
}

// ---- hand-written filters ----

/// What busybox's sh, echo, cat and friends need (static glibc, x86_64 and aarch64 names;
/// names unknown here are skipped).
const BASICS: &[&str] = &[
    "read",
    "write",
    "writev",
    "open",
    "openat",
    "close",
    "fstat",
    "newfstatat",
    "stat",
    "lstat",
    "statx",
    "lseek",
    "mmap",
    "mprotect",
    "munmap",
    "brk",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "ioctl",
    "pread64",
    "access",
    "faccessat",
    "faccessat2",
    "pipe",
    "pipe2",
    "dup",
    "dup2",
    "dup3",
    "getpid",
    "getppid",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "gettid",
    "clone",
    "clone3",
    "fork",
    "vfork",
    "execve",
    "exit",
    "exit_group",
    "wait4",
    "kill",
    "uname",
    "fcntl",
    "getcwd",
    "chdir",
    "getdents64",
    "readlink",
    "readlinkat",
    "arch_prctl",
    "set_tid_address",
    "set_robust_list",
    "rseq",
    "prlimit64",
    "getrandom",
    "futex",
    "sysinfo",
    "umask",
    "setpgid",
    "getpgrp",
    "getpgid",
    "setsid",
    "madvise",
    "poll",
    "ppoll",
    "pselect6",
    "select",
    "nanosleep",
    "clock_gettime",
    "clock_nanosleep",
    "sigaltstack",
    "tgkill",
    "getrlimit",
    "getgroups",
];

/// defaultAction ERRNO (EPERM when no defaultErrnoRet) with an allow-list: what is listed
/// works, the rest fails with EPERM.
#[test]
fn allow_list_with_default_errno() {
    let env = env_with(
        "echo hi; cat /etc/group; mkdir /tmp/x; echo mkdir=$?; hostname foo; echo hostname=$?",
        json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": BASICS, "action": "SCMP_ACT_ALLOW"}]}),
    );
    let o = run(&env, &[], "allow");
    let out = both(&o);
    assert!(out.contains("hi\n") && out.contains("root:x:0:"), "{out}");
    assert!(out.contains("mkdir: can't create directory '/tmp/x': Operation not permitted"), "{out}");
    assert!(out.contains("mkdir=1") && out.contains("hostname=1"), "{out}");
    assert!(out.contains("sethostname: Operation not permitted"), "{out}");
}

/// defaultErrnoRet picks the default's errno.
#[test]
fn default_errno_ret() {
    let env = env_with(
        "mkdir /tmp/x; echo mkdir=$?",
        json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 28,
               "syscalls": [{"names": BASICS, "action": "SCMP_ACT_ALLOW"}]}),
    );
    let out = both(&run(&env, &[], "deferrno"));
    assert!(out.contains("No space left on device") && out.contains("mkdir=1"), "{out}");
}

fn deny_mkdir(action: &str, errno: Option<u32>) -> Value {
    let mut rule = json!({"names": ["mkdir", "mkdirat"], "action": action});
    if let Some(e) = errno {
        rule["errnoRet"] = json!(e);
    }
    json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]})
}

/// ERRNO with errnoRet: the program sees that errno; without errnoRet it sees EPERM.
#[test]
fn errno_action_with_errno_ret() {
    let env = env_with("mkdir /tmp/x; echo mkdir=$?; ls -d /tmp/x", deny_mkdir("SCMP_ACT_ERRNO", Some(18)));
    let out = both(&run(&env, &[], "errnoret"));
    assert!(out.contains("mkdir: can't create directory '/tmp/x': Invalid cross-device link"), "{out}");
    assert!(out.contains("mkdir=1") && out.contains("No such file"), "{out}");
    let env = env_with("mkdir /tmp/x; echo mkdir=$?", deny_mkdir("SCMP_ACT_ERRNO", None));
    let out = both(&run(&env, &[], "errnodef"));
    assert!(out.contains("Operation not permitted") && out.contains("mkdir=1"), "{out}");
}

/// The killing actions end the program with SIGSYS: `hull run` exits 128+31, and a shell
/// sees its child die of signal 31.
#[test]
fn kill_actions_end_the_program_with_sigsys() {
    for action in ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP"] {
        let mut env = Env::new(&["mkdir", "/tmp/x"]);
        env.config["linux"]["seccomp"] = deny_mkdir(action, None);
        env.write_config();
        let o = run(&env, &[], "kill");
        assert_eq!(o.status.code(), Some(159), "{action}: {}", both(&o));
        let env = env_with("mkdir /tmp/x; echo status=$?", deny_mkdir(action, None));
        let out = both(&run(&env, &[], "killsh"));
        assert!(out.contains("status=159"), "{action}: {out}");
    }
}

/// TRACE without a tracer: the syscall fails with ENOSYS (seccomp(2)).
#[test]
fn trace_without_a_tracer_is_enosys() {
    let env = env_with("mkdir /tmp/x; echo mkdir=$?", deny_mkdir("SCMP_ACT_TRACE", Some(3)));
    let out = both(&run(&env, &[], "trace"));
    assert!(out.contains("Function not implemented") && out.contains("mkdir=1"), "{out}");
}

/// LOG allows the syscall (and logs it to the audit log); the filter flags are accepted.
#[test]
fn log_action_and_flags() {
    let mut s = deny_mkdir("SCMP_ACT_LOG", None);
    s["flags"] =
        json!(["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC"]);
    s["syscalls"].as_array_mut().unwrap().push(json!({"names": ["sethostname"], "action": "SCMP_ACT_ERRNO"}));
    let env = env_with("mkdir /tmp/x && ls -d /tmp/x; hostname y; grep -E '^Seccomp:' /proc/self/status", s);
    let o = run(&env, &[], "log");
    let out = both(&o);
    assert!(out.contains("/tmp/x\n"), "{out}");
    assert!(out.contains("sethostname: Operation not permitted"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
}

/// A rule with args applies only when they match: busybox's linux32 calls personality(8),
/// linux64 personality(0). Every operator, and valueTwo for MASKED_EQ.
#[test]
fn rules_with_args_every_operator() {
    // (op, value, valueTwo, linux32 denied, linux64 denied)
    let cases: &[(&str, u64, u64, bool, bool)] = &[
        ("SCMP_CMP_EQ", 8, 0, true, false),
        ("SCMP_CMP_NE", 8, 0, false, true),
        ("SCMP_CMP_LT", 8, 0, false, true),
        ("SCMP_CMP_LE", 0, 0, false, true),
        ("SCMP_CMP_GT", 0, 0, true, false),
        ("SCMP_CMP_GE", 8, 0, true, false),
        ("SCMP_CMP_MASKED_EQ", 0x8, 0x8, true, false),
        ("SCMP_CMP_MASKED_EQ", 0xff, 0, false, true),
        // 64-bit values: personality(8) is not 2^32 + 8.
        ("SCMP_CMP_EQ", 0x1_0000_0008, 0, false, false),
        ("SCMP_CMP_LT", 0x1_0000_0000, 0, true, true),
    ];
    for (i, (op, value, two, d32, d64)) in cases.iter().enumerate() {
        let env = env_with(
            "linux32 echo ran32; linux64 echo ran64",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{
                "names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                "args": [{"index": 0, "value": value, "valueTwo": two, "op": op}]}]}),
        );
        let out = both(&run(&env, &[], &format!("args{i}")));
        assert_eq!(!out.contains("ran32"), *d32, "{op} {value:#x}: {out}");
        assert_eq!(!out.contains("ran64"), *d64, "{op} {value:#x}: {out}");
        if *d32 || *d64 {
            assert!(out.contains("Permission denied"), "{op}: {out}");
        }
    }
}

/// Unknown syscall names are skipped (shown with --debug), the known ones still apply.
#[test]
fn unknown_syscall_names_are_skipped() {
    let env = env_with(
        "mkdir /tmp/x; echo mkdir=$?",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["hull_no_such_syscall", "mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}),
    );
    let o = run(&env, &["--debug"], "unknown");
    let out = both(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("Operation not permitted") && out.contains("mkdir=1"), "{out}");
    assert!(out.contains("hull_no_such_syscall"), "the --debug line: {out}");
}

/// Bad seccomp input fails `run` with a message naming it, and leaves nothing behind.
#[test]
fn bad_input_is_refused() {
    let cases = [
        (json!({"defaultAction": "SCMP_ACT_BOGUS"}), "SCMP_ACT_BOGUS"),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
            "listenerPath",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}]}),
            "errnoRet 70000",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_BOGUS"}]}]}),
            "SCMP_CMP_BOGUS",
        ),
    ];
    for (i, (s, want)) in cases.into_iter().enumerate() {
        let env = env_with("echo should-not-run", s);
        let o = run(&env, &[], &format!("bad{i}"));
        assert!(!o.status.success(), "{want}: {}", both(&o));
        assert!(stderr(&o).contains(want), "{want}: {}", both(&o));
        assert!(!stdout(&o).contains("should-not-run"));
        assert!(env.root_is_empty(), "{want}: state left behind");
    }
}

/// `hull exec` puts the container's filter on the new process too (as runc does).
#[test]
fn exec_gets_the_container_filter() {
    let env = env_with("sleep 1000", deny_mkdir("SCMP_ACT_ERRNO", Some(18)));
    let o = env.create("ex");
    assert!(o.status.success(), "create: {}", stderr(&o));
    assert!(env.hull(&["start", "ex"]).status.success());
    let mut c = Command::new(HULL);
    c.arg("--root").arg(&env.root).args([
        "exec",
        "ex",
        "sh",
        "-c",
        "mkdir /tmp/x; echo mkdir=$?; grep -E '^Seccomp:' /proc/self/status",
    ]);
    let o = run_bounded(&env.dir, c, None, 30);
    let out = both(&o);
    assert!(out.contains("Invalid cross-device link") && out.contains("mkdir=1"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    let _ = env.hull(&["delete", "--force", "ex"]);
}

// ---- SCMP_ACT_NOTIFY and the seccomp agent ----

/// A seccomp agent: takes the listener, then answers notifications: the first mkdir gets
/// EXDEV without running, later ones run (SECCOMP_USER_NOTIF_FLAG_CONTINUE).
fn agent(listener: UnixListener, stop: Arc<AtomicBool>) -> (Value, Vec<i32>) {
    let (conn, _) = listener.accept().unwrap();
    let (msg, fd) = recv_fd(&conn);
    let state: Value = serde_json::from_slice(&msg).expect("the agent gets JSON");
    let mkdirs: Vec<i64> = ["mkdir", "mkdirat"].iter().filter_map(|n| sysno(n)).collect();
    let mut answers = vec![];
    while !stop.load(Ordering::SeqCst) {
        let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one pollfd that lives on this stack frame.
        let r = unsafe { libc::poll(&mut pfd, 1, 50) };
        if r <= 0 {
            continue;
        }
        if pfd.revents & libc::POLLIN == 0 {
            break; // POLLHUP: every filtered process is gone.
        }
        // SAFETY: seccomp_notif is plain data; the kernel wants it zeroed.
        let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: the ioctl fills `req`, which is the size SECCOMP_IOCTL_NOTIF_RECV names.
        if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV as _, &mut req) } != 0 {
            continue;
        }
        let is_mkdir = mkdirs.contains(&i64::from(req.data.nr));
        let first = is_mkdir && !answers.contains(&libc::EXDEV);
        let resp = libc::seccomp_notif_resp {
            id: req.id,
            val: 0,
            error: if first { -libc::EXDEV } else { 0 },
            flags: if first { 0 } else { libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32 },
        };
        answers.push(if first { libc::EXDEV } else { 0 });
        let mut resp = resp;
        // SAFETY: `resp` is the struct SECCOMP_IOCTL_NOTIF_SEND names.
        unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND as _, &mut resp) };
    }
    (state, answers)
}

fn sysno(name: &str) -> Option<i64> {
    match name {
        #[cfg(target_arch = "x86_64")]
        "mkdir" => Some(libc::SYS_mkdir),
        "mkdirat" => Some(libc::SYS_mkdirat),
        _ => None,
    }
}

/// NOTIFY with listenerPath: the agent gets the listener fd and the container process state
/// (seccompFd, the init's pid, the metadata, the OCI state), and its answers are what the
/// program's syscalls return.
#[test]
fn notify_sends_the_listener_to_the_agent() {
    let mut env =
        Env::new(&["sh", "-c", "mkdir /tmp/a; echo first=$?; mkdir /tmp/b; echo second=$?; ls -d /tmp/b"]);
    let sock_path = env.dir.join("agent.sock");
    let listener = UnixListener::bind(&sock_path).unwrap();
    env.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock_path,
        "listenerMetadata": "hull-test-metadata",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    });
    env.write_config();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let agent = std::thread::spawn(move || agent(listener, stop2));

    let o = env.create("nt");
    assert!(o.status.success(), "create: {}", stderr(&o));
    let pid = env.state("nt")["pid"].as_i64().unwrap();
    let o = env.hull(&["start", "nt"]);
    assert!(o.status.success(), "start: {}", stderr(&o));
    env.wait_status("nt", "stopped");
    stop.store(true, Ordering::SeqCst);
    let (state, answers) = agent.join().unwrap();

    assert_eq!(state["fds"], json!(["seccompFd"]), "{state}");
    assert_eq!(state["pid"].as_i64(), Some(pid), "{state}");
    assert_eq!(state["metadata"], "hull-test-metadata", "{state}");
    assert!(state["ociVersion"].is_string(), "{state}");
    assert_eq!(state["state"]["id"], "nt", "{state}");
    assert_eq!(state["state"]["status"], "creating", "{state}");
    assert_eq!(state["state"]["pid"].as_i64(), Some(pid), "{state}");

    let out = format!(
        "{}{}",
        env.container_stdout("nt"),
        std::fs::read_to_string(env.dir.join("nt.err")).unwrap_or_default()
    );
    assert!(out.contains("Invalid cross-device link") && out.contains("first=1"), "{out}");
    assert!(out.contains("second=0") && out.contains("/tmp/b\n"), "{out}");
    assert!(answers.contains(&libc::EXDEV) && answers.contains(&0), "{answers:?}");
    let _ = env.hull(&["delete", "nt"]);
}

/// An agent that cannot be reached fails `create`, and nothing is left behind.
#[test]
fn notify_without_an_agent_fails_create() {
    let mut env = Env::new(&["true"]);
    env.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": env.dir.join("nobody-listens.sock"),
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    });
    env.write_config();
    let o = run(&env, &[], "noagent");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("seccomp agent"), "{}", stderr(&o));
    assert!(env.root_is_empty(), "state left behind");
}
