//! The container lifecycle through the real binary: create, start, state, kill, delete, run,
//! list, and what each leaves behind. Every check looks at what the container did (files it
//! wrote into a bind-mounted host directory, its output, its process in /proc), not only at
//! what hull says.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

// ---- helpers ----

/// `hull --root <root> ARGS` with a deadline.
fn h(env: &Env, args: &[&str]) -> Output {
    run_bounded(&env.dir, env.cmd(args), None, 20)
}

/// `hull run --bundle B ID` in the foreground, with a deadline.
fn run_t(env: &Env, id: &str) -> Output {
    h(env, &["run", "--bundle", env.bundle.to_str().unwrap(), id])
}

/// `hull create` with extra flags, the container's stdio going to files like [`Env::create`].
fn create_with(env: &Env, id: &str, extra: &[&str]) -> Output {
    create_logged(env, id, extra, id)
}

/// Like [`create_with`], the container's output going to `<tag>.out` and `<tag>.err`.
fn create_logged(env: &Env, id: &str, extra: &[&str], tag: &str) -> Output {
    let (o, e) = (env.dir.join(format!("{tag}.out")), env.dir.join(format!("{tag}.err")));
    let out = std::fs::File::create(&o).unwrap();
    let err = std::fs::File::create(&e).unwrap();
    let mut args = vec!["create", "--bundle", env.bundle.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.push(id);
    let status =
        env.cmd(&args).stdin(Stdio::null()).stdout(out).stderr(err).status().expect("run hull create");
    Output {
        status,
        stdout: std::fs::read(o).unwrap_or_default(),
        stderr: std::fs::read(e).unwrap_or_default(),
    }
}

/// The state letter from /proc/<pid>/stat (None when there is no such process).
fn proc_state(pid: i32) -> Option<char> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    text[text.rfind(')')? + 1..].split_whitespace().next()?.chars().next()
}

/// A process that exists and has not exited (zombies count as gone).
fn alive(pid: i32) -> bool {
    matches!(proc_state(pid), Some(c) if c != 'Z' && c != 'X')
}

/// Live processes whose command line names this test's state root: hull commands and
/// container inits that never exec'd their program (they still carry hull's argv).
fn stray_hull_processes(env: &Env) -> Vec<(i32, String)> {
    let root = env.root.to_str().unwrap().to_string();
    all_pids()
        .into_iter()
        .filter(|p| alive(*p))
        .map(|p| (p, cmdline(p)))
        .filter(|(_, c)| c.contains(&root))
        .collect()
}

/// Host pids of the live processes in the same pid namespace as `pid`.
fn pids_in_ns_of(pid: i32) -> Vec<i32> {
    let ns = |p: i32| std::fs::read_link(format!("/proc/{p}/ns/pid")).ok();
    let Some(want) = ns(pid) else { return vec![] };
    all_pids().into_iter().filter(|p| alive(*p) && ns(*p).as_ref() == Some(&want)).collect()
}

/// True once the container's program is `want` (its command line): natively the init's own
/// (`pid`); on the vm backend, where `pid` is the VMM, a process the guest's `ps` lists.
fn program_is(env: &Env, id: &str, pid: i32, want: &str) -> bool {
    if !on_vm() {
        return cmdline(pid) == want;
    }
    // On a VM, `pid` is the VMM; the guest's pid of the program is not known here (pid 1 only
    // with a pid namespace).
    container_processes(env, id, pid).iter().any(|(_, args)| args == want)
}

/// The container's processes other than a `ps` of ours, as (pid, command line): natively the
/// host's view of the processes in `init`'s pid namespace; on the vm backend, where `init` is
/// the VMM, the guest's `ps` through `hull exec` (guest pids).
fn container_processes(env: &Env, id: &str, init: i32) -> Vec<(i32, String)> {
    if !on_vm() {
        return pids_in_ns_of(init).into_iter().map(|p| (p, cmdline(p))).collect();
    }
    let o = h(env, &["exec", id, "ps", "-o", "pid,args"]);
    if !o.status.success() {
        return vec![];
    }
    stdout(&o)
        .lines()
        .skip(1)
        .filter_map(|l| {
            let (pid, args) = l.trim().split_once(' ')?;
            Some((pid.parse().ok()?, args.trim().to_string()))
        })
        .filter(|(_, args)| !args.starts_with("ps -o"))
        .collect()
}

fn state_file(env: &Env, id: &str) -> PathBuf {
    env.root.join(id).join("state.json")
}

fn pid_of(env: &Env, id: &str) -> i32 {
    env.state(id)["pid"].as_i64().unwrap() as i32
}

// ---- create / start ----

#[test]
fn program_does_not_run_before_start() {
    let (mut env, _reaper) = env_of(&["sh", "-c", "touch /host/ran"]);
    let host = bind_host_dir(&mut env, "host", "/host");
    let id = "lc-before-start";
    ok(&env.create(id), "create");
    assert_eq!(env.status(id), "created");
    let pid = pid_of(&env, id);
    assert!(alive(pid), "the init {pid} should be waiting");
    // Give a program that ran too early every chance to show itself.
    std::thread::sleep(Duration::from_millis(300));
    assert!(!host.join("ran").exists(), "the program ran before start");
    assert_eq!(env.status(id), "created");
    ok(&h(&env, &["start", id]), "start");
    env.wait_status(id, "stopped");
    assert!(host.join("ran").exists(), "the program did not run after start");
    ok(&h(&env, &["delete", id]), "delete");
}

/// True when the kernel holds `pid`'s cgroup frozen: v1's freezer.state of its freezer
/// cgroup, or "frozen 1" in cgroup.events on a pure v2 host (found from /proc/<pid>/cgroup).
fn cgroup_frozen(pid: i32) -> bool {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    for l in text.lines() {
        let mut f = l.splitn(3, ':');
        let (_, ctrls, path) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        let rel = path.trim_start_matches('/');
        if v2 && ctrls.is_empty() {
            let ev = std::fs::read_to_string(Path::new("/sys/fs/cgroup").join(rel).join("cgroup.events"));
            return ev.unwrap().lines().any(|l| l == "frozen 1");
        }
        if !v2 && ctrls.split(',').any(|c| c == "freezer") {
            let st =
                std::fs::read_to_string(Path::new("/sys/fs/cgroup/freezer").join(rel).join("freezer.state"));
            return st.unwrap().trim() == "FROZEN";
        }
    }
    panic!("no freezer cgroup for {pid}: {text}")
}

/// runc's lifecycle for a container paused before start: `pause` freezes it and `state` says
/// "paused"; `start` refuses it and the program does not run; `resume` brings it back to
/// "created", and then `start` runs it.
#[test]
fn pause_and_resume_a_created_container() {
    let (mut env, _reaper) = env_of(&["sh", "-c", "touch /host/ran"]);
    let host = bind_host_dir(&mut env, "host", "/host");
    let id = "lc-pause-created";
    ok(&env.create(id), "create");
    let pid = pid_of(&env, id);
    ok(&h(&env, &["pause", id]), "pause of a created container");
    assert_eq!(env.status(id), "paused");
    assert!(cgroup_frozen(pid), "pause left the init's cgroup thawed");
    let o = h(&env, &["start", id]);
    fails(&o, "start of a paused container");
    assert!(stderr(&o).contains("paused"), "{}", stderr(&o));
    std::thread::sleep(Duration::from_millis(200));
    assert!(!host.join("ran").exists(), "the program ran while paused");
    let o = h(&env, &["pause", id]);
    fails(&o, "pause of a paused container");

    ok(&h(&env, &["resume", id]), "resume");
    assert!(!cgroup_frozen(pid), "resume left the cgroup frozen");
    assert_eq!(env.status(id), "created");
    assert!(alive(pid));
    let o = h(&env, &["resume", id]);
    fails(&o, "resume of a created container");
    assert!(stderr(&o).contains("not paused"), "{}", stderr(&o));
    ok(&h(&env, &["start", id]), "start after resume");
    env.wait_status(id, "stopped");
    assert!(host.join("ran").exists(), "the program did not run after resume and start");
    ok(&h(&env, &["delete", id]), "delete");
}

#[test]
fn state_transitions_pid_and_pid_file() {
    let (env, _reaper) = env_of(&["sleep", "1000"]);
    let id = "lc-states";
    let pid_file = env.dir.join("init.pid");
    ok(&create_with(&env, id, &["--pid-file", pid_file.to_str().unwrap()]), "create");

    let st = env.state(id);
    assert_eq!(st["status"], "created", "{st}");
    assert_eq!(st["id"], id);
    assert!(st["ociVersion"].as_str().is_some_and(|v| v.starts_with("1.")), "{st}");
    let bundle = std::fs::canonicalize(&env.bundle).unwrap();
    assert_eq!(Path::new(st["bundle"].as_str().unwrap()), bundle, "{st}");
    let pid = st["pid"].as_i64().unwrap() as i32;
    assert!(pid > 0, "{st}");

    // The pid file holds the same pid (runc writes the bare number).
    let text = std::fs::read_to_string(&pid_file).expect("pid file written by create");
    assert_eq!(text.trim().parse::<i32>().unwrap(), pid, "pid file {text:?}");

    // It is the host pid of the container's init: pid 1 of its own pid namespace (on a VM,
    // the VMM's: docs/vm.md).
    {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap().to_string();
        let ids: Vec<&str> = nspid.split_whitespace().skip(1).collect();
        assert_eq!(ids.first(), Some(&pid.to_string().as_str()), "{nspid}");
        assert_eq!(ids.last(), Some(&"1"), "the init is not pid 1 of a new pid namespace: {nspid}");
        assert!(!cmdline(pid).starts_with("sleep"), "sleep runs before start: {}", cmdline(pid));
    }

    ok(&h(&env, &["start", id]), "start");
    let st = env.state(id);
    assert_eq!(st["status"], "running", "{st}");
    assert_eq!(st["pid"].as_i64().unwrap() as i32, pid, "the pid changed at start");
    wait_until("the init to exec sleep", || program_is(&env, id, pid, "sleep 1000"));

    ok(&h(&env, &["kill", id, "KILL"]), "kill");
    env.wait_status(id, "stopped");
    assert!(!alive(pid));
    let st = env.state(id);
    assert_eq!(st["id"], id);
    assert_eq!(st["status"], "stopped");

    ok(&h(&env, &["delete", id]), "delete");
    assert!(!env.root.join(id).exists(), "state dir left after delete");
    let o = h(&env, &["state", id]);
    fails(&o, "state after delete");
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
}

#[test]
fn pid_file_relative_path() {
    // containerd passes an absolute path; conmon and people may pass a relative one.
    let (env, _reaper) = env_of(&["sleep", "1000"]);
    let id = "lc-pidfile-rel";
    let out = std::fs::File::create(env.dir.join("o")).unwrap();
    let status = env
        .cmd(&["create", "--bundle", env.bundle.to_str().unwrap(), "--pid-file", "rel.pid", id])
        .current_dir(&env.dir)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .status()
        .unwrap();
    assert!(status.success(), "{}", std::fs::read_to_string(env.dir.join("o")).unwrap());
    let pid: i32 = std::fs::read_to_string(env.dir.join("rel.pid")).unwrap().trim().parse().unwrap();
    assert_eq!(pid, pid_of(&env, id));
    ok(&h(&env, &["delete", "--force", id]), "delete");
}

#[test]
fn second_start_fails_and_program_runs_once() {
    let (mut env, _reaper) = env_of(&["sh", "-c", "echo ran >> /host/log; sleep 0.3"]);
    let host = bind_host_dir(&mut env, "host", "/host");
    let id = "lc-start-twice";
    ok(&env.create(id), "create");
    ok(&h(&env, &["start", id]), "first start");
    // While it runs.
    let o = h(&env, &["start", id]);
    fails(&o, "second start");
    assert!(stderr(&o).contains(id), "{}", stderr(&o));
    env.wait_status(id, "stopped");
    // After it stopped.
    let o = h(&env, &["start", id]);
    fails(&o, "start of a stopped container");
    assert!(stderr(&o).to_lowercase().contains("stopped"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(host.join("log")).unwrap(),
        "ran\n",
        "the program must run exactly once"
    );
    ok(&h(&env, &["delete", id]), "delete");
}

#[test]
fn start_unknown_fails() {
    let (env, _reaper) = env_of(&["true"]);
    let o = h(&env, &["start", "lc-nosuch"]);
    fails(&o, "start of unknown id");
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
}

#[test]
fn missing_program_fails_at_create() {
    let (env, _reaper) = env_of(&["/nonexistent"]);
    let id = "lc-noprog";
    let o = env.create(id);
    fails(&o, "create with a missing program");
    let e = stderr(&o);
    assert!(e.contains(&format!("create {id}")), "{e}");
    assert!(e.contains("/nonexistent"), "the message should name the program: {e}");
    assert!(env.root_is_empty(), "state dir left behind");
    assert_eq!(stray_hull_processes(&env), vec![]);

    // Not found in $PATH either.
    let mut env = env;
    set_args(&mut env, &["no-such-program-xyz"]);
    let o = env.create(id);
    fails(&o, "create with a program not in PATH");
    assert!(stderr(&o).contains("no-such-program-xyz"), "{}", stderr(&o));
    assert!(env.root_is_empty());
    assert_eq!(stray_hull_processes(&env), vec![]);
}

#[test]
fn missing_cwd_fails_at_create() {
    let (mut env, _reaper) = env_of(&["true"]);
    env.config["process"]["cwd"] = json!("/no/such/dir");
    env.write_config();
    let id = "lc-nocwd";
    let o = env.create(id);
    fails(&o, "create with a missing cwd");
    let e = stderr(&o);
    assert!(e.contains(&format!("create {id}")), "{e}");
    assert!(e.contains("/no/such/dir"), "the message should name the cwd: {e}");
    assert!(env.root_is_empty(), "state dir left behind");
    assert_eq!(stray_hull_processes(&env), vec![]);
    assert_eq!(cgroup_dirs_named(id), Vec::<PathBuf>::new(), "cgroups left behind");
}

// ---- run ----

#[test]
fn run_exit_code() {
    let (mut env, _reaper) = env_of(&["sh", "-c", "echo out; echo err >&2; exit 3"]);
    let o = run_t(&env, "lc-run-3");
    assert_eq!(o.status.code(), Some(3), "stderr={}", stderr(&o));
    assert_eq!(stdout(&o), "out\n");
    assert!(stderr(&o).contains("err"), "{}", stderr(&o));
    assert!(env.root_is_empty(), "run must delete the container after it exits");

    set_args(&mut env, &["true"]);
    let o = run_t(&env, "lc-run-0");
    assert_eq!(o.status.code(), Some(0), "stderr={}", stderr(&o));
}

#[test]
fn run_exit_code_of_signal_from_inside() {
    // The kernel drops signals a pid namespace's init sends itself (or gets from inside its
    // namespace) when it has no handler, SIGKILL included; so the program must not be pid 1.
    let (mut env, _reaper) = env_of(&["sh", "-c", "kill -9 $$"]);
    env.config["linux"]["namespaces"].as_array_mut().unwrap().retain(|n| n["type"] != "pid");
    env.write_config();
    let o = run_t(&env, "lc-run-sig9");
    assert_eq!(o.status.code(), Some(137), "stderr={}", stderr(&o));
    assert!(env.root_is_empty());
}

/// `hull run` started in the background, its output in `<id>.out` and `<id>.err`.
struct BackgroundRun {
    child: std::process::Child,
    out: std::path::PathBuf,
    err: std::path::PathBuf,
}

impl BackgroundRun {
    /// What `hull run` wrote so far, for a failure message (on the vm backend the run's stderr
    /// carries a guest's triple fault, which run-tests.sh looks for to retry the test).
    fn output(&self) -> String {
        let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
        format!("\nhull run stdout: {:?}\nhull run stderr: {}", read(&self.out), read(&self.err))
    }

    /// Waits for `cond`, failing at once with the run's output if `hull run` returned first.
    fn wait_until(&mut self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + patience(20);
        while !cond() {
            if let Some(s) = self.child.try_wait().unwrap() {
                panic!("hull run returned ({s}) before: {what}{}", self.output());
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for: {what}{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for `hull run` to return.
    fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + patience(15);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("hull run did not return{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Waits for a hull command started in the background to return.
fn wait_child(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + patience(15);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("hull did not return");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Starts `hull run` in the background with its output in files.
fn spawn_run(env: &Env, id: &str, extra: &[&str]) -> BackgroundRun {
    let out = env.dir.join(format!("{id}.out"));
    let err = env.dir.join(format!("{id}.err"));
    let mut args = vec!["run", "--bundle", env.bundle.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.push(id);
    let child = env
        .cmd(&args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    BackgroundRun { child, out, err }
}

#[test]
fn run_exit_code_when_killed_by_hull_kill() {
    let (env, _reaper) = env_of(&["sleep", "1000"]);
    let id = "lc-run-kill";
    let mut run = spawn_run(&env, id, &[]);
    run.wait_until("container running", || {
        h(&env, &["state", id]).status.success() && env.status(id) == "running"
    });
    let pid = pid_of(&env, id);
    ok(&h(&env, &["kill", id, "KILL"]), "kill");
    let s = run.wait();
    assert_eq!(s.code(), Some(137), "{}", run.output());
    assert!(!alive(pid));
    assert!(env.root_is_empty());
}

#[test]
fn run_exit_code_for_term_without_pid_namespace() {
    // Outside a pid namespace the program is not an init, so SIGTERM's default action kills
    // it: 128 + 15.
    let (mut env, _reaper) = env_of(&["sleep", "1000"]);
    let nss = env.config["linux"]["namespaces"].as_array_mut().unwrap();
    nss.retain(|n| n["type"] != "pid");
    env.write_config();
    let id = "lc-run-term";
    let mut run = spawn_run(&env, id, &[]);
    run.wait_until("container running", || {
        h(&env, &["state", id]).status.success() && env.status(id) == "running"
    });
    let pid = pid_of(&env, id);
    run.wait_until("sleep exec'd", || program_is(&env, id, pid, "sleep 1000"));
    ok(&h(&env, &["kill", id, "TERM"]), "kill TERM");
    let s = run.wait();
    assert_eq!(s.code(), Some(143), "{}", run.output());
}

#[test]
fn run_forwards_signals_to_the_container() {
    let (env, _reaper) = env_of(&[
        "sh",
        "-c",
        "trap 'echo got-term; exit 7' TERM; echo ready; while true; do sleep 0.05; done",
    ]);
    let id = "lc-run-fwd";
    let mut run = spawn_run(&env, id, &[]);
    let out = run.out.clone();
    run.wait_until("container ready", || std::fs::read_to_string(&out).unwrap_or_default().contains("ready"));
    nix_kill(run.child.id() as i32, libc::SIGTERM);
    let s = run.wait();
    assert_eq!(s.code(), Some(7), "{}", run.output());
    assert!(std::fs::read_to_string(&out).unwrap().contains("got-term"), "{}", run.output());
}

fn nix_kill(pid: i32, sig: i32) {
    // SAFETY: kill(2) with plain integers.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}

#[test]
fn run_detach_returns_while_container_runs() {
    let (mut env, _reaper) = env_of(&["sh", "-c", "echo started > /host/started; exec sleep 1000"]);
    let host = bind_host_dir(&mut env, "host", "/host");
    let id = "lc-detach";
    let mut run = spawn_run(&env, id, &["--detach"]);
    let s = run.wait();
    assert!(s.success(), "{}", run.output());
    assert_eq!(env.status(id), "running");
    let pid = pid_of(&env, id);
    assert!(alive(pid));
    wait_until("the program ran", || host.join("started").exists());
    wait_until("sleep exec'd", || program_is(&env, id, pid, "sleep 1000"));
    ok(&h(&env, &["delete", "--force", id]), "delete --force");
    assert!(!alive(pid));
    assert!(env.root_is_empty());
}

// ---- kill ----

#[test]
fn kill_stopped_and_unknown() {
    let (env, _reaper) = env_of(&["true"]);
    let id = "lc-kill-stopped";
    ok(&env.create(id), "create");
    ok(&h(&env, &["start", id]), "start");
    env.wait_status(id, "stopped");
    let o = h(&env, &["kill", id, "KILL"]);
    fails(&o, "kill of a stopped container");
    assert!(stderr(&o).contains("container not running"), "{}", stderr(&o));
    let o = h(&env, &["kill", "lc-nosuch", "KILL"]);
    fails(&o, "kill of an unknown id");
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    ok(&h(&env, &["delete", id]), "delete");
}

#[test]
fn kill_signal_forms() {
    let script = "trap 'echo got-usr1' USR1; trap 'echo got-hup' HUP; trap 'echo got-term' TERM; \
                  trap 'echo got-usr2' USR2; echo ready; while true; do sleep 0.05; done";
    let (env, _reaper) = env_of(&["sh", "-c", script]);
    let id = "lc-kill-forms";
    ok(&env.create(id), "create");
    ok(&h(&env, &["start", id]), "start");
    wait_until("ready", || env.container_stdout(id).contains("ready"));
    for (args, want) in [
        (vec!["kill", id, "USR1"], "got-usr1"),
        (vec!["kill", id, "SIGHUP"], "got-hup"),
        (vec!["kill", id, "12"], "got-usr2"),
        (vec!["kill", id], "got-term"), // SIGTERM by default
    ] {
        ok(&h(&env, &args), &format!("{args:?}"));
        wait_until(want, || env.container_stdout(id).contains(want));
    }
    let o = h(&env, &["kill", id, "NOSUCHSIG"]);
    fails(&o, "kill with an unknown signal");
    assert!(stderr(&o).contains("NOSUCHSIG"), "{}", stderr(&o));
    assert_eq!(env.status(id), "running");
    ok(&h(&env, &["kill", id, "SIGKILL"]), "kill SIGKILL");
    env.wait_status(id, "stopped");
    ok(&h(&env, &["delete", id]), "delete");
}

#[test]
fn kill_all_signals_every_process() {
    // pid 1 without a handler ignores TERM; its children do not.
    let (env, _reaper) =
        env_of(&["sh", "-c", "sleep 1001 & sleep 1002 & echo ready; while true; do sleep 0.05; done"]);
    let id = "lc-kill-all";
    ok(&env.create(id), "create");
    ok(&h(&env, &["start", id]), "start");
    wait_until("ready", || env.container_stdout(id).contains("ready"));
    let init = pid_of(&env, id);
    let sleepers = || -> Vec<i32> {
        let procs = container_processes(&env, id, init);
        procs.into_iter().filter(|(_, c)| c.starts_with("sleep 100")).map(|(p, _)| p).collect()
    };
    wait_until("both sleepers", || sleepers().len() == 2);
    let before = sleepers();

    // Without --all only the init gets it, and ignores it.
    ok(&h(&env, &["kill", id, "TERM"]), "kill TERM");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(sleepers(), before, "kill without --all reached other processes");
    assert!(alive(init));

    ok(&h(&env, &["kill", "--all", id, "TERM"]), "kill --all TERM");
    wait_until("the sleepers to die", || sleepers().is_empty());
    assert!(alive(init), "pid 1 ignores TERM without a handler");
    assert_eq!(env.status(id), "running");
    ok(&h(&env, &["kill", "-a", id, "KILL"]), "kill -a KILL");
    env.wait_status(id, "stopped");
    ok(&h(&env, &["delete", id]), "delete");
}

// ---- delete ----

#[test]
fn delete_running_needs_force() {
    let (env, _reaper) = env_of(&["sh", "-c", "sleep 1000 & exec sleep 1001"]);
    let id = "lc-del-running";
    ok(&env.create(id), "create");
    ok(&h(&env, &["start", id]), "start");
    let pid = pid_of(&env, id);
    wait_until("sleep exec'd", || program_is(&env, id, pid, "sleep 1001"));
    let o = h(&env, &["delete", id]);
    fails(&o, "delete of a running container");
    assert!(stderr(&o).contains(id), "{}", stderr(&o));
    assert_eq!(env.status(id), "running");
    assert!(alive(pid));
    assert!(env.root.join(id).exists());
    let all = container_processes(&env, id, pid);
    assert_eq!(all.len(), 2, "{all:?}");

    ok(&h(&env, &["delete", "--force", id]), "delete --force");
    assert!(!alive(pid), "the init is still alive after delete --force");
    // A VM container's processes are the guest's: they end with the VMM (`pid`).
    for (p, _) in all.iter().filter(|_| !on_vm()) {
        assert!(!alive(*p), "process {p} of the container survived delete --force");
    }
    assert!(!env.root.join(id).exists(), "state dir left after delete --force");
    assert!(env.root_is_empty());
    assert_eq!(cgroup_dirs_named(id), Vec::<PathBuf>::new(), "cgroups left after delete --force");
}

#[test]
fn delete_created_container() {
    let (mut env, _reaper) = env_of(&["sh", "-c", "touch /host/ran"]);
    let host = bind_host_dir(&mut env, "host", "/host");
    let id = "lc-del-created";
    ok(&env.create(id), "create");
    let pid = pid_of(&env, id);
    ok(&h(&env, &["delete", id]), "delete of a created container");
    assert!(!alive(pid), "the init survived delete");
    assert!(!env.root.join(id).exists());
    std::thread::sleep(Duration::from_millis(100));
    assert!(!host.join("ran").exists(), "deleting a created container ran its program");
    assert_eq!(stray_hull_processes(&env), vec![]);
    assert_eq!(cgroup_dirs_named(id), Vec::<PathBuf>::new(), "cgroups left after delete");
}

#[test]
fn delete_stopped_and_unknown() {
    let (env, _reaper) = env_of(&["true"]);
    let id = "lc-del-stopped";
    ok(&env.create(id), "create");
    ok(&h(&env, &["start", id]), "start");
    env.wait_status(id, "stopped");
    ok(&h(&env, &["delete", id]), "delete of a stopped container");
    assert!(env.root_is_empty());
    ok(&h(&env, &["delete", "--force", "lc-nosuch"]), "delete --force of an unknown id");
    let o = h(&env, &["delete", "lc-nosuch"]);
    fails(&o, "delete of an unknown id");
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
}

// ---- ids ----

#[test]
fn duplicate_id_fails_and_keeps_the_first() {
    let (mut env, _reaper) = env_of(&["sh", "-c", "echo $$ >> /host/log; exec sleep 1000"]);
    let host = bind_host_dir(&mut env, "host", "/host");
    let id = "lc-dup";
    ok(&env.create(id), "first create");
    let first = env.state(id);
    let pid = first["pid"].as_i64().unwrap() as i32;
    let state_before = std::fs::read(state_file(&env, id)).unwrap();

    // Second create into other files, so the first container's output stays.
    let o = create_logged(&env, id, &[], "second");
    fails(&o, "create of a duplicate id");
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));

    assert_eq!(std::fs::read(state_file(&env, id)).unwrap(), state_before, "state.json changed");
    assert_eq!(env.state(id), first);
    assert!(alive(pid));
    ok(&h(&env, &["start", id]), "start of the first container");
    assert_eq!(env.status(id), "running");
    wait_until("sleep exec'd", || program_is(&env, id, pid, "sleep 1000"));
    assert_eq!(std::fs::read_to_string(host.join("log")).unwrap(), "1\n");
    // The first container's init is a hull process on the vm backend (its VMM): not a stray.
    let strays: Vec<_> = stray_hull_processes(&env).into_iter().filter(|(p, _)| *p != pid).collect();
    assert_eq!(strays, vec![], "the losing create left a process");
    ok(&h(&env, &["delete", "--force", id]), "delete");
}

#[test]
fn invalid_ids_are_refused() {
    let (env, _reaper) = env_of(&["true"]);
    for (i, bad) in ["../escape", "a/b", "..", "with space", ""].iter().enumerate() {
        let o = create_logged(&env, bad, &[], &format!("bad{i}"));
        fails(&o, &format!("create {bad:?}"));
        assert!(stderr(&o).contains("id"), "{bad:?}: {}", stderr(&o));
    }
    assert!(!env.dir.join("escape").exists());
    assert!(env.root_is_empty());
}

#[test]
fn concurrent_create_of_one_id() {
    const N: usize = 8;
    let (mut env, _reaper) = env_of(&["sh", "-c", "echo ran >> /host/log; exec sleep 1000"]);
    let host = bind_host_dir(&mut env, "host", "/host");
    let id = "lc-race";
    let mut children = Vec::new();
    for i in 0..N {
        let out = std::fs::File::create(env.dir.join(format!("race{i}.out"))).unwrap();
        let err = std::fs::File::create(env.dir.join(format!("race{i}.err"))).unwrap();
        let c = env
            .cmd(&["create", "--bundle", env.bundle.to_str().unwrap(), id])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        children.push(c);
    }
    let mut winners = 0;
    let mut errors = Vec::new();
    for (i, mut c) in children.into_iter().enumerate() {
        let s = wait_child(&mut c);
        let e = std::fs::read_to_string(env.dir.join(format!("race{i}.err"))).unwrap();
        if s.success() {
            winners += 1;
        } else {
            errors.push(e);
        }
    }
    assert_eq!(winners, 1, "exactly one create must win; errors: {errors:#?}");
    for e in &errors {
        assert!(e.contains("already exists"), "a loser failed for another reason: {e}");
    }
    let st = env.state(id);
    assert_eq!(st["status"], "created", "{st}");
    let pid = st["pid"].as_i64().unwrap() as i32;
    assert!(alive(pid));
    // Exactly one init exists for this root.
    let strays = stray_hull_processes(&env);
    assert_eq!(strays.iter().map(|(p, _)| *p).collect::<Vec<_>>(), vec![pid], "{strays:?}");
    ok(&h(&env, &["start", id]), "start");
    assert_eq!(env.status(id), "running");
    wait_until("sleep exec'd", || program_is(&env, id, pid, "sleep 1000"));
    assert_eq!(std::fs::read_to_string(host.join("log")).unwrap(), "ran\n", "the program ran more than once");
    ok(&h(&env, &["delete", "--force", id]), "delete");
    assert!(env.root_is_empty());
}

// ---- state derived from the live process ----

#[test]
fn recycled_pid_does_not_revive_a_stopped_container() {
    let (env, _reaper) = env_of(&["true"]);
    let id = "lc-recycled";
    ok(&env.create(id), "create");
    ok(&h(&env, &["start", id]), "start");
    env.wait_status(id, "stopped");

    // A live process that has nothing to do with the container takes the old pid.
    let mut bystander = Command::new(busybox()).args(["sleep", "1000"]).spawn().unwrap();
    let other = bystander.id() as i32;
    let path = state_file(&env, id);
    let mut st: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert!(st.get("pid_start").is_some(), "state.json has no pid_start: {st}");
    st["pid"] = json!(other);
    std::fs::write(&path, serde_json::to_vec(&st).unwrap()).unwrap();

    let status = env.status(id);
    let kill = h(&env, &["kill", id, "KILL"]);
    let del = h(&env, &["delete", id]);
    let survived = alive(other);
    let _ = bystander.kill();
    let _ = bystander.wait();
    assert_eq!(status, "stopped", "a recycled pid made the container look alive");
    fails(&kill, "kill of a stopped container whose pid was recycled");
    assert!(stderr(&kill).contains("container not running"), "{}", stderr(&kill));
    assert!(survived, "hull signalled an unrelated process that reused the init's pid");
    ok(&del, "delete of the stopped container");
    assert!(env.root_is_empty());
}

// ---- list ----

#[test]
fn list_formats() {
    let (env, _reaper) = env_of(&["sleep", "1000"]);
    ok(&env.create("lc-list-a"), "create a");
    ok(&env.create("lc-list-b"), "create b");
    ok(&h(&env, &["start", "lc-list-b"]), "start b");
    let pid_a = pid_of(&env, "lc-list-a");
    let pid_b = pid_of(&env, "lc-list-b");

    let o = h(&env, &["list"]);
    ok(&o, "list");
    let text = stdout(&o);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&header[..4], &["ID", "PID", "STATUS", "BUNDLE"], "{text}");
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 2, "{text}");
    let bundle = std::fs::canonicalize(&env.bundle).unwrap();
    assert_eq!(
        rows[0][..4],
        ["lc-list-a", &pid_a.to_string(), "created", bundle.to_str().unwrap()],
        "{text}"
    );
    assert_eq!(
        rows[1][..4],
        ["lc-list-b", &pid_b.to_string(), "running", bundle.to_str().unwrap()],
        "{text}"
    );

    let o = h(&env, &["list", "--format", "json"]);
    ok(&o, "list --format json");
    let v: Value = serde_json::from_slice(&o.stdout).expect("list --format json prints JSON");
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 2, "{v}");
    assert_eq!(arr[0]["id"], "lc-list-a");
    assert_eq!(arr[0]["status"], "created");
    assert_eq!(arr[0]["pid"], pid_a);
    assert_eq!(arr[1]["id"], "lc-list-b");
    assert_eq!(arr[1]["status"], "running");
    assert_eq!(arr[1]["pid"], pid_b);
    assert_eq!(arr[1]["bundle"], bundle.to_str().unwrap());

    let o = h(&env, &["list", "-q"]);
    ok(&o, "list -q");
    assert_eq!(stdout(&o), "lc-list-a\nlc-list-b\n");

    ok(&h(&env, &["kill", "lc-list-b", "KILL"]), "kill b");
    env.wait_status("lc-list-b", "stopped");
    let v: Value = serde_json::from_slice(&h(&env, &["list", "-f", "json"]).stdout).unwrap();
    assert_eq!(v[1]["status"], "stopped", "{v}");

    ok(&h(&env, &["delete", "--force", "lc-list-a"]), "delete a");
    ok(&h(&env, &["delete", "lc-list-b"]), "delete b");
    let o = h(&env, &["list", "-q"]);
    ok(&o, "list -q of an empty root");
    assert_eq!(stdout(&o), "");
}

#[test]
fn list_without_root_dir() {
    let (env, _reaper) = env_of(&["true"]);
    let o = h(&env, &["list", "-q"]);
    ok(&o, "list with no root directory");
    assert_eq!(stdout(&o), "");
    assert!(!env.root.exists(), "list must not create the root");
}

/// `create --preserve-fds 1` from a caller with no fd 3 open (Command gives hull only 0-2):
/// hull's own lock must not land on fd 3, where the init would keep it and `start`, then
/// `delete`, would wait for it for ever. Every command here runs under a deadline.
#[test]
fn preserve_fds_beyond_what_the_caller_has_does_not_hang() {
    let (env, _r) = env_of(&["sh", "-c", "ls /proc/self/fd; sleep 30"]);
    ok(&create_with(&env, "pfds", &["--preserve-fds", "1"]), "create --preserve-fds 1");
    ok(&h(&env, &["start", "pfds"]), "start");
    env.wait_status("pfds", "running");
    ok(&h(&env, &["delete", "--force", "pfds"]), "delete --force");
    assert!(env.root_is_empty(), "state left behind");
}
