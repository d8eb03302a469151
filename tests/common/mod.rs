//! Shared test harness: real busybox bundles, the real hull binary, a private --root per test.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{json, Value};

pub const HULL: &str = env!("CARGO_BIN_EXE_hull");

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Where busybox-static puts its binary on Debian.
pub fn busybox() -> PathBuf {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("busybox-static is not installed (apt-get install busybox-static)");
}

/// One test's sandbox: a temp dir holding a bundle and a private state root.
pub struct Env {
    pub dir: PathBuf,
    pub root: PathBuf,
    pub bundle: PathBuf,
    pub config: Value,
}

impl Env {
    /// A bundle whose rootfs holds busybox and whose config runs `args`.
    pub fn new(args: &[&str]) -> Env {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("hull-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let bundle = dir.join("bundle");
        let root = dir.join("state");
        make_rootfs(&bundle.join("rootfs"));
        let config = default_config(args);
        let env = Env { dir, root, bundle, config };
        env.write_config();
        env
    }

    pub fn rootfs(&self) -> PathBuf {
        self.bundle.join("rootfs")
    }

    /// Writes `self.config` to the bundle's config.json.
    pub fn write_config(&self) {
        std::fs::write(self.bundle.join("config.json"), serde_json::to_vec_pretty(&self.config).unwrap())
            .unwrap();
    }

    /// `hull --root <root> ARGS`, with stdio captured.
    pub fn hull(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run hull")
    }

    /// The command, to adjust stdio before running it.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(HULL);
        c.arg("--root").arg(&self.root).args(args);
        c
    }

    /// `hull create` with the container's stdio sent to files in the test dir, so the
    /// caller does not wait on a pipe the container keeps open.
    pub fn create(&self, id: &str) -> Output {
        let out = std::fs::File::create(self.dir.join(format!("{id}.out"))).unwrap();
        let err = std::fs::File::create(self.dir.join(format!("{id}.err"))).unwrap();
        let mut c = self.cmd(&["create", "--bundle", self.bundle.to_str().unwrap(), id]);
        c.stdin(Stdio::null()).stdout(out).stderr(err);
        let status = c.status().expect("run hull create");
        Output {
            status,
            stdout: std::fs::read(self.dir.join(format!("{id}.out"))).unwrap_or_default(),
            stderr: std::fs::read(self.dir.join(format!("{id}.err"))).unwrap_or_default(),
        }
    }

    /// What the container wrote to stdout so far (for containers made by [`Env::create`]).
    pub fn container_stdout(&self, id: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{id}.out"))).unwrap_or_default()
    }

    /// `hull run` in the foreground with output captured.
    pub fn run(&self, id: &str) -> Output {
        let mut c = self.cmd(&["run", "--bundle", self.bundle.to_str().unwrap(), id]);
        c.stdin(Stdio::null());
        c.output().expect("run hull run")
    }

    /// The parsed output of `hull state`.
    pub fn state(&self, id: &str) -> Value {
        let out = self.hull(&["state", id]);
        assert!(out.status.success(), "state {id}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("state prints JSON")
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap_or("").to_string()
    }

    /// Waits (up to 10 s) for the container to reach `want`.
    pub fn wait_status(&self, id: &str, want: &str) {
        for _ in 0..1000 {
            if self.status(id) == want {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("container {id} never became {want}: {}", self.status(id));
    }

    /// True when no container directory is left under the root.
    pub fn root_is_empty(&self) -> bool {
        match std::fs::read_dir(&self.root) {
            Ok(mut d) => d.next().is_none(),
            Err(_) => true,
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Best effort: kill and delete whatever a failed test left, then the files.
        if let Ok(entries) = std::fs::read_dir(&self.root) {
            for e in entries.flatten() {
                let id = e.file_name().to_string_lossy().to_string();
                let _ = self.cmd(&["delete", "--force", &id]).output();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// A minimal root filesystem: busybox and its applets, /etc/passwd and /etc/group.
pub fn make_rootfs(rootfs: &Path) {
    for d in ["bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "root", "home", "var", "usr/bin"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    let bb = rootfs.join("bin/busybox");
    std::fs::copy(busybox(), &bb).unwrap();
    let list = Command::new(busybox()).arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let link = rootfs.join("bin").join(applet);
        if applet != "busybox" && !link.exists() {
            std::os::unix::fs::symlink("busybox", link).unwrap();
        }
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .unwrap();
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
}

/// runc's default config, with `args` as the program.
pub fn default_config(args: &[&str]) -> Value {
    json!({
        "ociVersion": "1.2.0",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "hull-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]}
        ],
        "linux": {
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}
            ],
            "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/proc/scsi"],
            "readonlyPaths": ["/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq",
                "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}
