//! `hull exec`: a new process inside a running container, checked from what it saw.

mod common;
use common::fdpass::recv_fd;
use common::*;
use serde_json::json;

/// A running container whose init sleeps.
fn running(id: &str) -> Env {
    let env = Env::new(&["sleep", "1000"]);
    let out = env.create(id);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(env.hull(&["start", id]).status.success());
    env
}

fn exec(env: &Env, args: &[&str]) -> std::process::Output {
    let mut a = vec!["exec"];
    a.extend_from_slice(args);
    env.cmd(&a).stdin(std::process::Stdio::null()).output().unwrap()
}

#[test]
fn joins_every_namespace_of_the_container() {
    let env = running("ex-ns");
    let init = env.state("ex-ns")["pid"].as_i64().unwrap();
    let mut script = String::new();
    for ns in ["mnt", "uts", "ipc", "net", "pid"] {
        script.push_str(&format!("readlink /proc/self/ns/{ns}; "));
    }
    script.push_str("hostname; echo $$; cat /proc/1/cmdline | tr '\\0' ' '; echo");
    // On the vm backend the init is in the guest (`init` is the VMM): its namespaces are
    // read from inside, through pid 1 of the container's pid namespace.
    for ns in ["mnt", "uts", "ipc", "net"] {
        script.push_str(&format!("; readlink /proc/1/ns/{ns}"));
    }
    let out = exec(&env, &["ex-ns", "sh", "-c", &script]);
    assert!(out.status.success(), "{}", stderr(&out));
    let o = stdout(&out);
    let lines: Vec<&str> = o.lines().collect();
    for (i, ns) in ["mnt", "uts", "ipc", "net"].iter().enumerate() {
        let want = if on_vm() {
            lines[8 + i].to_string()
        } else {
            std::fs::read_link(format!("/proc/{init}/ns/{ns}")).unwrap().to_str().unwrap().to_string()
        };
        assert_eq!(lines[i], want, "{ns}");
    }
    // pid_for_children of the init is the container's; the exec'd shell lives in it.
    assert_eq!(lines[5], "hull-test");
    assert_ne!(lines[6], "1", "the exec'd process is not the init");
    assert!(lines[7].starts_with("sleep 1000"), "pid 1 seen from inside: {}", lines[7]);
}

#[test]
fn exit_code_and_signal() {
    let env = running("ex-code");
    assert_eq!(exec(&env, &["ex-code", "sh", "-c", "exit 42"]).status.code(), Some(42));
    assert_eq!(exec(&env, &["ex-code", "sh", "-c", "kill -9 $$"]).status.code(), Some(137));
}

#[test]
fn user_groups_env_and_cwd() {
    let env = running("ex-user");
    let script = "id; echo $FOO; pwd";
    let args =
        ["-u", "1000:1001", "-g", "5", "-e", "FOO=bar", "--cwd", "/tmp", "ex-user", "sh", "-c", script];
    let out = exec(&env, &args);
    assert_eq!(stdout(&out), "uid=1000 gid=1001 groups=5\nbar\n/tmp\n", "{}", stderr(&out));
    // Names come from the container's /etc/passwd (nobody is 65534 there).
    let out = exec(&env, &["-u", "nobody", "ex-user", "id", "-u"]);
    assert_eq!(stdout(&out).trim(), "65534", "{}", stderr(&out));
}

#[test]
fn process_json_with_caps_and_no_new_privs() {
    let env = running("ex-json");
    let p = env.dir.join("process.json");
    std::fs::write(
        &p,
        serde_json::to_vec(&json!({
            "args": ["sh", "-c", "echo $X; pwd; grep -E 'CapBnd|NoNewPrivs' /proc/self/status"],
            "env": ["PATH=/bin", "X=from-json"],
            "cwd": "/dev",
            "user": {"uid": 0, "gid": 0},
            "noNewPrivileges": true,
            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}
        }))
        .unwrap(),
    )
    .unwrap();
    let out = exec(&env, &["--process", p.to_str().unwrap(), "ex-json"]);
    let o = stdout(&out);
    assert!(o.starts_with("from-json\n/dev\n"), "{o} {}", stderr(&out));
    assert!(o.contains(&format!("CapBnd:\t{:016x}", 1u64 << 5)), "{o}");
    assert!(o.contains("NoNewPrivs:\t1"), "{o}");
}

#[test]
fn detach_writes_the_pid_file() {
    let env = running("ex-detach");
    let pidfile = env.dir.join("exec.pid");
    // The detached process keeps its stdio: give it none, or output() would wait for it.
    let out = env
        .cmd(&["exec", "-d", "--pid-file", pidfile.to_str().unwrap(), "ex-detach", "sleep", "100"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().parse().unwrap();
    if on_vm() {
        // The pid is the host process that stands for the guest's `sleep 100` (docs/vm.md):
        // alive while it runs, and the guest runs it in the container.
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists(), "the stand-in {pid} is gone");
        let ps = exec(&env, &["ex-detach", "ps", "-o", "args"]);
        assert!(
            stdout(&ps).lines().any(|l| l.trim() == "sleep 100"),
            "ps in the container: {:?}, stdout {:?}, stderr {:?}",
            ps.status,
            stdout(&ps),
            stderr(&ps)
        );
        return;
    }
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert_eq!(cmdline, "sleep\x00100\x00");
    let init = env.state("ex-detach")["pid"].as_i64().unwrap();
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap(),
        std::fs::read_link(format!("/proc/{init}/ns/pid")).unwrap()
    );
}

#[test]
fn missing_binary_fails_with_its_name_and_leaves_no_process() {
    let env = running("ex-missing");
    let before = count_in_pidns(&env, "ex-missing");
    let out = exec(&env, &["ex-missing", "no-such-binary"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no-such-binary"), "{}", stderr(&out));
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(count_in_pidns(&env, "ex-missing"), before);
}

fn count_in_pidns(env: &Env, id: &str) -> usize {
    let init = env.state(id)["pid"].as_i64().unwrap();
    let ns = std::fs::read_link(format!("/proc/{init}/ns/pid")).unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter(|e| std::fs::read_link(e.path().join("ns/pid")).ok().as_ref() == Some(&ns))
        .filter(|e| {
            // Zombies are gone for our purpose.
            std::fs::read_to_string(e.path().join("stat")).map(|s| !s.contains(") Z ")).unwrap_or(false)
        })
        .count()
}

#[test]
fn stopped_and_unknown_containers() {
    let env = Env::new(&["true"]);
    // runc's --keep: the container stays, stopped, after run returns.
    let out = env
        .cmd(&["run", "--keep", "--bundle", env.bundle.to_str().unwrap(), "ex-stopped"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env.status("ex-stopped"), "stopped");
    let out = exec(&env, &["ex-stopped", "true"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("container not running"), "{}", stderr(&out));
    let out = exec(&env, &["nosuch", "true"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
}

#[test]
fn no_hull_fd_reaches_the_process() {
    let env = running("ex-fds");
    // The shell stays (": " keeps busybox from exec'ing ls in its place): its fds are what
    // exec gave it.
    let out = exec(&env, &["ex-fds", "sh", "-c", "ls /proc/$$/fd; :"]);
    let text = stdout(&out);
    let fds: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(fds, ["0", "1", "2"], "{}", stderr(&out));
    // And it is not dumpable-by-hull: /proc/<pid>/exe is the program, not hull.
    let out = exec(&env, &["ex-fds", "readlink", "/proc/self/exe"]);
    assert_eq!(stdout(&out).trim(), "/bin/busybox");
}

#[test]
fn tty_through_a_console_socket() {
    let env = running("ex-tty");
    let sock = env.dir.join("exec-console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let t = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        std::fs::File::from(recv_fd(&conn).1)
    });
    let out = exec(
        &env,
        &["-t", "-d", "--console-socket", sock.to_str().unwrap(), "ex-tty", "sh", "-c", "tty; echo done"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let got = read_until(t.join().unwrap(), "done");
    assert!(got.contains("/dev/pts/"), "{got}");
}

#[test]
fn paused_container_needs_ignore_paused() {
    if native_only("exec --ignore-paused into a paused VM is refused: the frozen guest cannot start the process (docs/vm.md)") {
        return;
    }
    let env = running("ex-paused");
    assert!(env.hull(&["pause", "ex-paused"]).status.success());
    let out = exec(&env, &["ex-paused", "true"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("paused"), "{}", stderr(&out));
    // With --ignore-paused the process is made (and frozen with the rest until resume).
    // Its stdio must not be ours: it stays frozen, holding whatever it was given.
    let status = env
        .cmd(&["exec", "--ignore-paused", "-d", "ex-paused", "true"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(env.hull(&["resume", "ex-paused"]).status.success());
}

/// An exec'd process is in the container's cgroups, where its limits hold: it sees the same
/// /proc/self/cgroup as the init (on cgroup v2 it is born there, clone3 CLONE_INTO_CGROUP; on
/// v1 it joins each hierarchy). In one shell so both are read from the same namespaces.
#[test]
fn exec_runs_in_the_containers_cgroups() {
    let env = running("ex-incg");
    let out = exec(&env, &["ex-incg", "sh", "-c", "cat /proc/self/cgroup; echo --; cat /proc/1/cgroup"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let o = stdout(&out);
    let (mine, init) = o.split_once("--\n").unwrap_or_else(|| panic!("{o}"));
    assert!(!mine.trim().is_empty(), "{o}");
    // On a hybrid host hull places containers in the v1 hierarchies only ("0::" stays).
    let hybrid = !std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let placed = |t: &str| -> Vec<String> {
        t.lines().filter(|l| !(hybrid && l.starts_with("0::"))).map(str::to_string).collect()
    };
    assert_eq!(placed(mine), placed(init), "the exec'd process's cgroups against the init's");
}

#[test]
fn cgroup_flag_runs_in_a_sub_cgroup() {
    // On a VM the sub-cgroup is the host's (the VMM's cgroup is the container's, and the
    // stand-in joins it there) and the guest's, which the agent makes below the container's.
    let env = running("ex-subcg");
    let init = env.state("ex-subcg")["pid"].as_i64().unwrap();
    // The sub-cgroup must exist, as with runc: make it in every hierarchy of the init.
    let own = std::fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut made = Vec::new();
    for line in own.lines() {
        let mut it = line.splitn(3, ':');
        let (_, ctrl, path) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
        for m in mounts.lines() {
            let (left, right) = m.split_once(" - ").unwrap();
            let mut r = right.split(' ');
            let fstype = r.next().unwrap();
            let opts = r.nth(1).unwrap_or("");
            let hit = match fstype {
                "cgroup2" => ctrl.is_empty(),
                "cgroup" => !ctrl.is_empty() && ctrl.split(',').all(|c| opts.split(',').any(|o| o == c)),
                _ => false,
            };
            if hit {
                let parent = format!("{}{}", left.split(' ').nth(4).unwrap(), path);
                let dir = format!("{parent}/sub");
                if std::fs::create_dir(&dir).is_ok() {
                    // A v1 cpuset starts empty and takes no process until it has cpus and mems.
                    for f in ["cpuset.cpus", "cpuset.mems"] {
                        // (v1 only: on v2 the file may be absent or not writable, and not needed.)
                        if let Ok(v) = std::fs::read_to_string(format!("{parent}/{f}")) {
                            let _ = std::fs::write(format!("{dir}/{f}"), v.trim());
                        }
                    }
                    made.push(dir);
                }
                break;
            }
        }
    }
    let out = exec(&env, &["--cgroup", "sub", "ex-subcg", "cat", "/proc/self/cgroup"]);
    let o = stdout(&out);
    for d in &made {
        let _ = std::fs::remove_dir(d);
    }
    assert!(out.status.success(), "{}", stderr(&out));
    if on_vm() {
        // The guest's cgroup v2 tree: the container's cgroup there, then the sub-cgroup.
        assert!(o.lines().count() == 1 && o.trim_end().ends_with("/sub"), "{o}");
        return;
    }
    // On a hybrid host hull places containers in the v1 hierarchies only ("0::" stays).
    let hybrid = !std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    assert!(
        o.lines().filter(|l| !(hybrid && l.starts_with("0::"))).all(|l| l.ends_with("/ex-subcg/sub")),
        "{o}"
    );
}

#[test]
fn cgroup_flag_cannot_climb_out_of_the_container() {
    let env = running("ex-subesc");
    for bad in ["../escape", "sub/../../escape", "memory:../escape"] {
        let out = exec(&env, &["--cgroup", bad, "ex-subesc", "touch", "/tmp/climbed"]);
        assert!(!out.status.success(), "--cgroup {bad} was taken");
        let err = stderr(&out);
        assert!(err.contains(bad) && err.contains("below the container's cgroup"), "{err}");
    }
    assert!(!env.rootfs().join("tmp/climbed").exists(), "a refused exec ran its program");
}

#[test]
fn cap_flag_adds_a_capability() {
    let env = running("ex-cap");
    let out = exec(&env, &["--cap", "CAP_SYS_ADMIN", "ex-cap", "grep", "CapEff", "/proc/self/status"]);
    assert_eq!(stdout(&out).trim(), format!("CapEff:\t{:016x}", 1u64 << 21), "{}", stderr(&out));
    let out = exec(&env, &["--cap", "CAP_NOPE", "ex-cap", "true"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("CAP_NOPE"), "{}", stderr(&out));
}

/// linux.personality holds for exec'd processes too (runc sets it in its exec init): a
/// LINUX32 container's `uname -m` is i686 whether the init or `exec` runs it.
#[test]
fn personality_applies_to_exec() {
    // The init writes through a temporary name and renames it, so the host never reads a
    // half-written file; `start` returns once the shell runs, not once it wrote, and on a VM
    // the write comes through the guest's virtio-fs, later still: wait for it.
    let mut env = Env::new(&[
        "sh",
        "-c",
        "uname -m > /tmp/init-machine.new; mv /tmp/init-machine.new /tmp/init-machine; exec sleep 1000",
    ]);
    env.config["linux"]["personality"] = json!({"domain": "LINUX32"});
    env.write_config();
    let id = "ex-personality";
    assert!(env.create(id).status.success());
    assert!(env.hull(&["start", id]).status.success());
    let out = exec(&env, &[id, "uname", "-m"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "i686");
    let saw = env.rootfs().join("tmp/init-machine");
    wait_until(&format!("{} from the init", saw.display()), || saw.exists());
    let init_saw = std::fs::read_to_string(&saw).unwrap();
    assert_eq!(init_saw.trim(), "i686");
}

/// linux.memoryPolicy holds for exec'd processes too, as for the init.
#[test]
fn memory_policy_applies_to_exec() {
    if native_only("the guest kernel has no NUMA support: a memoryPolicy fails create in the guest") {
        return;
    }
    if !std::path::Path::new("/proc/self/numa_maps").exists() {
        return eprintln!("[skipped] memoryPolicy: the kernel has no NUMA support");
    }
    let mut env = Env::new(&["sleep", "1000"]);
    env.config["linux"]["memoryPolicy"] = json!({"mode": "MPOL_INTERLEAVE", "nodes": "0"});
    env.write_config();
    let id = "ex-mempolicy";
    assert!(env.create(id).status.success());
    assert!(env.hull(&["start", id]).status.success());
    let out = exec(&env, &[id, "head", "-n", "1", "/proc/self/numa_maps"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).split_whitespace().nth(1), Some("interleave:0"), "{}", stdout(&out));
}

/// `exec --preserve-fds 3`: fd 3 a pipe the process reads to its end (256 KiB), fd 4 a pipe
/// it writes, fd 5 a listening socket on which it accepts a connection and answers (the test
/// binary as the program: `common::accept_on_preserved_listeners`); as natively on a VM, where
/// the exec's stand-in and a relay in the guest carry them.
#[test]
fn preserved_fds_reach_an_exec() {
    use std::io::{BufRead, Read, Write};
    use std::os::fd::AsRawFd;
    let env = Env::new(&["sleep", "1000"]);
    install_test_binary(&env.rootfs(), "hull-test-helper");
    assert!(env.create("ex-pfds").status.success());
    assert!(env.hull(&["start", "ex-pfds"]).status.success());
    let (in_r, in_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let (out_r, out_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let script = "wc -c <&3; echo from-exec >&4; ACCEPT_ON=5 exec /hull-test-helper --exact \
                  common::accept_on_preserved_listeners --ignored --nocapture --test-threads=1";
    let mut c = env.cmd(&["exec", "--preserve-fds", "3", "ex-pfds", "sh", "-c", script]);
    c.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    as_fds(&mut c, &[in_r.as_raw_fd(), out_w.as_raw_fd(), listener.as_raw_fd()]);
    let child = c.spawn().unwrap();
    drop((in_r, out_w, listener));
    let writer = std::thread::spawn(move || {
        let mut w = std::fs::File::from(in_w);
        w.write_all(&vec![7u8; 256 * 1024]).unwrap();
    });
    // The program keeps fd 4 until it has served the connection: the answer first.
    let mut t = std::net::TcpStream::connect(addr).unwrap();
    t.write_all(b"knock\n").unwrap();
    let mut answer = String::new();
    std::io::BufReader::new(t).read_line(&mut answer).unwrap();
    let mut written = String::new();
    std::fs::File::from(out_r).read_to_string(&mut written).unwrap();
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let o = stdout(&out);
    assert_eq!(o.lines().next().map(str::trim), Some("262144"), "what the exec read on fd 3: {o}");
    assert_eq!(written, "from-exec\n", "what the exec wrote on fd 4");
    assert_eq!(answer, "fd 5 accepted: knock\n", "the exec's answer on fd 5: {o} {}", stderr(&out));
}
