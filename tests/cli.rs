//! The command line as callers use it: containerd's go-runc, conmon, the OCI tools and people.
//! Global flags, --version, the --log file, `spec` and `features` (whose claims are checked
//! against what a container really gets).

mod common;
use common::*;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

// ---- helpers ----

/// `hull ARGS` (no --root added), with a deadline.
fn hull_raw(dir: &std::path::Path, args: &[&str]) -> Output {
    let mut c = Command::new(HULL);
    c.args(args);
    run_bounded(dir, c, None, 20)
}

/// `hull --root <root> ARGS`, with a deadline.
fn h(env: &Env, args: &[&str]) -> Output {
    run_bounded(&env.dir, env.cmd(args), None, 20)
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hull-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// runc's log time format: RFC 3339 in UTC, e.g. 2024-01-02T03:04:05.123456789Z.
fn looks_like_rfc3339(t: &str) -> bool {
    let b = t.as_bytes();
    t.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && (t.ends_with('Z') || t[19..].contains('+') || t[19..].contains('-'))
        && t[..4].bytes().all(|c| c.is_ascii_digit())
}

// ---- --version, help ----

#[test]
fn version_has_three_lines() {
    let d = scratch("version");
    for flag in ["--version", "-v"] {
        let o = hull_raw(&d, &[flag]);
        ok(&o, flag);
        let text = stdout(&o);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{flag}: {text:?}");
        let (name, version) = lines[0].split_once(" version ").expect("first line: `<name> version <v>`");
        assert!(!name.is_empty() && !version.trim().is_empty(), "{text:?}");
        assert!(version.trim().chars().next().unwrap().is_ascii_digit(), "{text:?}");
        let commit = lines[1].strip_prefix("commit: ").expect("second line: `commit: ...`");
        assert!(!commit.trim().is_empty(), "{text:?}");
        let spec = lines[2].strip_prefix("spec: ").expect("third line: `spec: ...`");
        assert_eq!(spec.split('.').count(), 3, "spec version {spec:?}");
        assert!(spec.starts_with("1."), "{spec:?}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn version_spec_matches_state_oci_version() {
    let (env, _reaper) = env_of(&["sleep", "1000"]);
    let v = stdout(&hull_raw(&env.dir, &["--version"]));
    let spec = v.lines().nth(2).unwrap().strip_prefix("spec: ").unwrap().to_string();
    let out = std::fs::File::create(env.dir.join("c.out")).unwrap();
    let status = env
        .cmd(&["create", "--bundle", env.bundle.to_str().unwrap(), "cli-ver"])
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .status()
        .unwrap();
    assert!(status.success(), "{}", std::fs::read_to_string(env.dir.join("c.out")).unwrap());
    let st = env.state("cli-ver");
    ok(&h(&env, &["delete", "--force", "cli-ver"]), "delete --force");
    assert_eq!(st["ociVersion"], spec.as_str());
}

#[test]
fn help_and_unknown_command() {
    let d = scratch("help");
    let o = hull_raw(&d, &["--help"]);
    ok(&o, "--help");
    for sub in ["create", "start", "state", "kill", "delete", "run", "list", "spec", "features"] {
        assert!(stdout(&o).contains(sub), "--help does not list {sub}: {}", stdout(&o));
    }
    let o = hull_raw(&d, &["nosuchcommand"]);
    assert!(!o.status.success(), "an unknown subcommand must fail");
    assert!(stderr(&o).contains("nosuchcommand"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&d);
}

// ---- global flags and the log ----

#[test]
fn global_flags_that_callers_pass_are_accepted() {
    let (env, _reaper) = env_of(&["sh", "-c", "echo hello from $(hostname)"]);
    let log = env.dir.join("log.json");
    let root = env.root.to_str().unwrap();
    let bundle = env.bundle.to_str().unwrap();
    for (i, flags) in [
        vec!["--debug"],
        vec!["--systemd-cgroup"],
        vec!["--rootless=false"],
        vec!["--rootless=true"],
        vec!["--rootless=auto"],
        vec!["--log", log.to_str().unwrap(), "--log-format", "json"],
        vec!["--log", log.to_str().unwrap(), "--log-format=text"],
        vec![
            "--debug",
            "--systemd-cgroup",
            "--rootless=false",
            "--log",
            log.to_str().unwrap(),
            "--log-format",
            "json",
        ],
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("cli-flags-{i}");
        let mut args = vec!["--root", root];
        args.extend(flags.iter().copied());
        args.extend(["run", "--bundle", bundle, &id]);
        let o = hull_raw(&env.dir, &args);
        ok(&o, &format!("{flags:?}"));
        assert_eq!(stdout(&o), "hello from hull-test\n", "{flags:?}: stderr={}", stderr(&o));
        assert!(env.root_is_empty(), "{flags:?}: run left state behind");
    }
    // The list and state commands take them too (go-runc passes them to every command).
    let o = hull_raw(
        &env.dir,
        &["--root", root, "--debug", "--systemd-cgroup", "--rootless=false", "list", "-q"],
    );
    ok(&o, "list with global flags");
}

#[test]
fn log_json_on_error() {
    let (env, _reaper) = env_of(&["true"]);
    let log = env.dir.join("hull.log");
    let o = h(&env, &["--log", log.to_str().unwrap(), "--log-format", "json", "state", "nosuchid"]);
    assert!(!o.status.success(), "state of an unknown id must fail");
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    let text = std::fs::read_to_string(&log).expect("--log file written");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line: {l:?}: {e}")))
        .collect();
    assert!(!lines.is_empty(), "empty log");
    for l in &lines {
        assert!(l["level"].is_string() && l["msg"].is_string() && l["time"].is_string(), "{l}");
        assert!(looks_like_rfc3339(l["time"].as_str().unwrap()), "time {l}");
    }
    // containerd shows the last error line's msg.
    let last_err = lines.iter().rev().find(|l| l["level"] == "error").expect("an error line");
    let msg = last_err["msg"].as_str().unwrap();
    assert!(msg.contains("does not exist") && msg.contains("nosuchid"), "{msg}");

    // The log is appended to, not replaced; kill's words are the ones containerd matches.
    let o = h(&env, &["--log", log.to_str().unwrap(), "--log-format", "json", "kill", "nosuchid", "KILL"]);
    assert!(!o.status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.lines().count() > lines.len(), "the log was not appended to: {text}");
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "error");
    assert!(last["msg"].as_str().unwrap().contains("does not exist"), "{last}");
}

#[test]
fn error_line_on_stderr_says_error_and_matches_the_log() {
    // Tools that scan a runtime's stderr look for the word "error" (runc: level=error msg=...).
    let (env, _reaper) = env_of(&["true"]);
    let log = env.dir.join("hull.log");
    let o = h(&env, &["--log", log.to_str().unwrap(), "--log-format", "json", "delete", "nosuchid"]);
    assert!(!o.status.success(), "delete of an unknown id must fail");
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one stderr line: {err:?}");
    let msg = lines[0]
        .strip_prefix("hull: error: ")
        .unwrap_or_else(|| panic!("stderr does not start with `hull: error: `: {err:?}"));
    assert!(msg.contains("nosuchid") && msg.contains("does not exist"), "{err:?}");

    let text = std::fs::read_to_string(&log).expect("--log file written");
    let errors: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not a JSON line: {l:?}: {e}")))
        .filter(|l| l["level"] == "error")
        .collect();
    assert_eq!(errors.len(), 1, "one error line in the log: {text}");
    assert_eq!(errors[0]["msg"], msg, "the log's msg is the stderr message: {text}");
    assert!(env.root_is_empty());
}

#[test]
fn log_text_on_error() {
    let (env, _reaper) = env_of(&["true"]);
    let log = env.dir.join("hull.log");
    let o = h(&env, &["--log", log.to_str().unwrap(), "state", "nosuchid"]);
    assert!(!o.status.success());
    let text = std::fs::read_to_string(&log).expect("--log file written");
    let line = text.lines().last().unwrap();
    assert!(line.contains("level=error"), "{line}");
    assert!(line.contains("msg=") && line.contains("does not exist"), "{line}");
    assert!(line.contains("time="), "{line}");
}

#[test]
fn log_json_names_the_failed_create() {
    // A create that fails inside the container setup: the log's msg is the one clear message.
    let (mut env, _reaper) = env_of(&["true"]);
    env.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/data", "type": "bind", "source": "/no/such/source/dir", "options": ["bind"]
    }));
    env.write_config();
    let log = env.dir.join("hull.log");
    let o = h(
        &env,
        &[
            "--log",
            log.to_str().unwrap(),
            "--log-format",
            "json",
            "run",
            "--bundle",
            env.bundle.to_str().unwrap(),
            "cli-logcreate",
        ],
    );
    assert!(!o.status.success());
    let text = std::fs::read_to_string(&log).expect("--log file written");
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "error", "{text}");
    let msg = last["msg"].as_str().unwrap();
    assert!(
        msg.contains("cli-logcreate") && msg.contains("/data") && msg.contains("/no/such/source/dir"),
        "{msg}"
    );
    assert!(env.root_is_empty());
}

// ---- spec ----

#[test]
fn spec_writes_a_runnable_config() {
    let (env, _reaper) = env_of(&["true"]);
    let b = env.dir.join("specbundle");
    std::fs::create_dir_all(&b).unwrap();
    let o = hull_raw(&env.dir, &["spec", "--bundle", b.to_str().unwrap()]);
    ok(&o, "spec");
    let cfg: Value = serde_json::from_slice(&std::fs::read(b.join("config.json")).unwrap()).unwrap();
    assert!(cfg["ociVersion"].as_str().is_some_and(|v| v.starts_with("1.")), "{cfg}");
    assert_eq!(cfg["root"]["path"], "rootfs");
    assert!(cfg["process"]["args"].as_array().is_some_and(|a| !a.is_empty()));
    let nss: Vec<&str> =
        cfg["linux"]["namespaces"].as_array().unwrap().iter().map(|n| n["type"].as_str().unwrap()).collect();
    for ns in ["pid", "network", "ipc", "uts", "mount"] {
        assert!(nss.contains(&ns), "{nss:?}");
    }

    // A second spec does not overwrite it.
    let before = std::fs::read(b.join("config.json")).unwrap();
    let o = hull_raw(&env.dir, &["spec", "-b", b.to_str().unwrap()]);
    assert!(!o.status.success(), "spec must refuse to overwrite config.json");
    assert_eq!(std::fs::read(b.join("config.json")).unwrap(), before);

    // The default config runs a real container (with a program that needs no terminal).
    std::os::unix::fs::symlink(env.rootfs(), b.join("rootfs")).unwrap();
    let mut cfg = cfg;
    cfg["process"]["terminal"] = json!(false);
    cfg["process"]["args"] = json!(["sh", "-c", "echo pid=$$ host=$(hostname)"]);
    std::fs::write(b.join("config.json"), serde_json::to_vec(&cfg).unwrap()).unwrap();
    let o = h(&env, &["run", "--bundle", b.to_str().unwrap(), "cli-spec"]);
    ok(&o, "run of the default spec");
    assert_eq!(stdout(&o), format!("pid=1 host={}\n", cfg["hostname"].as_str().unwrap()));
}

#[test]
fn spec_rootless_maps_the_caller() {
    let d = scratch("spec-rootless");
    let o = hull_raw(&d, &["spec", "--rootless", "--bundle", d.to_str().unwrap()]);
    ok(&o, "spec --rootless");
    let cfg: Value = serde_json::from_slice(&std::fs::read(d.join("config.json")).unwrap()).unwrap();
    let nss: Vec<&str> =
        cfg["linux"]["namespaces"].as_array().unwrap().iter().map(|n| n["type"].as_str().unwrap()).collect();
    assert!(nss.contains(&"user"), "{nss:?}");
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    assert_eq!(cfg["linux"]["uidMappings"][0]["hostID"], uid, "{cfg}");
    assert_eq!(cfg["linux"]["uidMappings"][0]["containerID"], 0, "{cfg}");
    let _ = std::fs::remove_dir_all(&d);
}

// ---- features: what it claims must work ----

fn features(dir: &std::path::Path) -> Value {
    let o = hull_raw(dir, &["features"]);
    ok(&o, "features");
    serde_json::from_slice(&o.stdout).expect("features prints JSON")
}

#[test]
fn features_document_shape() {
    let d = scratch("features");
    let f = features(&d);
    assert!(f["ociVersionMin"].is_string() && f["ociVersionMax"].is_string(), "{f}");
    let v = stdout(&hull_raw(&d, &["--version"]));
    assert_eq!(f["ociVersionMax"], v.lines().nth(2).unwrap().strip_prefix("spec: ").unwrap());
    let nss: Vec<&str> =
        f["linux"]["namespaces"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    for ns in ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"] {
        assert!(nss.contains(&ns), "{nss:?}");
    }
    let opts: Vec<&str> = f["mountOptions"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    for o in ["ro", "rw", "bind", "rbind", "nosuid", "nodev", "noexec", "rprivate", "rslave"] {
        assert!(opts.contains(&o), "{opts:?}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// Every hook features lists runs, with the state on stdin.
#[test]
fn features_hooks_really_run() {
    let (mut env, _reaper) = env_of(&["true"]);
    let hooks_dir = bind_host_dir(&mut env, "hooks", "/host");
    let f = features(&env.dir);
    let listed: Vec<String> = f["hooks"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|h| h.as_str().unwrap().to_string())
        .collect();
    if listed.is_empty() {
        return;
    }
    let mut hooks = serde_json::Map::new();
    for name in &listed {
        let host_path = hooks_dir.join(name);
        // Runtime-namespace hooks see the host path; container-namespace ones may only see
        // /host. Either way the state JSON ends up in hooks/<name>.
        let script = format!("cat > {} 2>/dev/null || cat > /host/{name}", host_path.display());
        hooks.insert(name.clone(), json!([{ "path": "/bin/sh", "args": ["sh", "-c", script] }]));
    }
    env.config["hooks"] = Value::Object(hooks);
    env.write_config();
    let o = h(&env, &["run", "--bundle", env.bundle.to_str().unwrap(), "cli-hooks"]);
    ok(&o, "run with hooks");
    let mut missing = Vec::new();
    for name in &listed {
        match std::fs::read_to_string(hooks_dir.join(name)) {
            Ok(t) => {
                let st: Value = serde_json::from_str(&t)
                    .unwrap_or_else(|e| panic!("hook {name} stdin is not the state: {t:?}: {e}"));
                assert_eq!(st["id"], "cli-hooks", "{name}: {st}");
            }
            Err(_) => missing.push(name.clone()),
        }
    }
    assert!(missing.is_empty(), "features lists hooks that never ran: {missing:?}");
}

/// features lists capabilities: a container given only CAP_KILL must have only CAP_KILL.
#[test]
fn features_capabilities_really_apply() {
    let (mut env, _reaper) = env_of(&["sh", "-c", "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status"]);
    let f = features(&env.dir);
    if !f["linux"]["capabilities"].as_array().is_some_and(|a| a.iter().any(|c| c == "CAP_KILL")) {
        return;
    }
    env.config["process"]["capabilities"] = json!({
        "bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]
    });
    env.write_config();
    let o = h(&env, &["run", "--bundle", env.bundle.to_str().unwrap(), "cli-caps"]);
    ok(&o, "run with capabilities");
    let text = stdout(&o);
    let get = |k: &str| {
        text.lines()
            .find(|l| l.starts_with(k))
            .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
            .unwrap_or_default()
    };
    // CAP_KILL is bit 5.
    assert_eq!(get("CapBnd:"), "0000000000000020", "{text}");
    assert_eq!(get("CapEff:"), "0000000000000020", "{text}");
    assert_eq!(get("CapPrm:"), "0000000000000020", "{text}");
}

/// Runs `hull --root <root> ARGS` with stdout a pipe whose reader is already gone.
fn with_closed_stdout(env: &Env, args: &[&str]) -> Output {
    let mut fds = [0; 2];
    // SAFETY: pipe(2) writes two fds into the array it is given.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both fds were just made by pipe2 and belong to nothing else.
    let (r, w) = unsafe {
        use std::os::fd::FromRawFd;
        (std::os::fd::OwnedFd::from_raw_fd(fds[0]), std::os::fd::OwnedFd::from_raw_fd(fds[1]))
    };
    drop(r);
    let mut c = env.cmd(args);
    c.stdout(Stdio::from(w)).stderr(Stdio::piped()).stdin(Stdio::null());
    let child = c.spawn().expect("run hull");
    child.wait_with_output().expect("wait for hull")
}

/// `hull state c1 | grep -q created`, `hull list | head -1`: a reader that stops early is
/// normal; hull must neither panic (exit 134, "panicked" on stderr) nor report an error.
#[test]
fn output_commands_survive_a_reader_that_went_away() {
    let (env, _r) = env_of(&["sleep", "30"]);
    ok(&env.create("pipe1"), "create");
    for args in [
        &["state", "pipe1"][..],
        &["list"],
        &["list", "--format", "json"],
        &["list", "-q"],
        &["ps", "pipe1"],
        &["ps", "--format", "json", "pipe1"],
        &["features"],
        &["--version"],
    ] {
        let o = with_closed_stdout(&env, args);
        assert!(
            o.status.success() && !stderr(&o).contains("panicked"),
            "hull {args:?} with a closed stdout: {:?}, stderr={:?}",
            o.status,
            stderr(&o)
        );
    }
    ok(&env.hull(&["delete", "--force", "pipe1"]), "delete");
}
