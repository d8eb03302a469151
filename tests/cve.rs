//! Regression tests that attack hull the way runc's CVEs did.

mod common;
use common::fdpass::recv_fd;
use common::*;
use serde_json::json;
use std::process::Output;

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

/// Creates `id` with a terminal and a console socket: create's output, and the console
/// socket's connection when hull made one.
fn create_with_console(env: &Env, id: &str) -> (Output, Option<std::os::unix::net::UnixStream>) {
    let sock = env.dir.join(format!("{id}.sock"));
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    listener.set_nonblocking(true).unwrap();
    let out = env
        .cmd(&[
            "create",
            "--console-socket",
            sock.to_str().unwrap(),
            "--bundle",
            env.bundle.to_str().unwrap(),
            id,
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    // create has returned: its connection, if any, is queued on the listener.
    let conn = listener.accept().ok().map(|(conn, _)| conn);
    (out, conn)
}

/// A container whose /dev is the image's (no tmpfs there), with a terminal.
fn image_dev_terminal(args: &[&str]) -> (Env, Reaper) {
    let (mut env, reaper) = env_of(args);
    env.config["process"]["terminal"] = json!(true);
    env.config["mounts"].as_array_mut().unwrap().retain(|m| m["destination"] != "/dev");
    env.write_config();
    std::fs::create_dir_all(env.rootfs().join("dev")).unwrap();
    (env, reaper)
}

/// CVE-2025-52881: a write to a procfs file (here a sysctl) must not follow a mount that
/// redirects it. The spec binds a host file over /proc/sys/net/ipv4/ip_forward, as a raced
/// mount would: hull must refuse to write the sysctl rather than write the host file.
#[test]
fn cve_2025_52881_sysctl_write_is_not_redirected_by_a_mount() {
    let (mut env, _reaper) = env_of(&["true"]);
    let victim = env.dir.join("victim");
    std::fs::write(&victim, "untouched\n").unwrap();
    env.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/proc/sys/net/ipv4/ip_forward", "type": "bind",
        "source": victim.to_str().unwrap(), "options": ["bind"]
    }));
    env.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    env.config["linux"]["readonlyPaths"] = json!([]);
    env.write_config();
    let out = env.run("cve52881");
    let e = stderr(&out);
    if on_vm() {
        // A VM container's binds onto /proc are left out (the guest's /proc is its own:
        // guest_spec.rs), so the sysctl is written to the guest's file and the host file
        // never reaches the guest.
        assert!(out.status.success(), "{e}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched\n");
        assert!(env.root_is_empty());
        return;
    }
    assert!(!out.status.success(), "the sysctl was written through the mount: {e}");
    assert!(e.contains("net.ipv4.ip_forward") && e.contains("mounted over"), "{e}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched\n");
    assert!(env.root_is_empty());
}

/// CVE-2025-52565: runc's bind of the pty onto /dev/console could be redirected (a symlink, or
/// a path raced between check and mount) onto a procfs file. hull mounts on an fd of the entry
/// itself and refuses a /dev/console that is not a file or a character device.
#[test]
fn cve_2025_52565_dev_console_symlink_is_refused() {
    for (i, target) in ["/etc/console-target", "/proc/sysrq-trigger"].iter().enumerate() {
        let (env, _reaper) = image_dev_terminal(&["true"]);
        let rootfs = env.rootfs();
        std::fs::write(rootfs.join("etc/console-target"), "untouched\n").unwrap();
        std::os::unix::fs::symlink(target, rootfs.join("dev/console")).unwrap();
        let id = format!("cve-console-{i}");
        let (out, conn) = create_with_console(&env, &id);
        let e = stderr(&out);
        assert!(!out.status.success(), "create with /dev/console -> {target} should fail");
        // (On the vm backend the master is the VMM's host pty, sent before the guest sees the
        // spec: only natively does the refusal come first.)
        if let Some(mut conn) = conn.filter(|_| !on_vm()) {
            use std::io::Read;
            conn.set_nonblocking(true).unwrap();
            let got = conn.read(&mut [0u8; 64]);
            assert!(matches!(got, Ok(0)) || got.is_err(), "a pty master was sent for a refused create");
        }
        assert!(e.contains("/dev/console") && e.contains("symlink"), "{e}");
        assert!(env.root_is_empty(), "state left after the refused create");
        assert_eq!(std::fs::read_to_string(rootfs.join("etc/console-target")).unwrap(), "untouched\n");
        let rootfs_s = rootfs.display().to_string();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(&rootfs_s), "a mount was left under {rootfs_s}: {mounts}");
    }
}

/// The same layout with /dev/console a plain file of the image: the pty is bound over it.
#[test]
fn dev_console_file_of_the_image_gets_the_pty() {
    let (env, _reaper) = image_dev_terminal(&["sh", "-c", "tty; ls -l /dev/console; echo done"]);
    std::fs::write(env.rootfs().join("dev/console"), "").unwrap();
    let (out, conn) = create_with_console(&env, "cve-console-file");
    assert!(out.status.success(), "{}", stderr(&out));
    let conn = conn.expect("a connection to the console socket");
    conn.set_nonblocking(false).unwrap();
    let (_, master) = recv_fd(&conn);
    assert!(env.hull(&["start", "cve-console-file"]).status.success());
    let got = read_until(std::fs::File::from(master), "done");
    assert!(got.contains("/dev/pts/0"), "{got}");
    assert!(got.contains("crw"), "/dev/console is the pty (a character device): {got}");
}

/// CVE-2019-19921, CVE-2023-27561 and CVE-2024-45310: a mount destination whose parent is
/// swapped between a directory and a symlink to a host directory while the runtime resolves
/// it. runc checked the path and then mounted (or made the missing file or directory) on the
/// path again, so a racing swap sent the mount, or an empty file or directory, to the host.
/// Here a thread swaps `/race` atomically (renameat2 RENAME_EXCHANGE) for as long as creates run
/// with a tmpfs at /race/sub and a file bind at /race/file: the host directory the symlink
/// names must never get an entry or a mount, and each create either succeeds (then is deleted)
/// or fails; nothing is left.
#[test]
fn racing_symlink_swap_cannot_send_mounts_or_files_to_the_host() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let (mut env, _reaper) = env_of(&["true"]);
    let victim = env.dir.join("host-victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("marker"), "host\n").unwrap();
    let payload = env.dir.join("payload");
    std::fs::write(&payload, "payload\n").unwrap();
    let rootfs = env.rootfs();
    std::fs::create_dir_all(rootfs.join("race")).unwrap();
    std::os::unix::fs::symlink(&victim, rootfs.join("race-alt")).unwrap();
    for m in [
        json!({"destination": "/race/sub", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}),
        json!({"destination": "/race/file", "type": "bind", "source": payload.to_str().unwrap(), "options": ["bind"]}),
    ] {
        env.config["mounts"].as_array_mut().unwrap().push(m);
    }
    env.write_config();

    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        let (a, b) = (
            std::ffi::CString::new(rootfs.join("race").to_str().unwrap()).unwrap(),
            std::ffi::CString::new(rootfs.join("race-alt").to_str().unwrap()).unwrap(),
        );
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: renameat2 with two NUL-terminated paths that outlive the call.
                let r = unsafe {
                    libc::renameat2(
                        libc::AT_FDCWD,
                        a.as_ptr(),
                        libc::AT_FDCWD,
                        b.as_ptr(),
                        libc::RENAME_EXCHANGE,
                    )
                };
                assert_eq!(r, 0, "renameat2: {}", std::io::Error::last_os_error());
                swaps += 1;
            }
            swaps
        })
    };
    let rounds = if on_vm() { 3 } else { 40 };
    let mut created = 0;
    for i in 0..rounds {
        let id = format!("cve-race-{i}");
        if env.create(&id).status.success() {
            created += 1;
            let o = env.hull(&["delete", "--force", &id]);
            assert!(o.status.success(), "delete {id}: {}", stderr(&o));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    assert!(swaps > 0);
    eprintln!("{created} of {rounds} creates succeeded while /race was swapped {swaps} times");
    let mut entries: Vec<String> = std::fs::read_dir(&victim)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        vec!["marker"],
        "the host directory got entries ({created} of {rounds} creates succeeded)"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let victim_s = victim.display().to_string();
    assert!(!mounts.contains(&victim_s), "a mount landed on the host directory: {mounts}");
    assert!(env.root_is_empty(), "state left behind");
}

/// CVE-2023-25809 as root: a container in a user namespace (its root host uid 100000) with no
/// cgroup namespace, whose cgroup mount hull can only make by binding the host's cgroups; /sys
/// as a fresh sysfs, and as a `rbind,ro` of the host's /sys (whose /sys/fs/cgroup submounts
/// the recursive bind brings along), with the spec's cgroup mount and without it. The
/// container's own cgroups are given to its root (as a delegated one would be), so that only a
/// read-only mount stops it writing there; the probe (common/cgroup_ro.rs) must find every
/// mount under /sys read-only and no directory under /sys/fs/cgroup writable.
#[test]
fn cve_2023_25809_root_in_a_user_namespace_gets_a_read_only_cgroup_mount() {
    if on_vm() {
        common::skipped("skipped: a VM container's cgroups are the guest's (native check)");
        return;
    }
    const HOST_ROOT: u32 = 100000;
    // (A fresh sysfs without a cgroup mount has nothing at /sys/fs/cgroup.)
    let variants = [("sysfs", true), ("rbind", true), ("rbind", false)];
    for (i, (sys, with_cgroup_mount)) in variants.into_iter().enumerate() {
        let id = format!("cve25809-{i}");
        // The container's cgroups at the top of each hierarchy, where the probe looks for them
        // in the host's tree.
        let cgroup = format!("hull-cve25809-{}-{i}", std::process::id());
        let (mut env, _reaper) = env_of(&["sh", "-c", &cgroup_ro::probe(&cgroup)]);
        let c = &mut env.config;
        c["linux"]["cgroupsPath"] = json!(format!("/{cgroup}"));
        c["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "user"}));
        let map = json!([{"containerID": 0, "hostID": HOST_ROOT, "size": 65536}]);
        c["linux"]["uidMappings"] = map.clone();
        c["linux"]["gidMappings"] = map;
        let mounts = c["mounts"].as_array_mut().unwrap();
        if sys == "rbind" {
            let m = mounts.iter_mut().find(|m| m["destination"] == "/sys").unwrap();
            *m = json!({"destination": "/sys", "type": "none", "source": "/sys",
                        "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
        }
        if with_cgroup_mount {
            mounts.push(json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                               "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}));
        }
        mounts.push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}));
        env.write_config();
        let what = format!("/sys {sys}, cgroup mount {with_cgroup_mount}");
        let out = env.create(&id);
        assert!(out.status.success(), "{what}: {}", stderr(&out));
        let owned = cgroup_dirs_named(&cgroup);
        assert!(!owned.is_empty(), "{what}: no cgroup named {cgroup}");
        for d in &owned {
            std::os::unix::fs::chown(d, Some(HOST_ROOT), Some(HOST_ROOT)).unwrap();
        }
        let out = env.hull(&["start", &id]);
        assert!(out.status.success(), "{what}: {}", stderr(&out));
        env.wait_status(&id, "stopped");
        let got = std::fs::read_to_string(env.dir.join(format!("{id}.out"))).unwrap_or_default();
        for d in &owned {
            let _ = std::fs::remove_dir(d.join("probe"));
        }
        let del = env.hull(&["delete", "--force", &id]);
        assert!(del.status.success(), "{what}: delete: {}", stderr(&del));
        cgroup_ro::assert_cgroup_read_only(&got, true, &what);
    }
}
