//! Regression tests that attack hull the way runc's CVEs did.

mod common;
use common::*;
use serde_json::json;

fn created(env: &Env, id: &str) {
    let out = env.create(id);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// CVE-2019-5736: while the init is still hull (created, before start), a process the
/// container runs cannot reach the host binary through /proc/<init>/exe.
#[test]
fn cve_2019_5736_init_exe_is_not_reachable() {
    let env = Env::new(&["true"]);
    created(&env, "cve5736");
    let out = env
        .cmd(&[
            "exec",
            "cve5736",
            "sh",
            "-c",
            "readlink /proc/1/exe && echo READ; (echo x >> /proc/1/exe) 2>/dev/null && echo WROTE; echo done",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let o = stdout(&out);
    assert!(o.contains("done"), "{o} {}", stderr(&out));
    assert!(!o.contains("READ") && !o.contains("WROTE"), "the init's exe was reachable: {o}");
}

/// CVE-2024-21626: a cwd through /proc/self/fd could land outside the rootfs on an fd hull
/// still holds: refused.
#[test]
fn cve_2024_21626_cwd_through_proc_self_fd_is_refused() {
    for fd in [3, 4, 5, 6, 7, 8] {
        let mut env = Env::new(&["pwd"]);
        env.config["process"]["cwd"] = json!(format!("/proc/self/fd/{fd}"));
        env.write_config();
        let out = env.run("cve21626");
        assert!(!out.status.success(), "cwd /proc/self/fd/{fd} ran: {}", stdout(&out));
        assert!(stderr(&out).contains("process.cwd"), "{}", stderr(&out));
        assert!(env.root_is_empty());
    }
}

/// CVE-2019-16884: a rootfs whose /proc is not procfs (here a tmpfs) gets no sysctl writes.
#[test]
fn cve_2019_16884_fake_proc_is_refused() {
    let mut env = Env::new(&["true"]);
    let mounts = env.config["mounts"].as_array_mut().unwrap();
    mounts.retain(|m| m["destination"] != "/proc");
    mounts.insert(0, json!({"destination": "/proc", "type": "tmpfs", "source": "tmpfs"}));
    env.config["linux"]["maskedPaths"] = json!([]);
    env.config["linux"]["readonlyPaths"] = json!([]);
    env.config["linux"]["sysctl"] = json!({"kernel.shmmni": "1234"});
    env.write_config();
    let out = env.run("cve16884");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not procfs"), "{}", stderr(&out));
    assert!(env.root_is_empty());
}

/// youki's CVE-2025-54867: a /proc that the image made a symlink is refused, wherever it
/// points.
#[test]
fn proc_destination_that_is_a_symlink_is_refused() {
    let env = Env::new(&["true"]);
    std::fs::remove_dir(env.rootfs().join("proc")).unwrap();
    std::fs::create_dir(env.rootfs().join("fakeproc")).unwrap();
    std::os::unix::fs::symlink("/fakeproc", env.rootfs().join("proc")).unwrap();
    let out = env.run("cve54867");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("symlink"), "{}", stderr(&out));
    assert!(env.root_is_empty());
}

/// CVE-2025-31133: maskedPaths are covered with the real null device; a /dev/null the
/// container's /dev makes into something else is refused.
#[test]
fn masked_paths_use_the_real_null_device() {
    let env =
        Env::new(&["sh", "-c", "stat -c '%t:%T' /proc/kcore 2>/dev/null || stat -c '%t:%T' /proc/keys"]);
    let out = env.run("cve31133");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "1:3", "a masked file is /dev/null");
    // A spec device that replaces /dev/null with another node: masking must not use it.
    let mut env = Env::new(&["true"]);
    env.config["linux"]["devices"] = json!([{"path": "/dev/null", "type": "c", "major": 1, "minor": 5}]);
    env.write_config();
    let out = env.run("cve31133b");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not the null device"), "{}", stderr(&out));
    assert!(env.root_is_empty());
}

/// CVE-2022-29162: no inheritable capabilities unless the spec asks for them.
#[test]
fn cve_2022_29162_no_inheritable_caps_by_default() {
    let mut env = Env::new(&["grep", "CapInh", "/proc/self/status"]);
    let caps = json!(["CAP_KILL", "CAP_CHOWN"]);
    env.config["process"]["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
    env.write_config();
    let out = env.run("cve29162");
    assert_eq!(stdout(&out).trim(), "CapInh:\t0000000000000000");
}
