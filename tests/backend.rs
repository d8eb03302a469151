//! Choosing the backend, through the real binary: the `--backend` flag beats the bundle's
//! `hull.backend` annotation, which beats the program's name (`hull-vm`), which beats
//! `backend` under `[runtime]` in the config file, which beats the default (native). A native
//! choice is seen in `hull state`'s annotations; a vm choice is seen in the vm backend's
//! refusal of a guest kernel that is not there (the config file names a missing one, so the
//! answer does not depend on the host's KVM) and in nothing left behind. Later commands take
//! the backend from the state, never from their own flags or name.
//!
//! On this host itself the vm backend cannot boot a guest (PVM, or no /dev/kvm): the tests
//! here check that it says which, and leaves nothing. Booting VM containers is tested in the
//! test machine (integration/vm/backend.sh, `just vm-backend`).

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

/// The guest kernel every config file here names: missing, so the vm backend refuses first
/// thing, whatever the host's KVM.
const MISSING_KERNEL: &str = "/nonexistent/hull-test/vmlinuz";
const VM_REFUSAL: &str = "vm backend: no guest kernel at /nonexistent/hull-test/vmlinuz";

/// A sandbox with its own config file (so the host's /etc/hull/config.toml never decides)
/// and a `hull-vm` link to the binary.
struct Setup {
    env: Env,
    config_file: PathBuf,
    hull_vm: PathBuf,
}

impl Setup {
    fn new(args: &[&str]) -> (Setup, Reaper) {
        let (env, reaper) = env_of(args);
        let config_file = env.dir.join("config.toml");
        let hull_vm = env.dir.join("bin/hull-vm");
        std::fs::create_dir_all(hull_vm.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(HULL, &hull_vm).unwrap();
        let s = Setup { env, config_file, hull_vm };
        s.write_config("", MISSING_KERNEL);
        (s, reaper)
    }

    /// The config file: `runtime` is the [runtime] section's body, `kernel` the vm's kernel.
    fn write_config(&self, runtime: &str, kernel: &str) {
        let text = format!("[runtime]\n{runtime}\n[vm]\nkernel = \"{kernel}\"\n");
        std::fs::write(&self.config_file, text).unwrap();
    }

    /// Writes `[runtime] backend = <word>` to the config file.
    fn config_says(&self, word: &str) {
        self.write_config(&format!("backend = \"{word}\""), MISSING_KERNEL);
    }

    fn annotate(&mut self, word: &str) {
        self.env.config["annotations"] = json!({ "hull.backend": word });
        self.env.write_config();
    }

    /// `PROGRAM --root <root> ARGS` with HULL_CONFIG set, bounded.
    fn cmd_as(&self, program: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(program);
        c.env("HULL_CONFIG", &self.config_file).arg("--root").arg(&self.env.root).args(args);
        c.stdin(Stdio::null());
        c
    }

    fn hull(&self, args: &[&str]) -> Output {
        run_bounded(&self.env.dir, self.cmd_as(Path::new(HULL), args), None, 20)
    }

    fn hull_vm(&self, args: &[&str]) -> Output {
        run_bounded(&self.env.dir, self.cmd_as(&self.hull_vm, args), None, 20)
    }

    /// `create` with `flags` before the subcommand, as `program`.
    fn create_as(&self, program: &Path, flags: &[&str], id: &str) -> Output {
        let mut args: Vec<&str> = flags.to_vec();
        args.extend(["create", "--bundle", self.env.bundle.to_str().unwrap(), id]);
        run_bounded(&self.env.dir, self.cmd_as(program, &args), None, 20)
    }

    fn state(&self, id: &str) -> Value {
        let out = self.hull(&["state", id]);
        assert!(out.status.success(), "state {id}: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).expect("state prints JSON")
    }

    /// The container is native: `state` says so and its init is a host process that runs.
    fn assert_native(&self, id: &str) {
        let st = self.state(id);
        assert_eq!(st["annotations"]["hull.backend"], "native", "{st}");
        assert_eq!(st["status"], "created", "{st}");
        let pid = st["pid"].as_i64().unwrap() as i32;
        assert!(start_time(pid).is_some(), "the init {pid} is not a live host process");
        let del = self.hull(&["delete", "--force", id]);
        assert!(del.status.success(), "delete: {}", stderr(&del));
    }

    /// The create failed with the vm backend's refusal and left nothing behind.
    fn assert_vm_refused(&self, out: &Output, id: &str) {
        self.assert_vm_refused_with(out, id, VM_REFUSAL);
    }

    /// The create failed with `words` in its error and left nothing behind.
    fn assert_vm_refused_with(&self, out: &Output, id: &str, words: &str) {
        assert!(!out.status.success(), "create with the vm backend succeeded");
        let e = stderr(out);
        assert!(e.contains(words), "the error should say {words:?}: {e}");
        assert!(e.contains(id), "the error should name the container: {e}");
        assert!(!self.env.root.join(id).exists(), "a state directory was left behind");
        assert!(self.env.root_is_empty(), "something was left under --root");
        assert_eq!(cgroup_dirs_named(id), Vec::<PathBuf>::new(), "cgroups left behind");
    }
}

#[test]
fn default_is_native() {
    let (s, _r) = Setup::new(&["sleep", "30"]);
    // No config file at all.
    let out = s.create_as(Path::new(HULL), &[], "bk-default");
    assert!(out.status.success(), "create: {}", stderr(&out));
    s.assert_native("bk-default");
}

#[test]
fn config_file_chooses_when_nothing_else_does() {
    let (s, _r) = Setup::new(&["sleep", "30"]);
    s.config_says("vm");
    let out = s.create_as(Path::new(HULL), &[], "bk-config-vm");
    s.assert_vm_refused(&out, "bk-config-vm");
    s.config_says("native");
    let out = s.create_as(Path::new(HULL), &[], "bk-config-native");
    assert!(out.status.success(), "create: {}", stderr(&out));
    s.assert_native("bk-config-native");
}

#[test]
fn program_name_beats_config_file() {
    let (s, _r) = Setup::new(&["sleep", "30"]);
    s.config_says("native");
    let out = s.create_as(&s.hull_vm, &[], "bk-argv0");
    s.assert_vm_refused(&out, "bk-argv0");
}

#[test]
fn annotation_beats_program_name() {
    let (mut s, _r) = Setup::new(&["sleep", "30"]);
    s.config_says("vm");
    s.annotate("native");
    let out = s.create_as(&s.hull_vm, &[], "bk-annot-native");
    assert!(out.status.success(), "create: {}", stderr(&out));
    s.assert_native("bk-annot-native");
    s.annotate("vm");
    let out = s.create_as(Path::new(HULL), &[], "bk-annot-vm");
    s.assert_vm_refused(&out, "bk-annot-vm");
}

#[test]
fn flag_beats_annotation() {
    let (mut s, _r) = Setup::new(&["sleep", "30"]);
    s.config_says("vm");
    s.annotate("vm");
    let out = s.create_as(&s.hull_vm, &["--backend", "native"], "bk-flag-native");
    assert!(out.status.success(), "create: {}", stderr(&out));
    s.assert_native("bk-flag-native");
    s.annotate("native");
    let out = s.create_as(Path::new(HULL), &["--backend", "vm"], "bk-flag-vm");
    s.assert_vm_refused(&out, "bk-flag-vm");
}

/// With a kernel that is there, this host's own KVM decides: a PVM host refuses a stock
/// kernel (it would hang), a host without /dev/kvm says so. Either way nothing is left.
#[test]
fn the_hosts_kvm_is_checked_before_anything_is_made() {
    let (s, _r) = Setup::new(&["true"]);
    let kernel = s.env.dir.join("vmlinuz");
    std::fs::write(&kernel, b"not a kernel, but a file").unwrap();
    s.write_config("backend = \"vm\"", kernel.to_str().unwrap());
    let pvm = Path::new("/sys/module/kvm_pvm").exists();
    let words = if !Path::new("/dev/kvm").exists() {
        "vm backend: no /dev/kvm on this host"
    } else if pvm {
        "which runs only guest kernels built for PVM"
    } else {
        eprintln!("skipped: this host has an ordinary /dev/kvm (the test machine's checks cover it)");
        return;
    };
    let out = s.create_as(Path::new(HULL), &[], "bk-kvm");
    s.assert_vm_refused_with(&out, "bk-kvm", words);
    if pvm {
        // The refusal names the kernel it would not boot.
        assert!(stderr(&out).contains(kernel.to_str().unwrap()), "{}", stderr(&out));
    }
}

#[test]
fn run_with_the_vm_backend_is_refused_too() {
    let (s, _r) = Setup::new(&["true"]);
    let out = s.hull(&["--backend", "vm", "run", "--bundle", s.env.bundle.to_str().unwrap(), "bk-run-vm"]);
    s.assert_vm_refused(&out, "bk-run-vm");
}

#[test]
fn bad_values_name_their_source() {
    let (mut s, _r) = Setup::new(&["sleep", "30"]);
    s.annotate("foo");
    let out = s.create_as(Path::new(HULL), &[], "bk-bad-annot");
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains("annotation hull.backend: unknown backend \"foo\" (native or vm)"), "{e}");
    assert!(s.env.root_is_empty(), "something was left under --root");

    let out = s.create_as(Path::new(HULL), &["--backend", "kvm"], "bk-bad-flag");
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains("--backend") && e.contains("unknown backend \"kvm\" (native or vm)"), "{e}");

    s.env.config["annotations"] = json!({});
    s.env.write_config();
    s.config_says("qemu");
    let out = s.create_as(Path::new(HULL), &[], "bk-bad-config");
    assert!(!out.status.success());
    let e = stderr(&out);
    let file = s.config_file.display().to_string();
    assert!(e.contains(&file) && e.contains("[runtime] backend: unknown backend \"qemu\""), "{e}");
    assert!(s.env.root_is_empty(), "something was left under --root");
}

#[test]
fn later_commands_take_the_backend_from_the_state() {
    let (s, _r) = Setup::new(&["sleep", "30"]);
    let id = "bk-later";
    let out = s.create_as(Path::new(HULL), &[], id);
    assert!(out.status.success(), "create: {}", stderr(&out));
    // Neither a flag nor the program's name changes the backend of an existing container.
    let start = s.hull_vm(&["--backend", "vm", "start", id]);
    assert!(start.status.success(), "start as hull-vm --backend vm: {}", stderr(&start));
    let st = s.state(id);
    assert_eq!(
        (st["status"].as_str(), st["annotations"]["hull.backend"].as_str()),
        (Some("running"), Some("native"))
    );

    // What the state records is what acts: a state that says vm goes to the vm backend,
    // whatever the flags say (and this state, made natively, names no VMM to exec through).
    let state_file = s.env.root.join(id).join("state.json");
    let native_text = std::fs::read_to_string(&state_file).unwrap();
    let mut doc: Value = serde_json::from_str(&native_text).unwrap();
    assert_eq!(doc["backend"], "native", "the state records the backend: {doc}");
    doc["backend"] = json!("vm");
    std::fs::write(&state_file, serde_json::to_vec(&doc).unwrap()).unwrap();
    let exec = s.hull(&["--backend", "native", "exec", id, "true"]);
    assert!(!exec.status.success(), "exec went through a vm state");
    assert!(
        stderr(&exec).contains("vm backend: the container's state names no VMM socket"),
        "{}",
        stderr(&exec)
    );
    assert_eq!(s.state(id)["annotations"]["hull.backend"], "vm");

    std::fs::write(&state_file, native_text).unwrap();
    let kill = s.hull_vm(&["kill", id, "KILL"]);
    assert!(kill.status.success(), "kill: {}", stderr(&kill));
    let del = s.hull(&["delete", "--force", id]);
    assert!(del.status.success(), "delete: {}", stderr(&del));
    assert!(s.env.root_is_empty());
}

#[test]
fn an_old_state_file_without_a_backend_is_native() {
    let (s, _r) = Setup::new(&["sleep", "30"]);
    let id = "bk-old-state";
    let out = s.create_as(Path::new(HULL), &[], id);
    assert!(out.status.success(), "create: {}", stderr(&out));
    // What hull wrote before it had backends: the same state without the field.
    let state_file = s.env.root.join(id).join("state.json");
    let mut doc: Value = serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    doc.as_object_mut().unwrap().remove("backend");
    std::fs::write(&state_file, serde_json::to_vec(&doc).unwrap()).unwrap();

    let st = s.state(id);
    assert_eq!(st["status"], "created", "{st}");
    assert_eq!(st["annotations"]["hull.backend"], "native", "{st}");
    let start = s.hull(&["start", id]);
    assert!(start.status.success(), "start: {}", stderr(&start));
    let ps = s.hull(&["ps", "--format", "json", id]);
    assert!(ps.status.success(), "ps: {}", stderr(&ps));
    let pids: Vec<i32> = serde_json::from_slice(&ps.stdout).unwrap();
    assert!(pids.contains(&(st["pid"].as_i64().unwrap() as i32)), "ps {pids:?} lacks the init");
    let kill = s.hull(&["kill", id, "KILL"]);
    assert!(kill.status.success(), "kill: {}", stderr(&kill));
    let del = s.hull(&["delete", "--force", id]);
    assert!(del.status.success(), "delete: {}", stderr(&del));
    assert!(s.env.root_is_empty());
    assert_eq!(cgroup_dirs_named(id), Vec::<PathBuf>::new(), "cgroups left behind");
}
