//! Many containers at once and many in a row: no operation fails and nothing is left behind
//! (no state directory, mount, cgroup or process, and the caller's fd table as it was).
//!
//! `HULL_STRESS_ROUNDS=N` makes it N lifecycles in a row and N/8 per parallel loop (default 50
//! and 8; `just soak` runs N=1000: 1000 in a row and 16 loops of 125 at once).

mod common;
use common::*;

use std::path::PathBuf;
use std::sync::Mutex;

/// The checks compare the whole process's fd table and the host's mounts: one test at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn rounds(default: usize) -> usize {
    std::env::var("HULL_STRESS_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// What must be the same before and after.
#[derive(Debug, PartialEq)]
struct Leftovers {
    /// This process's open fds.
    fds: usize,
    /// Host mounts under the test's directory.
    mounts: Vec<String>,
    /// Cgroup directories of this test's containers (their ids start with `prefix`).
    cgroups: Vec<PathBuf>,
    /// Live processes whose command line names the test's state root.
    processes: Vec<String>,
}

fn leftovers(env: &Env, prefix: &str) -> Leftovers {
    let fds = std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0);
    let dir = env.dir.display().to_string();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&dir))
        .map(str::to_string)
        .collect();
    let mut cgroups = Vec::new();
    let mut walk = vec![(PathBuf::from("/sys/fs/cgroup"), 0)];
    while let Some((d, depth)) = walk.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            if !e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            let p = e.path();
            if e.file_name().to_string_lossy().starts_with(prefix) {
                cgroups.push(p);
            } else if depth < 4 {
                walk.push((p, depth + 1));
            }
        }
    }
    cgroups.sort();
    let root = env.root.display().to_string();
    let mut processes = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        if pid == std::process::id() {
            continue;
        }
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(&root) {
            processes.push(format!("{pid}: {cmd}"));
        }
    }
    Leftovers { fds, mounts, cgroups, processes }
}

/// create, start, wait for the exit, delete; the first failure as a message.
fn lifecycle(env: &Env, id: &str) -> Result<(), String> {
    let o = env.create(id);
    if !o.status.success() {
        return Err(format!("create {id}: {}", stderr(&o)));
    }
    let o = env.hull(&["start", id]);
    if !o.status.success() {
        return Err(format!("start {id}: {}", stderr(&o)));
    }
    let deadline = std::time::Instant::now() + patience(30);
    loop {
        let o = env.hull(&["state", id]);
        if !o.status.success() {
            return Err(format!("state {id}: {}", stderr(&o)));
        }
        let state: serde_json::Value =
            serde_json::from_slice(&o.stdout).map_err(|e| format!("state {id}: {e}"))?;
        if state["status"] == "stopped" {
            break;
        }
        if std::time::Instant::now() > deadline {
            return Err(format!("{id} never stopped: {state}"));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let o = env.hull(&["delete", id]);
    if !o.status.success() {
        return Err(format!("delete {id}: {}", stderr(&o)));
    }
    Ok(())
}

/// `hull run` in the foreground; the program's exit status 0 expected.
fn run_once(env: &Env, id: &str) -> Result<(), String> {
    let o = env.run(id);
    if o.status.success() {
        Ok(())
    } else {
        Err(format!("run {id}: {:?}: {}", o.status, stderr(&o)))
    }
}

/// `hull exec` of `true` into the shared container.
fn exec_once(env: &Env, id: &str) -> Result<(), String> {
    let o = env.hull(&["exec", id, "true"]);
    if o.status.success() {
        Ok(())
    } else {
        Err(format!("exec into {id}: {:?}: {}", o.status, stderr(&o)))
    }
}

/// 16 loops at once: eight of create/start/wait/delete, four of `run`, four of `exec` into one
/// running container; every operation succeeds and nothing is left.
#[test]
fn parallel_loops_fail_nothing_and_leave_nothing() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (loops, per_loop) = if on_vm() { (4, 1) } else { (16, (rounds(64) / 8).max(1)) };
    let env = Env::new(&["true"]);
    let shared_env = Env::new(&["sleep", "1000"]);
    let before = (leftovers(&env, "st-"), leftovers(&shared_env, "st-"));
    let shared = "st-shared";
    let o = shared_env.create(shared);
    assert!(o.status.success(), "create {shared}: {}", stderr(&o));
    assert!(shared_env.hull(&["start", shared]).status.success());

    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..loops)
            .map(|i| {
                let (env, shared_env) = (&env, &shared_env);
                s.spawn(move || {
                    let mut failed = Vec::new();
                    for r in 0..per_loop {
                        let id = format!("st-{i}-{r}");
                        let result = match i % 4 {
                            0 if loops >= 8 => run_once(env, &id),
                            1 if loops >= 8 => exec_once(shared_env, shared),
                            _ => lifecycle(env, &id),
                        };
                        if let Err(e) = result {
                            failed.push(e);
                        }
                    }
                    failed
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let o = shared_env.hull(&["delete", "--force", shared]);
    assert!(o.status.success(), "delete --force {shared}: {}", stderr(&o));
    assert!(
        failures.is_empty(),
        "{} of {} operations failed:\n{}",
        failures.len(),
        loops * per_loop,
        failures.join("\n")
    );
    assert!(env.root_is_empty() && shared_env.root_is_empty(), "state directories left");
    assert_eq!((leftovers(&env, "st-"), leftovers(&shared_env, "st-")), before);
}

/// Lifecycles in a row (50 here, 1000 in `just soak`): the state root, the host's mounts, the
/// cgroups, the processes and the caller's fds are as they were.
#[test]
fn lifecycles_in_a_row_leak_nothing() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let n = if on_vm() { 2 } else { rounds(50) };
    let env = Env::new(&["true"]);
    // One first, so that whatever hull's first run makes once (the cgroup parent) is there.
    lifecycle(&env, "sq-warm").unwrap();
    let before = leftovers(&env, "sq-");
    for r in 0..n {
        if let Err(e) = lifecycle(&env, &format!("sq-{r}")) {
            panic!("lifecycle {r} of {n}: {e}");
        }
    }
    assert!(env.root_is_empty(), "state directories left");
    assert_eq!(leftovers(&env, "sq-"), before);
}

/// Runs `args` (a hull command) and SIGKILLs it `after` its start (or lets it finish first);
/// true when it was killed.
fn kill_after(env: &Env, args: &[&str], after: std::time::Duration) -> bool {
    use std::os::unix::process::ExitStatusExt;
    let log = env.dir.join("killed.log");
    let _ = std::fs::remove_file(&log);
    let mut c = env
        .cmd(&[&["--debug", "--log", log.to_str().unwrap()], args].concat())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    let _ = c.kill();
    let status = c.wait().unwrap();
    if !status.success() && status.signal() != Some(libc::SIGKILL) {
        // Failed by itself before the kill: worth seeing should what follows go wrong.
        let l = std::fs::read_to_string(&log).unwrap_or_default();
        eprintln!("hull {args:?} failed ({status}) before the kill after {after:?}:\n{l}");
    }
    status.signal() == Some(libc::SIGKILL)
}

/// `hull ARGS` to its end, reaping meanwhile whatever the killed commands orphaned onto this
/// process (a child subreaper during the test): a killed `hull exec` leaves its program in the
/// container, and once that dies its zombie, whose parent is outside the container's pid
/// namespace, holds the namespace and so its init's death until someone reaps it (the host's
/// init does only now and then; containerd's shim and conmon, subreapers, at once). Exit code
/// and stderr.
// The child is reaped below by waitpid(-1), with the orphans, not by Child::wait.
#[allow(clippy::zombie_processes)]
fn hull_reaping(env: &Env, args: &[&str]) -> (i32, String) {
    let err = env.dir.join("reaping.err");
    let c = env
        .cmd(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let pid = c.id() as i32;
    let deadline = std::time::Instant::now() + patience(30);
    loop {
        let mut status = 0;
        // SAFETY: waitpid(2) with a pointer to a local int.
        let got = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if got == pid {
            let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -1 };
            return (code, std::fs::read_to_string(&err).unwrap_or_default());
        }
        if got <= 0 {
            assert!(std::time::Instant::now() < deadline, "hull {args:?} did not return");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

fn set_child_subreaper(on: bool) {
    // SAFETY: prctl(2) with integer arguments.
    assert_eq!(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, on as libc::c_ulong, 0, 0, 0) }, 0);
}

/// A hull process SIGKILLed at any instant of create, start, exec or delete leaves what
/// `delete --force` removes completely: no state directory, cgroup, mount or process (#19).
/// Natively the kills come every 0.4 ms over the first 16 ms of each command (create and start
/// take about 10 ms here); on the vm backend every second over the first 4 s (the guest's boot).
#[test]
fn killed_at_any_instant_delete_force_leaves_nothing() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new(&["sleep", "1000"]);
    let before = leftovers(&env, "kl-");
    set_child_subreaper(true);
    let bundle = env.bundle.to_str().unwrap().to_string();
    let (steps, step) = if on_vm() {
        (4, std::time::Duration::from_secs(1))
    } else {
        (40, std::time::Duration::from_micros(400))
    };
    let mut killed = [0usize; 4];
    for i in 0..steps {
        let after = step * i as u32;
        // create, killed mid-way.
        let id = format!("kl-c{i}");
        killed[0] += kill_after(&env, &["create", "--bundle", &bundle, &id], after) as usize;
        let (code, e) = hull_reaping(&env, &["--debug", "delete", "--force", &id]);
        assert!(code == 0 || e.contains("does not exist"), "delete --force {id}: {e}");
        assert!(env.root_is_empty(), "state left after create was killed after {after:?}");
        let left = leftovers(&env, &id).cgroups;
        assert!(
            left.is_empty(),
            "create killed after {after:?}, then delete --force ({code}): cgroups {left:?} left\n\
             create's log:\n{}\ndelete's stderr:\n{e}",
            std::fs::read_to_string(env.dir.join("killed.log")).unwrap_or_default()
        );
        // start, then exec into what runs, then delete, each killed mid-way.
        let id = format!("kl-s{i}");
        let o = env.create(&id);
        assert!(o.status.success(), "create {id}: {}", stderr(&o));
        killed[1] += kill_after(&env, &["start", &id], after) as usize;
        killed[2] += kill_after(&env, &["exec", &id, "sleep", "1000"], after * 2) as usize;
        killed[3] += kill_after(&env, &["delete", "--force", &id], after) as usize;
        let (code, e) = hull_reaping(&env, &["delete", "--force", &id]);
        assert!(code == 0 || e.contains("does not exist"), "delete --force {id}: {e}");
        assert!(env.root_is_empty(), "state left after delete --force of {id} (killed after {after:?})");
    }
    set_child_subreaper(false);
    eprintln!(
        "killed mid-way: create {}, start {}, exec {}, delete {} of {steps}",
        killed[0], killed[1], killed[2], killed[3]
    );
    assert_eq!(leftovers(&env, "kl-"), before);
}

/// Two hull commands at once; each one's success and stderr.
fn at_once(env: &Env, a: &[&str], b: &[&str]) -> [(bool, String); 2] {
    std::thread::scope(|s| {
        let ta = s.spawn(|| env.hull(a));
        let tb = s.spawn(|| env.hull(b));
        [ta, tb].map(|t| {
            let o = t.join().unwrap();
            (o.status.success(), stderr(&o))
        })
    })
}

/// Races on one id end with a clear winner and intact state: two deletes of a stopped
/// container (one deletes it, the other finds it gone), delete --force against start of a
/// created one, and kill against delete --force of a running one (whichever comes second
/// either works on what is left or says the container is gone or not running). Nothing is left.
#[test]
fn races_on_one_id_end_cleanly() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::new(&["sleep", "1000"]);
    let before = leftovers(&env, "rc-");
    let gone = |e: &str| e.contains("does not exist");
    let rounds = if on_vm() { 1 } else { 20 };
    // How often the second command still found something to work on.
    let (mut starts, mut kills) = (0, 0);
    for r in 0..rounds {
        // Two deletes of a stopped container.
        let id = format!("rc-dd{r}");
        assert!(env.create(&id).status.success());
        assert!(env.hull(&["kill", &id, "KILL"]).status.success());
        env.wait_status(&id, "stopped");
        let [a, b] = at_once(&env, &["delete", &id], &["delete", &id]);
        assert!(a.0 || b.0, "neither delete won: {a:?} {b:?}");
        for (ok, e) in [&a, &b] {
            assert!(*ok || gone(e), "the losing delete: {e}");
        }
        // delete --force against start.
        let id = format!("rc-ds{r}");
        assert!(env.create(&id).status.success());
        let [d, s] = at_once(&env, &["delete", "--force", &id], &["start", &id]);
        assert!(d.0, "delete --force: {}", d.1);
        assert!(s.0 || gone(&s.1) || s.1.contains("stopped"), "start lost with an unclear message: {}", s.1);
        starts += s.0 as usize;
        // kill against delete --force of a running container.
        let id = format!("rc-kd{r}");
        assert!(env.create(&id).status.success());
        assert!(env.hull(&["start", &id]).status.success());
        let [k, d] = at_once(&env, &["kill", &id, "TERM"], &["delete", "--force", &id]);
        assert!(d.0, "delete --force: {}", d.1);
        assert!(
            k.0 || gone(&k.1) || k.1.contains("not running"),
            "kill lost with an unclear message: {}",
            k.1
        );
        kills += k.0 as usize;
        assert!(env.root_is_empty(), "state left in round {r}");
    }
    eprintln!("of {rounds} races: start ran before delete {starts} times, kill before delete {kills} times");
    assert_eq!(leftovers(&env, "rc-"), before);
}
