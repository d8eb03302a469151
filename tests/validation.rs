//! config.json validation through the real binary: every broken rule makes `hull create`
//! fail before anything exists, naming the bundle and the field. Also `hull spec` and
//! `hull features`.

mod common;

use std::path::Path;

use common::*;
use serde_json::{json, Value};

/// `hull create` on `env`'s bundle must fail naming the bundle and `field`, and leave
/// nothing under the root. Returns stderr.
fn rejected(env: &Env, field: &str) -> String {
    let out = env.create("bad");
    let err = stderr(&out);
    assert!(!out.status.success(), "create succeeded; stderr: {err}");
    let bundle = env.bundle.canonicalize().unwrap();
    assert!(err.contains(&format!("bundle {}", bundle.display())), "bundle not named: {err}");
    if !field.is_empty() {
        assert!(err.contains(&format!("config.json: {field}: ")), "field {field} not named: {err}");
    }
    assert!(env.root_is_empty(), "create left something under the root; stderr: {err}");
    err
}

/// A bundle whose config got `edit`: create must fail on `field` with `msg` in the error.
fn invalid(edit: impl FnOnce(&mut Value), field: &str, msg: &str) {
    let mut env = Env::new(&["true"]);
    edit(&mut env.config);
    env.write_config();
    let err = rejected(&env, field);
    assert!(err.contains(msg), "{msg:?} not in: {err}");
}

fn remove(v: &mut Value, key: &str) {
    v.as_object_mut().unwrap().remove(key);
}

fn push_ns(v: &mut Value, ns: Value) {
    v["linux"]["namespaces"].as_array_mut().unwrap().push(ns);
}

// ---- files that are not a config ----

#[test]
fn config_is_not_json() {
    let env = Env::new(&["true"]);
    std::fs::write(env.bundle.join("config.json"), "{ \"ociVersion\": \"1.2.0\", ").unwrap();
    let err = rejected(&env, "");
    assert!(err.contains("config.json"), "{err}");
}

#[test]
fn config_is_missing() {
    let env = Env::new(&["true"]);
    std::fs::remove_file(env.bundle.join("config.json")).unwrap();
    let err = rejected(&env, "");
    assert!(err.contains("config.json"), "{err}");
}

#[test]
fn rootfs_is_missing() {
    let env = Env::new(&["true"]);
    std::fs::remove_dir_all(env.rootfs()).unwrap();
    rejected(&env, "root.path");
}

#[test]
fn unknown_namespace_type_fails_parsing() {
    let mut env = Env::new(&["true"]);
    env.config["linux"]["namespaces"][0]["type"] = json!("bogus");
    env.write_config();
    let err = rejected(&env, "");
    assert!(err.contains("config.json") && err.contains("bogus"), "{err}");
}

#[test]
fn unknown_capability_fails_parsing() {
    let mut env = Env::new(&["true"]);
    env.config["process"]["capabilities"] = json!({"bounding": ["CAP_CHOWN", "CAP_BOGUS"]});
    env.write_config();
    let err = rejected(&env, "");
    assert!(err.contains("config.json") && err.contains("CAP_BOGUS"), "{err}");
}

// ---- ociVersion, root, process ----

#[test]
fn oci_version_missing() {
    invalid(|v| remove(v, "ociVersion"), "ociVersion", "missing");
}

#[test]
fn oci_version_not_1x() {
    invalid(|v| v["ociVersion"] = json!("2.0.0"), "ociVersion", "1.x");
}

#[test]
fn root_missing() {
    invalid(|v| remove(v, "root"), "root", "missing");
}

#[test]
fn root_path_is_a_file() {
    invalid(|v| v["root"]["path"] = json!("rootfs/etc/passwd"), "root.path", "not a directory");
}

#[test]
fn process_missing() {
    invalid(|v| remove(v, "process"), "process", "missing");
}

#[test]
fn process_args_empty() {
    invalid(|v| v["process"]["args"] = json!([]), "process.args", "at least one");
}

#[test]
fn process_cwd_relative() {
    invalid(|v| v["process"]["cwd"] = json!("tmp"), "process.cwd", "absolute");
}

#[test]
fn process_env_not_key_value() {
    invalid(|v| v["process"]["env"] = json!(["PATH=/bin", "JUNK"]), "process.env[1]", "KEY=VALUE");
}

#[test]
fn rlimit_listed_twice() {
    invalid(
        |v| {
            v["process"]["rlimits"] = json!([
                {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024},
                {"type": "RLIMIT_NOFILE", "soft": 10, "hard": 10}
            ])
        },
        "process.rlimits[1].type",
        "listed twice",
    );
}

#[test]
fn rlimit_soft_above_hard() {
    invalid(
        |v| v["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024}]),
        "process.rlimits[0]",
        "above the hard limit",
    );
}

// ---- mounts ----

#[test]
fn mount_destination_relative() {
    invalid(|v| v["mounts"][0]["destination"] = json!("proc"), "mounts[0].destination", "absolute");
}

#[test]
fn mount_destination_escapes() {
    invalid(|v| v["mounts"][3]["destination"] = json!("/dev/../../etc"), "mounts[3].destination", "..");
}

#[test]
fn bind_mount_without_source() {
    invalid(
        |v| v["mounts"].as_array_mut().unwrap().push(json!({"destination": "/data", "options": ["rbind"]})),
        "mounts[6].source",
        "source",
    );
}

#[test]
fn mount_without_type() {
    invalid(|v| remove(&mut v["mounts"][1], "type"), "mounts[1].type", "missing");
}

// ---- namespaces ----

#[test]
fn namespace_listed_twice() {
    invalid(|v| push_ns(v, json!({"type": "pid"})), "linux.namespaces[5].type", "listed twice");
}

#[test]
fn namespace_path_missing() {
    invalid(
        |v| v["linux"]["namespaces"][1]["path"] = json!("/run/netns/hull-test-does-not-exist"),
        "linux.namespaces[1].path",
        "No such file",
    );
}

/// Without a mount namespace the container's mounts go into the host's table (see
/// namespaces.rs): what would not stay under the container's own bind is refused.
#[test]
fn no_mount_namespace_with_user_namespace_or_root_propagation() {
    invalid(
        |v| {
            v["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "user"}]);
            v["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            v["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        },
        "linux.namespaces",
        "without a mount namespace",
    );
    invalid(
        |v| {
            v["linux"]["namespaces"] = json!([{"type": "pid"}]);
            v["linux"]["rootfsPropagation"] = json!("rshared");
        },
        "linux.rootfsPropagation",
        "no mount namespace",
    );
}

#[test]
fn user_namespace_without_mappings() {
    invalid(|v| push_ns(v, json!({"type": "user"})), "linux.uidMappings", "mapping");
}

#[test]
fn mappings_without_user_namespace() {
    invalid(
        |v| {
            v["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            v["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        },
        "linux.uidMappings",
        "no user namespace",
    );
}

#[test]
fn mapping_of_size_zero() {
    invalid(
        |v| {
            push_ns(v, json!({"type": "user"}));
            v["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            v["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 0}]);
        },
        "linux.gidMappings[0].size",
        "greater than 0",
    );
}

#[test]
fn time_offsets_without_time_namespace() {
    invalid(
        |v| v["linux"]["timeOffsets"] = json!({"monotonic": {"secs": 100}}),
        "linux.timeOffsets",
        "no time namespace",
    );
}

#[test]
fn hostname_without_uts_namespace() {
    invalid(
        |v| v["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "mount"}]),
        "hostname",
        "no uts namespace",
    );
}

// ---- paths, devices, hooks ----

#[test]
fn masked_path_relative() {
    invalid(|v| v["linux"]["maskedPaths"] = json!(["proc/kcore"]), "linux.maskedPaths[0]", "absolute");
}

#[test]
fn readonly_path_relative() {
    invalid(
        |v| v["linux"]["readonlyPaths"] = json!(["/proc/sys", "proc/bus"]),
        "linux.readonlyPaths[1]",
        "absolute",
    );
}

#[test]
fn device_outside_dev() {
    invalid(
        |v| v["linux"]["devices"] = json!([{"path": "/etc/null", "type": "c", "major": 1, "minor": 3}]),
        "linux.devices[0].path",
        "under /dev",
    );
}

#[test]
fn device_of_type_a() {
    invalid(
        |v| v["linux"]["devices"] = json!([{"path": "/dev/null", "type": "a", "major": 1, "minor": 3}]),
        "linux.devices[0].type",
        "c, b, u or p",
    );
}

#[test]
fn device_without_numbers() {
    invalid(
        |v| v["linux"]["devices"] = json!([{"path": "/dev/null", "type": "c"}]),
        "linux.devices[0]",
        "major and minor",
    );
}

#[test]
fn hook_path_relative() {
    invalid(
        |v| v["hooks"] = json!({"createRuntime": [{"path": "bin/true"}]}),
        "hooks.createRuntime[0].path",
        "absolute",
    );
}

// ---- hull spec ----

/// `hull create` on a bundle must not fail because of its config.json: a valid config may
/// still fail a later step (a terminal without --console-socket, say).
fn config_accepted(env: &Env) {
    let out = env.create("ok");
    if !out.status.success() {
        let err = stderr(&out);
        assert!(!err.contains("config.json"), "config.json rejected: {err}");
    }
}

fn spec_into(env: &Env, dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["spec", "--bundle", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    env.hull(&args)
}

#[test]
fn spec_writes_a_valid_config() {
    let env = Env::new(&["true"]);
    std::fs::remove_file(env.bundle.join("config.json")).unwrap();
    let out = spec_into(&env, &env.bundle, &[]);
    assert!(out.status.success(), "spec: {}", stderr(&out));
    let text = std::fs::read_to_string(env.bundle.join("config.json")).unwrap();
    let v: Value = serde_json::from_str(&text).expect("spec writes JSON");
    assert!(v["ociVersion"].as_str().unwrap().starts_with("1."));
    assert_eq!(v["process"]["args"], json!(["sh"]));
    assert_eq!(v["root"]["path"], "rootfs");
    let types: Vec<&str> =
        v["linux"]["namespaces"].as_array().unwrap().iter().map(|n| n["type"].as_str().unwrap()).collect();
    for t in ["pid", "network", "ipc", "uts", "mount"] {
        assert!(types.contains(&t), "{t} namespace missing: {types:?}");
    }
    assert!(!types.contains(&"user"));
    let dests: Vec<&str> =
        v["mounts"].as_array().unwrap().iter().map(|m| m["destination"].as_str().unwrap()).collect();
    for d in ["/proc", "/dev", "/dev/pts", "/sys"] {
        assert!(dests.contains(&d), "{d} mount missing");
    }
    config_accepted(&env);
}

#[test]
fn spec_rootless_adds_a_user_namespace() {
    let env = Env::new(&["true"]);
    std::fs::remove_file(env.bundle.join("config.json")).unwrap();
    let out = spec_into(&env, &env.bundle, &["--rootless"]);
    assert!(out.status.success(), "spec --rootless: {}", stderr(&out));
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(env.bundle.join("config.json")).unwrap()).unwrap();
    let types: Vec<&str> =
        v["linux"]["namespaces"].as_array().unwrap().iter().map(|n| n["type"].as_str().unwrap()).collect();
    assert!(types.contains(&"user"), "{types:?}");
    assert!(!types.contains(&"network"), "{types:?}");
    // SAFETY: geteuid(2) takes nothing and cannot fail.
    let uid = unsafe { libc::geteuid() };
    assert_eq!(v["linux"]["uidMappings"][0]["hostID"], uid);
    assert_eq!(v["linux"]["uidMappings"][0]["size"], 1);
    assert_eq!(v["linux"]["gidMappings"][0]["size"], 1);
    config_accepted(&env);
}

#[test]
fn spec_does_not_overwrite() {
    let env = Env::new(&["true"]);
    let before = std::fs::read(env.bundle.join("config.json")).unwrap();
    let out = spec_into(&env, &env.bundle, &[]);
    assert!(!out.status.success(), "spec overwrote config.json");
    assert!(stderr(&out).contains("exists"), "{}", stderr(&out));
    assert_eq!(std::fs::read(env.bundle.join("config.json")).unwrap(), before);
}

// ---- hull features ----

#[test]
fn features_prints_json() {
    let env = Env::new(&["true"]);
    let out = env.hull(&["features"]);
    assert!(out.status.success(), "features: {}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("features prints JSON");
    assert_eq!(v["ociVersionMin"], "1.0.0");
    let max = v["ociVersionMax"].as_str().expect("ociVersionMax");
    // The same version `hull --version` reports.
    let version = stdout(&env.hull(&["--version"]));
    assert!(version.contains(&format!("spec: {max}")), "{version}");
    let namespaces = v["linux"]["namespaces"].as_array().unwrap();
    assert!(namespaces.contains(&json!("mount")));
    assert!(v["linux"]["capabilities"].as_array().unwrap().contains(&json!("CAP_SYS_ADMIN")));
    assert!(v["hooks"].as_array().unwrap().contains(&json!("createRuntime")));
}
