//! Resource abuse (#19): what a hostile or broken bundle or host does to hull gets a bounded,
//! clear outcome (an error naming the cause, back-pressure), never a hang, a crash or growth
//! without bound, and leaves nothing behind. (A fork bomb under pids.max: tests/cgroups.rs.)

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

/// `hull create` on `env`'s bundle, given at most 30 s: it must fail (not by a signal), say
/// `msg`, and leave nothing under the root or in the cgroup trees. Its stderr.
fn refused(env: &Env, id: &str, msg: &str) -> String {
    let t0 = Instant::now();
    let mut c = env.cmd(&["create", "--bundle", env.bundle.to_str().unwrap(), id]);
    c.stdin(Stdio::null());
    let out = run_bounded(&env.dir, c, None, 30);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "create: {:?} after {:?}; stderr: {err}",
        out.status,
        t0.elapsed()
    );
    assert!(err.contains(msg), "create did not say {msg:?}: {err}");
    assert!(env.root_is_empty(), "create left state behind: {err}");
    assert!(cgroup_dirs_named(id).is_empty(), "create left a cgroup: {err}");
    err
}

/// A config.json over 16 MiB (valid JSON, padded) is refused before it is parsed: the spec is
/// kept in the state and read back by every later command.
#[test]
fn a_huge_config_json_is_refused_by_its_size() {
    let env = Env::new(&["true"]);
    let mut text = serde_json::to_vec(&env.config).unwrap();
    text.resize(17 << 20, b' ');
    std::fs::write(env.bundle.join("config.json"), &text).unwrap();
    refused(&env, "huge", "more than the 16 MiB hull reads");
}

/// config.json as a fifo (nothing ever writes it) or a link to /dev/zero (it never ends): a
/// clear refusal at once, where a plain read would wait or grow forever.
#[test]
fn a_config_json_that_is_no_regular_file_is_refused_at_once() {
    let env = Env::new(&["true"]);
    let config = env.bundle.join("config.json");
    std::fs::remove_file(&config).unwrap();
    nix::unistd::mkfifo(&config, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    refused(&env, "fifo", "read config.json: not a regular file");
    std::fs::remove_file(&config).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &config).unwrap();
    refused(&env, "zero", "read config.json: not a regular file");
}

/// 100 000 levels of nesting, in a field hull does not know and in one it does: parsed without
/// blowing the stack, and refused with the parser's words.
#[test]
fn a_deeply_nested_config_json_is_refused_without_a_crash() {
    let env = Env::new(&["true"]);
    let deep = |open: &str, inner: &str, close: &str| {
        format!("{}{inner}{}", open.repeat(100_000), close.repeat(100_000))
    };
    let config = env.bundle.join("config.json");
    let mut v = env.config.clone();
    v["x-unknown"] = "DEEP".into();
    let text = serde_json::to_string(&v).unwrap().replace("\"DEEP\"", &deep("[", "", "]"));
    std::fs::write(&config, text).unwrap();
    // An unknown field is skipped (without recursion); the config is otherwise fine, so this
    // one may be created: what matters is that hull answered and did not crash.
    let mut c = env.cmd(&["create", "--bundle", env.bundle.to_str().unwrap(), "deep1"]);
    c.stdin(Stdio::null()).stdout(Stdio::null());
    let out = run_bounded(&env.dir, c, None, 30);
    assert!(out.status.code().is_some(), "create died of a signal: {:?}; {}", out.status, stderr(&out));
    let _ = env.hull(&["delete", "--force", "deep1"]);
    // In a field that takes a JSON object: serde_json's recursion limit, named.
    let mut v = env.config.clone();
    v["annotations"] = serde_json::json!({ "a": "DEEP" });
    let text = serde_json::to_string(&v).unwrap().replace("\"DEEP\"", &deep("{\"a\":", "1", "}"));
    std::fs::write(&config, text).unwrap();
    refused(&env, "deep2", "config.json: ");
}

/// A state root on a tmpfs with no space left: create fails naming ENOSPC and leaves no
/// container directory, cgroup or process; once there is room again the same create works.
#[test]
fn a_full_state_root_fails_create_cleanly() {
    let env = Env::new(&["sleep", "100"]);
    let full = env.dir.join("full-root");
    std::fs::create_dir_all(&full).unwrap();
    nix::mount::mount(Some("tmpfs"), &full, Some("tmpfs"), nix::mount::MsFlags::empty(), Some("size=256k"))
        .unwrap();
    struct Unmount<'a>(&'a std::path::Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }
    let _unmount = Unmount(&full);
    let filler = full.join("filler");
    // Fill it: the write stops at ENOSPC.
    let _ = std::fs::write(&filler, vec![0u8; 1 << 20]);
    let root = full.join("state");
    let bundle = env.bundle.to_str().unwrap();
    let hull = |args: &[&str]| {
        let mut c = std::process::Command::new(HULL);
        c.arg("--root").arg(&root).args(args).stdin(Stdio::null()).stdout(Stdio::null());
        run_bounded(&env.dir, c, None, 30)
    };
    let out = hull(&["create", "--bundle", bundle, "full1"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "create on a full root: {:?}; {err}", out.status);
    assert!(err.contains("No space left on device"), "ENOSPC not named: {err}");
    let left: Vec<_> =
        std::fs::read_dir(&root).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "create left {left:?} in the root; {err}");
    assert!(cgroup_dirs_named("full1").is_empty(), "create left a cgroup: {err}");
    let root_s = root.to_str().unwrap();
    assert!(all_pids().into_iter().all(|p| !cmdline(p).contains(root_s)), "create left a process behind");
    std::fs::remove_file(&filler).unwrap();
    let out = hull(&["create", "--bundle", bundle, "full1"]);
    assert!(out.status.success(), "create with room again: {}", stderr(&out));
    let out = hull(&["delete", "--force", "full1"]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
}

/// Resident memory of `pid` in KiB (0 once it is gone).
fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A container that floods its stdout while the reader stops reading is held back, not
/// buffered: `hull run` and the container's init (on the vm backend, the VMM that relays the
/// guest's output) grow by less than 16 MiB over 3 s of a stopped reader, and the output
/// flows again, intact, once the reader reads.
#[test]
fn a_stdout_flood_to_a_reader_that_stops_is_held_back() {
    let (env, _r) = env_of(&["yes", "hull flood"]);
    let id = "flood1";
    let mut child = env
        .cmd(&["run", "--bundle", env.bundle.to_str().unwrap(), id])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(env.dir.join("flood.err")).unwrap())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let read_mib = |out: &mut std::process::ChildStdout| {
        let mut buf = vec![0u8; 1 << 20];
        out.read_exact(&mut buf).map(|()| buf)
    };
    let first = read_mib(&mut out);
    let init = env.state(id)["pid"].as_i64().unwrap_or(0) as i32;
    let rss = || rss_kib(child.id() as i32) + rss_kib(init);
    let before = rss();
    std::thread::sleep(Duration::from_secs(3));
    let after = rss();
    let again = read_mib(&mut out);
    let _ = env.hull(&["kill", id, "KILL"]);
    drop(out);
    let _ = child.wait();
    let _ = env.hull(&["delete", "--force", id]);
    let err = std::fs::read_to_string(env.dir.join("flood.err")).unwrap_or_default();
    let (first, again) = (
        first.expect("the first MiB"),
        again.unwrap_or_else(|e| panic!("the flow after the pause: {e}; {err}")),
    );
    assert!(init > 0, "no init pid in the state");
    assert!(
        after < before + 16 * 1024,
        "hull grew from {before} to {after} KiB while its reader did not read; {err}"
    );
    // Whole lines of the flood, after the cut the first read ended on.
    let text = String::from_utf8_lossy(&again);
    let whole = text.split_once('\n').map(|(_, rest)| rest).unwrap_or("");
    let whole = &whole[..whole.rfind('\n').unwrap_or(0)];
    assert!(
        whole.lines().all(|l| l == "hull flood"),
        "the output is not the flood's: {:?}",
        &whole[..200.min(whole.len())]
    );
    assert!(String::from_utf8_lossy(&first).contains("hull flood\nhull flood\n"));
}
