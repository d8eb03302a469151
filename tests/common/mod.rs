//! Shared test harness: real busybox bundles, the real hull binary, a private --root per test.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{json, Value};

pub mod cgroup_ro;
mod check;
pub mod fdpass;
// Each suite is its own crate and uses some of these, not all.
#[allow(unused_imports)]
pub use check::*;

pub const HULL: &str = env!("CARGO_BIN_EXE_hull");

/// The environment variable that picks the backend of every container the tests make:
/// `vm` makes each a VM container (integration/testvm/run-tests.sh --backend vm sets it in the
/// test machine, with HULL_KERNEL); unset, empty or `native`, the native backend.
pub const BACKEND_ENV: &str = "HULL_TEST_BACKEND";

/// True when the tests' containers are VM containers ([`BACKEND_ENV`] is `vm`).
pub fn on_vm() -> bool {
    match std::env::var(BACKEND_ENV).as_deref() {
        Ok("vm") => true,
        Ok("" | "native") | Err(_) => false,
        Ok(other) => panic!("{BACKEND_ENV}={other}: native or vm"),
    }
}

/// How many times longer the tests wait on the vm backend: a VM container boots its guest in
/// `create`, which in the emulated test machine under load takes tens of seconds.
pub const VM_PATIENCE: u32 = 4;

/// `secs`, stretched by [`VM_PATIENCE`] on the vm backend: every deadline the tests set.
pub fn patience(secs: u64) -> std::time::Duration {
    let d = std::time::Duration::from_secs(secs);
    if on_vm() {
        d * VM_PATIENCE
    } else {
        d
    }
}

/// For a test whose expectation cannot hold for a VM container: true (the test returns at
/// once) on the vm backend, after printing `why`. Each use is listed in docs/vm.md, "Tests on
/// the vm backend".
/// With HULL_TEST_SKIP_LOG naming a file, a line `TEST: why` is appended to it, which
/// run-tests.sh prints after the run (libtest shows a passing test's output to no one).
pub fn native_only(why: &str) -> bool {
    if !on_vm() {
        return false;
    }
    skipped(&format!("skipped on the vm backend: {why}"));
    true
}

/// Says that the calling test skips, and why (a host that lacks what it needs): on stderr
/// and, with HULL_TEST_SKIP_LOG, in that file, which run-tests.sh prints after the run.
pub fn skipped(why: &str) {
    let test = std::thread::current().name().unwrap_or("?").to_string();
    eprintln!("[test] {test}: {why}");
    if let Some(log) = std::env::var_os("HULL_TEST_SKIP_LOG") {
        use std::io::Write;
        let line = format!("{test}: {why}\n");
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&log);
        let _ = file.and_then(|mut f| f.write_all(line.as_bytes()));
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Where busybox-static puts its binary on Debian.
pub fn busybox() -> PathBuf {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("busybox-static is not installed (apt-get install busybox-static)");
}

/// One test's sandbox: a temp dir holding a bundle and a private state root.
pub struct Env {
    pub dir: PathBuf,
    pub root: PathBuf,
    pub bundle: PathBuf,
    pub config: Value,
}

impl Env {
    /// A bundle whose rootfs holds busybox and whose config runs `args`.
    pub fn new(args: &[&str]) -> Env {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("hull-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let bundle = dir.join("bundle");
        let root = dir.join("state");
        make_rootfs(&bundle.join("rootfs"));
        let config = default_config(args);
        let env = Env { dir, root, bundle, config };
        env.write_config();
        env
    }

    pub fn rootfs(&self) -> PathBuf {
        self.bundle.join("rootfs")
    }

    /// Writes `self.config` to the bundle's config.json.
    pub fn write_config(&self) {
        std::fs::write(self.bundle.join("config.json"), serde_json::to_vec_pretty(&self.config).unwrap())
            .unwrap();
    }

    /// `hull --root <root> ARGS`, with stdio captured.
    pub fn hull(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run hull")
    }

    /// The command, to adjust stdio before running it.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(HULL);
        c.arg("--root").arg(&self.root).args(args);
        c
    }

    /// `hull create` with the container's stdio sent to files in the test dir, so the
    /// caller does not wait on a pipe the container keeps open.
    pub fn create(&self, id: &str) -> Output {
        let out = std::fs::File::create(self.dir.join(format!("{id}.out"))).unwrap();
        let err = std::fs::File::create(self.dir.join(format!("{id}.err"))).unwrap();
        let mut c = self.cmd(&["create", "--bundle", self.bundle.to_str().unwrap(), id]);
        c.stdin(Stdio::null()).stdout(out).stderr(err);
        let status = c.status().expect("run hull create");
        Output {
            status,
            stdout: std::fs::read(self.dir.join(format!("{id}.out"))).unwrap_or_default(),
            stderr: std::fs::read(self.dir.join(format!("{id}.err"))).unwrap_or_default(),
        }
    }

    /// What the container wrote to stdout so far (for containers made by [`Env::create`]).
    pub fn container_stdout(&self, id: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{id}.out"))).unwrap_or_default()
    }

    /// `hull run` in the foreground with output captured.
    pub fn run(&self, id: &str) -> Output {
        let mut c = self.cmd(&["run", "--bundle", self.bundle.to_str().unwrap(), id]);
        c.stdin(Stdio::null());
        c.output().expect("run hull run")
    }

    /// The parsed output of `hull state`.
    pub fn state(&self, id: &str) -> Value {
        let out = self.hull(&["state", id]);
        assert!(out.status.success(), "state {id}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("state prints JSON")
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap_or("").to_string()
    }

    /// Waits (up to 10 s, [`patience`]) for the container to reach `want`.
    pub fn wait_status(&self, id: &str, want: &str) {
        let deadline = std::time::Instant::now() + patience(10);
        while std::time::Instant::now() < deadline {
            if self.status(id) == want {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("container {id} never became {want}: {}", self.status(id));
    }

    /// True when no container directory is left under the root.
    pub fn root_is_empty(&self) -> bool {
        match std::fs::read_dir(&self.root) {
            Ok(mut d) => d.next().is_none(),
            Err(_) => true,
        }
    }

    /// What is left in the state root, for a failed `root_is_empty` to show.
    pub fn root_left(&self) -> String {
        match std::fs::read_dir(&self.root) {
            Ok(d) => {
                let names: Vec<String> =
                    d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
                format!("left in {}: {names:?}", self.root.display())
            }
            Err(e) => format!("{}: {e}", self.root.display()),
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Best effort: kill and delete whatever a failed test left, then the files.
        if let Ok(entries) = std::fs::read_dir(&self.root) {
            for e in entries.flatten() {
                let id = e.file_name().to_string_lossy().to_string();
                let _ = self.cmd(&["delete", "--force", &id]).output();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// A minimal root filesystem: busybox and its applets, /etc/passwd and /etc/group.
pub fn make_rootfs(rootfs: &Path) {
    for d in ["bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "root", "home", "var", "usr/bin"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    let bb = rootfs.join("bin/busybox");
    std::fs::copy(busybox(), &bb).unwrap();
    let list = Command::new(busybox()).arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let link = rootfs.join("bin").join(applet);
        if applet != "busybox" && !link.exists() {
            std::os::unix::fs::symlink("busybox", link).unwrap();
        }
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .unwrap();
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
}

/// runc's default config, with `args` as the program; on the vm backend ([`on_vm`]) with the
/// annotation that makes it a VM container, so that every later command reads the backend
/// from the state and needs no flag.
pub fn default_config(args: &[&str]) -> Value {
    let mut config = runc_config(args);
    if on_vm() {
        config["annotations"] = json!({"hull.backend": "vm"});
    }
    config
}

fn runc_config(args: &[&str]) -> Value {
    json!({
        "ociVersion": "1.2.0",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "hull-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]}
        ],
        "linux": {
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}
            ],
            "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/proc/scsi"],
            "readonlyPaths": ["/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq",
                "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

// ---- shared by the test files: bounded commands, process lookups, leftover reaping ----

static CMD_SEQ: AtomicUsize = AtomicUsize::new(0);

/// Runs `cmd` with its stdout and stderr in files under `dir` (so a container that inherited
/// them cannot keep us waiting for end-of-file), `stdin` written to it if given, and a
/// deadline of `secs` ([`patience`]): a command that hangs is killed and fails the test, its stderr saying so.
pub fn run_bounded(dir: &Path, cmd: Command, stdin: Option<&str>, secs: u64) -> Output {
    let n = CMD_SEQ.fetch_add(1, Ordering::SeqCst);
    run_bounded_to(cmd, dir.join(format!("cmd{n}.out")), dir.join(format!("cmd{n}.err")), stdin, secs)
}

/// [`run_bounded`] with the output going to the files `o` and `e`.
pub fn run_bounded_to(mut cmd: Command, o: PathBuf, e: PathBuf, stdin: Option<&str>, secs: u64) -> Output {
    let what = format!("{cmd:?}");
    cmd.stdout(std::fs::File::create(&o).unwrap()).stderr(std::fs::File::create(&e).unwrap());
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = cmd.spawn().expect("spawn");
    if let Some(text) = stdin {
        use std::io::Write;
        let mut si = child.stdin.take().unwrap();
        si.write_all(text.as_bytes()).unwrap();
    }
    let deadline = std::time::Instant::now() + patience(secs);
    let secs = patience(secs).as_secs();
    let (status, stuck) = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break (s, None);
        }
        if std::time::Instant::now() > deadline {
            let stuck = describe_tree(child.id() as i32);
            let _ = child.kill();
            break (child.wait().unwrap(), Some(stuck));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let mut stderr = std::fs::read(&e).unwrap_or_default();
    if let Some(stuck) = stuck {
        stderr.extend_from_slice(
            format!("\n[test] {what} hung: killed after {secs} s; then:\n{stuck}").as_bytes(),
        );
    }
    Output { status, stdout: std::fs::read(&o).unwrap_or_default(), stderr }
}

/// `pid` and its descendants, a line for each thread: its name, state, where it sleeps and
/// the CPU time it used. Printed when a command hangs, to tell a deadlock (every thread asleep)
/// from a guest that spins or stalls (a VMM's vcpu thread running, its time growing).
pub fn describe_tree(pid: i32) -> String {
    let parent_of = |p: i32| -> Option<i32> {
        let text = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
        text[text.rfind(')')? + 1..].split_whitespace().nth(1)?.parse().ok()
    };
    let pids = all_pids();
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(pids.iter().copied().filter(|&c| parent_of(c) == Some(p)));
        i += 1;
    }
    let mut out = String::new();
    for p in tree {
        out += &format!("  [{p}] {}\n", cmdline(p).chars().take(160).collect::<String>());
        let tasks = std::fs::read_dir(format!("/proc/{p}/task")).into_iter().flatten().flatten();
        for t in tasks {
            let dir = t.path();
            let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
            let stat = read("stat");
            let fields: Vec<&str> =
                stat.rfind(')').map(|e| stat[e + 1..].split_whitespace().collect()).unwrap_or_default();
            let field = |n: usize| fields.get(n).copied().unwrap_or("?");
            out += &format!(
                "    {} {}: state {} wchan {} utime {} stime {} (ticks)\n",
                t.file_name().to_string_lossy(),
                read("comm").trim(),
                field(0),
                read("wchan"),
                field(11),
                field(12)
            );
        }
    }
    out
}

/// A process's command line, NULs as spaces.
pub fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " ").trim_end().to_string())
        .unwrap_or_default()
}

/// Every pid in /proc.
pub fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect()
}

/// A process's start time (field 22 of /proc/<pid>/stat).
pub fn start_time(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    text[text.rfind(')')? + 1..].split_whitespace().nth(19)?.parse().ok()
}

/// Declared after the [`Env`], so it drops first: SIGKILLs whatever a failed test left (hull
/// commands naming this root, and container inits recorded in it), so that the Env's own
/// `delete --force` cannot block on them.
pub struct Reaper(pub PathBuf);

impl Drop for Reaper {
    fn drop(&mut self) {
        let root = self.0.to_str().unwrap().to_string();
        let me = std::process::id() as i32;
        for p in all_pids() {
            if p != me && cmdline(p).contains(&root) {
                // SAFETY: kill(2) with plain integers.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
        }
        for e in std::fs::read_dir(&self.0).into_iter().flatten().flatten() {
            let Ok(text) = std::fs::read(e.path().join("state.json")) else { continue };
            let Ok(st) = serde_json::from_slice::<Value>(&text) else { continue };
            let pid = st["pid"].as_i64().unwrap_or(0) as i32;
            if pid > 0
                && pid != me
                && start_time(pid).is_some()
                && start_time(pid) == st["pid_start"].as_u64()
            {
                // SAFETY: as above.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

/// Directories named `id` in the host's cgroup hierarchies (up to four levels down): what a
/// container's cgroup would leave behind.
pub fn cgroup_dirs_named(id: &str) -> Vec<PathBuf> {
    fn walk(d: &Path, id: &str, depth: usize, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(d) else { return };
        for e in entries.flatten() {
            if !e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            let p = e.path();
            if e.file_name().to_str() == Some(id) {
                out.push(p.clone());
            }
            if depth > 1 {
                walk(&p, id, depth - 1, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), id, 5, &mut out);
    out
}

/// An [`Env`] with its [`Reaper`]: keep both (`let (env, _r) = env_of(..)`).
pub fn env_of(args: &[&str]) -> (Env, Reaper) {
    let env = Env::new(args);
    let r = Reaper(env.root.clone());
    (env, r)
}

/// Reads a terminal's master until `needle` has come (or the stream ends): what it got.
pub fn read_until(mut f: impl std::io::Read, needle: &str) -> String {
    let (mut got, mut buf) = (String::new(), [0u8; 1024]);
    while !got.contains(needle) {
        match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    got
}

/// Copies this test binary into `rootfs` as `/NAME`, with the shared libraries it has mapped
/// (and the dynamic loader at the path the binary names), so that a container can run one of
/// its ignored tests as a helper program.
pub fn install_test_binary(rootfs: &Path, name: &str) {
    std::fs::copy("/proc/self/exe", rootfs.join(name)).unwrap();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let mut libs: Vec<&str> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.starts_with('/') && p.contains(".so"))
        .collect();
    libs.sort();
    libs.dedup();
    for lib in libs.iter().copied().chain(["/lib64/ld-linux-x86-64.so.2"]) {
        if !Path::new(lib).exists() {
            continue;
        }
        let dest = rootfs.join(lib.trim_start_matches('/'));
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        if !dest.exists() {
            std::fs::copy(lib, &dest).unwrap();
        }
    }
}

/// Not a test of its own: the program that tests of preserved listeners run in their
/// container (the test binary, put there by [`install_test_binary`]). Accepts one connection on
/// each fd of ACCEPT_ON (comma-separated), else of 3..3+LISTEN_FDS, reads a line from it and
/// answers naming the fd.
#[test]
#[ignore = "a program the preserved-listener tests run in their container"]
fn accept_on_preserved_listeners() {
    use std::io::{BufRead, Write};
    use std::os::fd::FromRawFd;
    let fds: Vec<i32> = match std::env::var("ACCEPT_ON") {
        Ok(list) => list.split(',').filter_map(|f| f.parse().ok()).collect(),
        Err(_) => match std::env::var("LISTEN_FDS").ok().and_then(|v| v.parse::<i32>().ok()) {
            Some(n) => (3..3 + n).collect(),
            None => return,
        },
    };
    for fd in fds {
        // SAFETY: accept on an fd this process was given; the new fd is owned by the stream.
        let conn = unsafe { libc::accept(fd, std::ptr::null_mut(), std::ptr::null_mut()) };
        assert!(conn >= 0, "accept on fd {fd}: {}", std::io::Error::last_os_error());
        // SAFETY: `conn` is a fresh descriptor owned by nothing else; read and write work on
        // any stream socket.
        let stream = unsafe { std::os::unix::net::UnixStream::from_raw_fd(conn) };
        let mut line = String::new();
        std::io::BufReader::new(stream.try_clone().unwrap()).read_line(&mut line).unwrap();
        (&stream).write_all(format!("fd {fd} accepted: {line}").as_bytes()).unwrap();
    }
}

/// `fds` become fds 3, 4, ... of the command (copied above the range first, so that one
/// sitting at a target number is not lost).
pub fn as_fds(c: &mut std::process::Command, fds: &[std::os::fd::RawFd]) {
    let fds = fds.to_vec();
    // SAFETY: (test) fcntl/dup2/close in the child between fork and exec only touch its fd
    // table, and are async-signal-safe.
    unsafe {
        use std::os::unix::process::CommandExt;
        c.pre_exec(move || {
            let mut high = Vec::new();
            for fd in &fds {
                let h = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 100);
                if h < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                high.push(h);
            }
            for (i, h) in high.iter().enumerate() {
                if libc::dup2(*h, 3 + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(*h);
            }
            Ok(())
        });
    }
}
