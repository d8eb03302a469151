//! OCI hooks through the real binary: each kind runs at its point of the lifecycle, in the
//! namespaces the runtime spec says, with the state JSON on stdin and exactly its args and
//! env; failures of the create-time hooks fail `create` and leave nothing behind, poststart
//! and poststop failures only warn. Hooks are small shell scripts that record what they saw
//! into files the test reads.

mod common;
use common::*;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

// ---- helpers ----

const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `hull --root <root> ARGS` with a deadline.
fn h(env: &Env, args: &[&str]) -> Output {
    run_bounded(&env.dir, env.cmd(args), None, 30)
}

/// `hull create` with a deadline; the container's own output goes to `<id>.out`/`<id>.err`
/// through the command's stdio files (the container inherits them).
fn create(env: &Env, id: &str) -> Output {
    h(env, &["create", "--bundle", env.bundle.to_str().unwrap(), id])
}

/// Writes an executable `#!/bin/sh` script at `path`.
fn script_at(path: &Path, body: &str) -> PathBuf {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_path_buf()
}

/// An executable script in the test dir (a host path).
fn script(env: &Env, name: &str, body: &str) -> PathBuf {
    script_at(&env.dir.join(name), body)
}

/// A hook entry running `path` with a PATH in its environment.
fn hook(path: &Path) -> Value {
    json!({"path": path.to_str().unwrap(), "env": [PATH]})
}

/// Sets `hooks.<kind>` to `list` and rewrites config.json.
fn set_hooks(env: &mut Env, kind: &str, list: Vec<Value>) {
    if env.config.get("hooks").is_none() {
        env.config["hooks"] = json!({});
    }
    env.config["hooks"][kind] = Value::Array(list);
    env.write_config();
}

/// Waits up to 10 s for `p` to exist, then reads it.
fn wait_file(p: &Path) -> String {
    let deadline = Instant::now() + patience(10);
    while !p.exists() {
        assert!(Instant::now() < deadline, "{} never appeared", p.display());
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::read_to_string(p).unwrap()
}

fn read_json(p: &Path) -> Value {
    let text = wait_file(p);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}: {text:?}", p.display()))
}

fn host_ns(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}")).unwrap().to_string_lossy().to_string()
}

fn canon(p: &Path) -> String {
    std::fs::canonicalize(p).unwrap().to_string_lossy().to_string()
}

/// True when `pid` is gone (or a zombie nobody reaped yet), within 5 s.
fn pid_gone(pid: i64) -> bool {
    let deadline = Instant::now() + patience(5);
    loop {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(s) => {
                let state =
                    s.rfind(')').and_then(|i| s[i + 1..].split_whitespace().next().map(str::to_string));
                if state.as_deref() == Some("Z") || state.as_deref() == Some("X") {
                    return true;
                }
            }
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Kills the container's processes if a failed assertion left it running.
struct Cleanup<'a>(&'a Env, &'a str);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = h(self.0, &["delete", "--force", self.1]);
    }
}

/// A script body that saves its stdin to `<dir>/<tag>.json` and appends `<tag>` to
/// `<dir>/order`.
fn recorder(dir: &Path, tag: &str) -> String {
    let d = dir.display();
    format!("cat > {d}/{tag}.json.tmp && mv {d}/{tag}.json.tmp {d}/{tag}.json\necho {tag} >> {d}/order")
}

// ---- where and when each kind runs ----

#[test]
fn prestart_and_create_runtime_run_in_the_runtime_namespaces() {
    let mut env = Env::new(&["sleep", "100"]);
    let d = env.dir.clone();
    let body = |tag: &str| {
        format!(
            "readlink /proc/self/ns/mnt > {d}/{tag}.mnt\nreadlink /proc/self/ns/pid > {d}/{tag}.pid\n{}",
            recorder(&d, tag),
            d = d.display()
        )
    };
    let pre = script(&env, "prestart.sh", &body("prestart"));
    let cr = script(&env, "create-runtime.sh", &body("createRuntime"));
    set_hooks(&mut env, "prestart", vec![hook(&pre)]);
    set_hooks(&mut env, "createRuntime", vec![hook(&cr)]);
    let _c = Cleanup(&env, "cr");
    ok(&create(&env, "cr"), "create");
    let state = env.state("cr");
    for tag in ["prestart", "createRuntime"] {
        let mnt = wait_file(&d.join(format!("{tag}.mnt")));
        assert_eq!(mnt.trim(), host_ns("mnt"), "{tag} runs in the host's mount namespace");
        let pid = wait_file(&d.join(format!("{tag}.pid")));
        assert_eq!(pid.trim(), host_ns("pid"), "{tag} runs in the host's pid namespace");
        let s = read_json(&d.join(format!("{tag}.json")));
        assert_eq!(s["id"], "cr");
        assert_eq!(s["status"], "creating");
        assert_eq!(s["pid"], state["pid"], "{tag} gets the init's host pid");
        assert!(s["pid"].as_i64().unwrap() > 1);
        assert_eq!(canon(Path::new(s["bundle"].as_str().unwrap())), canon(&env.bundle));
        assert!(s["ociVersion"].is_string());
    }
    assert_eq!(wait_file(&d.join("order")), "prestart\ncreateRuntime\n");
    assert_eq!(env.status("cr"), "created");
}

#[test]
fn create_container_runs_in_the_container_namespaces_before_start() {
    let mut env = Env::new(&["sleep", "100"]);
    let d = env.dir.clone();
    let body = format!(
        "for n in mnt uts pid ipc net; do readlink /proc/self/ns/$n > {d}/cc.$n; done\numask > {d}/cc.umask\n{}",
        recorder(&d, "cc"),
        d = d.display()
    );
    let cc = script(&env, "create-container.sh", &body);
    set_hooks(&mut env, "createContainer", vec![hook(&cc)]);
    let _c = Cleanup(&env, "cc");
    ok(&create(&env, "cc"), "create");
    // On a VM the hook runs on the host, in the VMM's namespaces: the container's network,
    // ipc and uts namespaces, a mount namespace of its own, and the pid namespace whose pid 1
    // the VMM is (docs/vm.md).
    for n in ["mnt", "uts", "pid", "ipc", "net"] {
        let seen = wait_file(&d.join(format!("cc.{n}")));
        assert_ne!(seen.trim(), host_ns(n), "createContainer runs in the container's {n} namespace");
    }
    // The init works under umask 0; its hooks get the usual 022.
    assert_eq!(wait_file(&d.join("cc.umask")).trim(), "0022");
    let s = read_json(&d.join("cc.json"));
    assert_eq!(s["id"], "cc");
    assert_eq!(s["status"], "creating");
    // The spec: for hooks in the container's namespaces, the pid as the container sees it.
    assert_eq!(s["pid"], 1);
    assert_eq!(canon(Path::new(s["bundle"].as_str().unwrap())), canon(&env.bundle));
    assert_eq!(env.status("cc"), "created");
}

/// A daemon a createContainer hook leaves is orphaned into the container's pid namespace.
/// On a VM its pid 1 is the VMM, which reaps it when it ends, as an init does; natively pid 1
/// is the container's own program, whose business that is, so the test is the vm backend's.
/// (The daemon shares the VMM's mount namespace, so the jail becomes its root too: it can
/// only end, which is what is watched, from the host: a child of the VMM, then gone.)
#[test]
fn a_daemon_left_by_a_create_container_hook_is_reaped_on_a_vm() {
    if !on_vm() {
        eprintln!("[test] natively the container's program is pid 1 and reaps (or not) by itself");
        return;
    }
    let mut env = Env::new(&["sleep", "100"]);
    let cc = script(&env, "daemon-hook.sh", "sleep 20 </dev/null >/dev/null 2>&1 &\nexit 0");
    set_hooks(&mut env, "createContainer", vec![hook(&cc)]);
    let _c = Cleanup(&env, "reap");
    ok(&create(&env, "reap"), "create");
    let vmm = env.state("reap")["pid"].as_i64().expect("a pid in the state") as i32;
    // (state, parent) from /proc/PID/stat.
    let stat = |p: i32| -> Option<(String, i32)> {
        let s = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
        let mut rest = s[s.rfind(')')? + 1..].split_whitespace();
        Some((rest.next()?.to_string(), rest.next()?.parse().ok()?))
    };
    let daemon = all_pids()
        .into_iter()
        .find(|&p| stat(p).is_some_and(|(_, ppid)| ppid == vmm) && cmdline(p).starts_with("sleep 20"))
        .expect("the hook's daemon, orphaned to the VMM (create took under 20 s)");
    // It ends 20 s after the hook ran; reaped, it is gone, not a zombie.
    let deadline = Instant::now() + Duration::from_secs(20) + patience(10);
    while let Some((state, _)) = stat(daemon) {
        assert!(Instant::now() < deadline, "the VMM ({vmm}) left its child {daemon} as it is: state {state}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(env.status("reap"), "created");
}

#[test]
fn start_container_runs_inside_the_container_after_start() {
    let mut env = Env::new(&["sleep", "100"]);
    std::fs::write(env.rootfs().join("marker"), "inside").unwrap();
    // After pivot_root: the path is the container's, the shell is the rootfs's busybox.
    script_at(
        &env.rootfs().join("bin/hook.sh"),
        "cat > /tmp/sc.json.tmp && mv /tmp/sc.json.tmp /tmp/sc.json\n\
         { hostname; cat /marker; echo; readlink /proc/self/ns/mnt; } > /tmp/sc.tmp && mv /tmp/sc.tmp /tmp/sc.txt",
    );
    set_hooks(&mut env, "startContainer", vec![json!({"path": "/bin/hook.sh", "env": ["PATH=/bin"]})]);
    let _c = Cleanup(&env, "sc");
    ok(&create(&env, "sc"), "create");
    std::thread::sleep(Duration::from_millis(200));
    assert!(!env.rootfs().join("tmp/sc.txt").exists(), "startContainer must not run before start");
    ok(&h(&env, &["start", "sc"]), "start");
    let seen = wait_file(&env.rootfs().join("tmp/sc.txt"));
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(lines[0], "hull-test", "the container's hostname");
    assert_eq!(lines[1], "inside", "the container's root");
    assert_ne!(lines[2], host_ns("mnt"));
    let s = read_json(&env.rootfs().join("tmp/sc.json"));
    assert_eq!(s["id"], "sc");
    assert_eq!(s["status"], "created");
    assert_eq!(s["pid"], 1);
    env.wait_status("sc", "running");
}

#[test]
fn poststart_runs_at_start_and_poststop_at_delete() {
    let mut env = Env::new(&["sleep", "100"]);
    let d = env.dir.clone();
    let ps = script(&env, "poststart.sh", &recorder(&d, "poststart"));
    let pst = script(&env, "poststop.sh", &recorder(&d, "poststop"));
    set_hooks(&mut env, "poststart", vec![hook(&ps)]);
    set_hooks(&mut env, "poststop", vec![hook(&pst)]);
    let _c = Cleanup(&env, "pp");
    ok(&create(&env, "pp"), "create");
    let pid = env.state("pp")["pid"].clone();
    assert!(!d.join("poststart.json").exists(), "poststart must not run at create");
    ok(&h(&env, &["start", "pp"]), "start");
    // `start` returns after its poststart hooks.
    assert!(d.join("poststart.json").exists(), "poststart ran before start returned");
    let s = read_json(&d.join("poststart.json"));
    assert_eq!(s["id"], "pp");
    assert_eq!(s["status"], "running");
    assert_eq!(s["pid"], pid, "poststart gets the init's host pid");
    assert_eq!(canon(Path::new(s["bundle"].as_str().unwrap())), canon(&env.bundle));
    assert!(!d.join("poststop.json").exists(), "poststop must not run before delete");
    ok(&h(&env, &["kill", "pp", "KILL"]), "kill");
    env.wait_status("pp", "stopped");
    assert!(!d.join("poststop.json").exists(), "poststop runs at delete, not when the container stops");
    ok(&h(&env, &["delete", "pp"]), "delete");
    let s = read_json(&d.join("poststop.json"));
    assert_eq!(s["id"], "pp");
    assert_eq!(s["status"], "stopped");
    assert_eq!(std::fs::read_to_string(d.join("order")).unwrap(), "poststart\npoststop\n");
    assert!(env.root_is_empty());
}

#[test]
fn poststart_runs_after_the_program_replaced_the_init() {
    if native_only("a hook on the host cannot see the guest's processes (start waits for the agent's Started, sent once the program replaced the init in the guest: docs/vm.md)") {
        return;
    }
    // config.md: poststart runs "after the user-specified process is executed". The hook reads
    // what the container's pid is running at that moment: the program, not hull's init on its
    // way to exec.
    let mut env = Env::new(&["sleep", "100"]);
    let d = env.dir.clone();
    let body = format!(
        "pid=$(sed -n 's/.*\"pid\": *\\([0-9]*\\).*/\\1/p')\n\
         tr '\\0' ' ' < /proc/$pid/cmdline > {d}/cmdline.tmp && mv {d}/cmdline.tmp {d}/cmdline",
        d = d.display()
    );
    let ps = script(&env, "poststart.sh", &body);
    set_hooks(&mut env, "poststart", vec![hook(&ps)]);
    // A slow startContainer hook holds the init between its release and the exec.
    set_hooks(&mut env, "startContainer", vec![json!({"path": "/bin/sleep", "args": ["sleep", "0.5"]})]);
    let _c = Cleanup(&env, "px");
    ok(&create(&env, "px"), "create");
    ok(&h(&env, &["start", "px"]), "start");
    assert_eq!(std::fs::read_to_string(d.join("cmdline")).unwrap(), "sleep 100 ");
}

#[test]
fn run_calls_every_hook_in_order() {
    let mut env = Env::new(&["true"]);
    let d = env.dir.clone();
    script_at(&env.rootfs().join("bin/hook.sh"), "echo startContainer > /tmp/sc-ran");
    for kind in ["prestart", "createRuntime", "createContainer", "poststart", "poststop"] {
        let s = script(&env, &format!("{kind}.sh"), &recorder(&d, kind));
        set_hooks(&mut env, kind, vec![hook(&s)]);
    }
    set_hooks(&mut env, "startContainer", vec![json!({"path": "/bin/hook.sh"})]);
    let out = h(&env, &["run", "--bundle", env.bundle.to_str().unwrap(), "all"]);
    ok(&out, "run");
    assert_eq!(
        std::fs::read_to_string(d.join("order")).unwrap(),
        "prestart\ncreateRuntime\ncreateContainer\npoststart\npoststop\n"
    );
    assert_eq!(std::fs::read_to_string(env.rootfs().join("tmp/sc-ran")).unwrap(), "startContainer\n");
    assert!(env.root_is_empty());
}

#[test]
fn hooks_can_ask_hull_for_the_state() {
    // Hooks often call the runtime back; that must not deadlock on the container's lock.
    let mut env = Env::new(&["sleep", "100"]);
    let (d, root) = (env.dir.display().to_string(), env.root.display().to_string());
    let ask = |tag: &str| {
        format!("{HULL} --root {root} state st > {d}/{tag}.tmp && mv {d}/{tag}.tmp {d}/{tag}.json")
    };
    let cr = script(&env, "ask-cr.sh", &ask("cr-state"));
    let ps = script(&env, "ask-ps.sh", &ask("ps-state"));
    let mut hk = hook(&cr);
    hk["timeout"] = json!(10);
    set_hooks(&mut env, "createRuntime", vec![hk]);
    let mut hk = hook(&ps);
    hk["timeout"] = json!(10);
    set_hooks(&mut env, "poststart", vec![hk]);
    let _c = Cleanup(&env, "st");
    ok(&create(&env, "st"), "create");
    assert_eq!(read_json(&env.dir.join("cr-state.json"))["status"], "creating");
    ok(&h(&env, &["start", "st"]), "start");
    assert_eq!(read_json(&env.dir.join("ps-state.json"))["status"], "running");
}

// ---- args, env, stdin ----

#[test]
fn args_and_env_are_passed_exactly() {
    let mut env = Env::new(&["sleep", "100"]);
    let d = env.dir.display().to_string();
    let bb = busybox().display().to_string();
    // busybox picks its applet by argv[0]: "sh" only works if args[0] became argv[0].
    let body = format!(
        "{bb} tr '\\0' '\\n' < /proc/$$/environ > {d}/env.txt; \
         for a in \"$0\" \"$@\"; do echo \"[$a]\"; done > {d}/args.txt"
    );
    let with_env = json!({
        "path": bb,
        "args": ["sh", "-c", body, "zero", "a b", "", "c'd"],
        "env": ["FOO=bar baz", "EMPTY=", "EQ=x=y"],
    });
    // Without env the hook gets an empty environment.
    let no_env = json!({
        "path": bb,
        "args": ["sh", "-c", format!("{bb} tr '\\0' '\\n' < /proc/$$/environ > {d}/noenv.txt")],
    });
    // Without args argv[0] is the path: a busybox link named "true" runs `true`.
    let t = env.dir.join("true");
    std::os::unix::fs::symlink(busybox(), &t).unwrap();
    let no_args = json!({"path": t.to_str().unwrap()});
    set_hooks(&mut env, "createRuntime", vec![with_env, no_env, no_args]);
    let _c = Cleanup(&env, "ae");
    ok(&create(&env, "ae"), "create");
    assert_eq!(std::fs::read_to_string(env.dir.join("args.txt")).unwrap(), "[zero]\n[a b]\n[]\n[c'd]\n");
    // Exactly these variables and no other (std's Command passes them sorted by name).
    let mut seen: Vec<String> =
        std::fs::read_to_string(env.dir.join("env.txt")).unwrap().lines().map(String::from).collect();
    seen.sort();
    assert_eq!(seen, ["EMPTY=", "EQ=x=y", "FOO=bar baz"]);
    assert_eq!(std::fs::read_to_string(env.dir.join("noenv.txt")).unwrap(), "");
}

#[test]
fn argv0_is_the_path_when_args_are_absent() {
    let mut env = Env::new(&["sleep", "100"]);
    // A busybox link named "false": argv[0] = its path makes it fail with status 1.
    let f = env.dir.join("false");
    std::os::unix::fs::symlink(busybox(), &f).unwrap();
    set_hooks(&mut env, "createRuntime", vec![json!({"path": f.to_str().unwrap()})]);
    let out = create(&env, "a0");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("exit status 1"), "{}", stderr(&out));
    assert!(env.root_is_empty());
}

#[test]
fn hooks_that_ignore_stdin_or_flood_stdout_do_not_hang_or_kill_hull() {
    let mut env = Env::new(&["sleep", "100"]);
    // A state JSON bigger than a pipe's buffer (64 KiB), to a hook that never reads it: EPIPE.
    env.config["annotations"]["big"] = json!("x".repeat(150_000));
    let quiet = script(&env, "quiet.sh", "exit 0");
    // Lots of output on both streams, none of stdin read.
    let loud = script(
        &env,
        "loud.sh",
        "i=0; while [ $i -lt 2000 ]; do echo 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'; \
         echo 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb' >&2; i=$((i+1)); done",
    );
    // Leaves a child behind that keeps the output pipes open: hull must not wait for it.
    let daemon = script(&env, "daemon.sh", "sleep 20 &\nexit 0");
    set_hooks(&mut env, "createRuntime", vec![hook(&quiet), hook(&loud), hook(&daemon)]);
    set_hooks(&mut env, "poststart", vec![hook(&quiet)]);
    let _c = Cleanup(&env, "io");
    let t = Instant::now();
    ok(&create(&env, "io"), "create");
    assert!(t.elapsed() < patience(10), "create waited for the hook's child: {:?}", t.elapsed());
    ok(&h(&env, &["start", "io"]), "start");
    assert_eq!(env.status("io"), "running");
}

// ---- failures ----

#[test]
fn failing_create_runtime_hook_fails_create_and_leaves_nothing() {
    let mut env = Env::new(&["sleep", "100"]);
    let d = env.dir.clone();
    let bad = script(
        &env,
        "bad-hook.sh",
        &format!("cat > {}/bad.json\necho 'boom from the hook' >&2\nexit 3", d.display()),
    );
    let never = script(&env, "never.sh", &format!("touch {}/never-ran", d.display()));
    set_hooks(&mut env, "createRuntime", vec![hook(&bad), hook(&never)]);
    set_hooks(&mut env, "createContainer", vec![hook(&never)]);
    let out = create(&env, "bad");
    assert!(!out.status.success(), "create must fail");
    let err = stderr(&out);
    assert!(err.contains("createRuntime"), "{err}");
    assert!(err.contains(bad.to_str().unwrap()), "names the hook: {err}");
    assert!(err.contains("exit status 3"), "{err}");
    assert!(err.contains("boom from the hook"), "shows the hook's stderr: {err}");
    assert!(!d.join("never-ran").exists(), "the hooks after a failed one must not run");
    assert!(env.root_is_empty(), "nothing left under the root");
    let pid = read_json(&d.join("bad.json"))["pid"].as_i64().unwrap();
    assert!(pid_gone(pid), "the container init {pid} is still alive");
    // The id is free again.
    set_hooks(&mut env, "createRuntime", vec![]);
    set_hooks(&mut env, "createContainer", vec![]);
    let _c = Cleanup(&env, "bad");
    ok(&create(&env, "bad"), "create again");
}

#[test]
fn failing_prestart_hook_fails_create() {
    let mut env = Env::new(&["sleep", "100"]);
    let bad = script(&env, "bad-prestart.sh", "exit 7");
    set_hooks(&mut env, "prestart", vec![hook(&bad)]);
    let out = create(&env, "bp");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("prestart") && err.contains("exit status 7") && err.contains(bad.to_str().unwrap()),
        "{err}"
    );
    assert!(env.root_is_empty());
}

#[test]
fn failing_create_container_hook_fails_create_and_leaves_nothing() {
    let mut env = Env::new(&["sleep", "100"]);
    let d = env.dir.clone();
    let bad = script(
        &env,
        "bad-cc.sh",
        &format!("cat > {}/cc.json\necho 'no container for you' >&2\nexit 5", d.display()),
    );
    set_hooks(&mut env, "createContainer", vec![hook(&bad)]);
    let out = create(&env, "bcc");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("createContainer") && err.contains(bad.to_str().unwrap()), "{err}");
    assert!(err.contains("exit status 5") && err.contains("no container for you"), "{err}");
    assert!(env.root_is_empty());
    // No process of the container lives on: the init is a fork of `hull create`, so its
    // cmdline names the bundle.
    let bundle = env.bundle.to_str().unwrap().to_string();
    let deadline = Instant::now() + patience(5);
    loop {
        let left: Vec<i32> = procs_with(&bundle);
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "processes left behind: {left:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Live (non-zombie) processes whose cmdline contains `s`.
fn procs_with(s: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|p| *p != me)
        .filter(|p| {
            let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmd).contains(s)
        })
        .collect()
}

#[test]
fn hook_past_its_timeout_is_killed_and_fails_create() {
    let mut env = Env::new(&["sleep", "100"]);
    let pidf = env.dir.join("slow.pid");
    let slow = script(&env, "slow.sh", &format!("echo $$ > {}\nexec sleep 30", pidf.display()));
    let mut hk = hook(&slow);
    hk["timeout"] = json!(1);
    set_hooks(&mut env, "createRuntime", vec![hk]);
    let t = Instant::now();
    let out = create(&env, "slow");
    assert!(!out.status.success());
    assert!(t.elapsed() < patience(10), "took {:?}", t.elapsed());
    let err = stderr(&out);
    assert!(err.contains("timed out") && err.contains(slow.to_str().unwrap()), "{err}");
    assert!(env.root_is_empty());
    let pid: i64 = wait_file(&pidf).trim().parse().unwrap();
    assert!(pid_gone(pid), "the hook {pid} was not killed");
}

#[test]
fn hook_within_its_timeout_is_fine() {
    let mut env = Env::new(&["sleep", "100"]);
    let quick = script(&env, "quick.sh", "sleep 0.2");
    let mut hk = hook(&quick);
    hk["timeout"] = json!(5);
    set_hooks(&mut env, "createRuntime", vec![hk]);
    let _c = Cleanup(&env, "quick");
    ok(&create(&env, "quick"), "create");
}

#[test]
fn missing_or_non_executable_hook_fails_create() {
    let mut env = Env::new(&["sleep", "100"]);
    let plain = env.dir.join("not-executable.sh");
    std::fs::write(&plain, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    let missing = env.dir.join("no-such-hook");
    for (p, words) in [(&plain, "ermission denied"), (&missing, "No such file")] {
        set_hooks(&mut env, "createRuntime", vec![hook(p)]);
        let out = create(&env, "nx");
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(err.contains(p.to_str().unwrap()) && err.contains(words), "{err}");
        assert!(env.root_is_empty());
    }
}

#[test]
fn failing_start_container_hook_stops_the_program() {
    let mut env = Env::new(&["sh", "-c", "echo program-ran > /tmp/program; sleep 100"]);
    script_at(&env.rootfs().join("bin/hook.sh"), "echo 'start hook says no' >&2; exit 4");
    set_hooks(&mut env, "startContainer", vec![json!({"path": "/bin/hook.sh"})]);
    let _c = Cleanup(&env, "bsc");
    let errf = env.dir.join("bsc.container.err");
    // The init reports startContainer failures on the container's stderr (create has returned).
    let mut cmd = env.cmd(&["create", "--bundle", env.bundle.to_str().unwrap(), "bsc"]);
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(std::fs::File::create(&errf).unwrap());
    assert!(cmd.status().unwrap().success());
    ok(&h(&env, &["start", "bsc"]), "start");
    env.wait_status("bsc", "stopped");
    assert!(!env.rootfs().join("tmp/program").exists(), "the program must not run");
    let err = std::fs::read_to_string(&errf).unwrap();
    assert!(
        err.contains("startContainer") && err.contains("exit status 4") && err.contains("start hook says no"),
        "{err}"
    );
}

#[test]
fn failing_poststart_hook_only_warns() {
    let mut env = Env::new(&["sleep", "100"]);
    let bad = script(&env, "bad-poststart.sh", "echo 'poststart trouble' >&2; exit 2");
    set_hooks(&mut env, "poststart", vec![hook(&bad)]);
    let _c = Cleanup(&env, "bps");
    ok(&create(&env, "bps"), "create");
    let out = h(&env, &["start", "bps"]);
    ok(&out, "start");
    let err = stderr(&out);
    assert!(
        err.contains("warning") && err.contains("poststart") && err.contains("poststart trouble"),
        "{err}"
    );
    assert_eq!(env.status("bps"), "running");
}

/// The runtime spec: after a failing poststart or poststop hook "the remaining hooks and
/// lifecycle continue as if the hook had succeeded" (runtime-tools' poststart_fail and
/// poststop_fail check that the next hook still runs).
#[test]
fn hooks_after_a_failing_poststart_or_poststop_hook_still_run() {
    let mut env = Env::new(&["sleep", "100"]);
    let d = env.dir.clone();
    let bad = script(&env, "bad.sh", "exit 3");
    let ps = script(&env, "poststart.sh", &recorder(&d, "poststart"));
    let pst = script(&env, "poststop.sh", &recorder(&d, "poststop"));
    set_hooks(&mut env, "poststart", vec![hook(&bad), hook(&ps)]);
    set_hooks(&mut env, "poststop", vec![hook(&bad), hook(&pst)]);
    let _c = Cleanup(&env, "pfn");
    ok(&create(&env, "pfn"), "create");
    let out = h(&env, &["start", "pfn"]);
    ok(&out, "start");
    assert!(stderr(&out).contains("exit status 3"), "{}", stderr(&out));
    assert!(d.join("poststart.json").exists(), "the poststart hook after the failing one ran");
    assert_eq!(env.status("pfn"), "running");
    let out = h(&env, &["delete", "--force", "pfn"]);
    ok(&out, "delete");
    assert!(stderr(&out).contains("exit status 3"), "{}", stderr(&out));
    assert!(d.join("poststop.json").exists(), "the poststop hook after the failing one ran");
    assert_eq!(std::fs::read_to_string(d.join("order")).unwrap(), "poststart\npoststop\n");
    assert!(env.root_is_empty());
}

#[test]
fn failing_poststop_hook_only_warns() {
    let mut env = Env::new(&["sleep", "100"]);
    let bad = script(&env, "bad-poststop.sh", "exit 9");
    set_hooks(&mut env, "poststop", vec![hook(&bad)]);
    ok(&create(&env, "bpst"), "create");
    ok(&h(&env, &["start", "bpst"]), "start");
    let out = h(&env, &["delete", "--force", "bpst"]);
    ok(&out, "delete");
    let err = stderr(&out);
    assert!(err.contains("warning") && err.contains("poststop") && err.contains("exit status 9"), "{err}");
    assert!(env.root_is_empty());
}
