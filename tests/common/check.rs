//! The assertions and bundle edits every suite makes: one copy, with failure messages that
//! show the command's status and both of its outputs.

use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{patience, stderr, stdout, Env};

/// Asserts that the command `what` exited 0.
#[track_caller]
pub fn ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed ({:?}): stdout={:?} stderr={:?}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

/// Asserts that the command `what` failed.
#[track_caller]
pub fn fails(o: &Output, what: &str) {
    assert!(!o.status.success(), "{what} should have failed: stdout={:?} stderr={:?}", stdout(o), stderr(o));
}

/// Polls `cond` until it holds; panics naming `what` after 20 s (scaled by `patience`).
#[track_caller]
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + patience(20);
    while !cond() {
        if Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sets process.args and rewrites config.json.
pub fn set_args(env: &mut Env, args: &[&str]) {
    env.config["process"]["args"] = json!(args);
    env.write_config();
}

/// Makes `<env.dir>/<name>` and bind-mounts it at `dest` in the container (config rewritten).
pub fn bind_host_dir(env: &mut Env, name: &str, dest: &str) -> PathBuf {
    let host = env.dir.join(name);
    std::fs::create_dir_all(&host).unwrap();
    env.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": dest, "type": "bind", "source": host.to_str().unwrap(),
        "options": ["rbind", "rw"]
    }));
    env.write_config();
    host
}
