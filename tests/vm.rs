//! `hull vm-run` on a machine that cannot boot the guest: it must say why at once, exit 125,
//! and leave nothing behind. (Booting for real is integration/vm/e2e.sh, in the test machine.)

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A scratch directory with a share, a stand-in kernel file and a private TMPDIR (where
/// vm-run would make its socket directory), removed at the end.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("hull-vm-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("share")).unwrap();
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        // Not a kernel: these tests never get as far as loading one.
        std::fs::write(dir.join("vmlinuz"), b"not a kernel").unwrap();
        Scratch { dir }
    }

    fn share(&self) -> String {
        self.dir.join("share").to_str().unwrap().to_string()
    }

    fn kernel(&self) -> String {
        self.dir.join("vmlinuz").to_str().unwrap().to_string()
    }

    /// `hull vm-run ARGS` with a clean environment for the kernel lookup: no config file, no
    /// HULL_KERNEL*, TMPDIR private; `env` adds variables.
    fn vm_run(&self, args: &[&str], env: &[(&str, &str)]) -> (Output, Duration) {
        let mut c = Command::new(HULL);
        c.arg("vm-run").args(args);
        c.env("HULL_CONFIG", self.dir.join("no-config.toml"))
            .env("TMPDIR", self.dir.join("tmp"))
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("HULL_KERNEL")
            .env_remove("HULL_KERNEL_PVM");
        for (k, v) in env {
            c.env(k, v);
        }
        let start = Instant::now();
        let out = run_bounded(&self.dir, c, None, 30);
        (out, start.elapsed())
    }

    /// True when vm-run left nothing in its TMPDIR.
    fn tmp_is_empty(&self) -> bool {
        std::fs::read_dir(self.dir.join("tmp")).unwrap().next().is_none()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_pvm_host() -> bool {
    Path::new("/sys/module/kvm_pvm").exists()
}

#[track_caller]
fn failed_with(o: &Output, code: i32, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "exit status; stderr: {err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}: {err}");
    }
}

#[test]
fn on_a_pvm_host_a_stock_kernel_is_refused_at_once() {
    if !is_pvm_host() {
        eprintln!("skipped: /dev/kvm here is not PVM (no /sys/module/kvm_pvm)");
        return;
    }
    let s = Scratch::new("pvm");
    let (out, took) = s.vm_run(&["--kernel", &s.kernel(), "--share", &s.share(), "--", "/bin/true"], &[]);
    failed_with(&out, 125, &["kvm_pvm", "PVM", &s.kernel(), "HULL_KERNEL_PVM", "would hang"]);
    assert!(took < Duration::from_secs(10), "took {took:?}: it must fail before booting anything");
    assert!(stdout(&out).is_empty());
    assert!(s.tmp_is_empty(), "vm-run left its socket directory behind");
}

#[test]
fn the_pvm_check_honours_the_config_file() {
    if !is_pvm_host() {
        eprintln!("skipped: /dev/kvm here is not PVM (no /sys/module/kvm_pvm)");
        return;
    }
    let s = Scratch::new("pvm-config");
    let config = s.dir.join("config.toml");
    std::fs::write(&config, format!("[vm]\nkernel = \"{}\"\nkernel_pvm = false\n", s.kernel())).unwrap();
    let (out, _) =
        s.vm_run(&["--share", &s.share(), "--", "/bin/true"], &[("HULL_CONFIG", config.to_str().unwrap())]);
    failed_with(&out, 125, &["kvm_pvm", &s.kernel()]);
}

#[test]
fn a_kernel_marked_pvm_gets_past_the_check_and_cleans_up_when_the_vm_cannot_be_built() {
    // The stand-in kernel cannot be loaded (or the VMM is not there yet): either way vm-run
    // fails after making its socket directory, and must remove it.
    let s = Scratch::new("pvm-marked");
    let (out, took) = s.vm_run(
        &["--kernel", &s.kernel(), "--share", &s.share(), "--boot-timeout", "5", "--", "/bin/true"],
        &[("HULL_KERNEL_PVM", "1")],
    );
    assert_eq!(out.status.code(), Some(125), "stderr: {}", stderr(&out));
    assert!(!stderr(&out).contains("kvm_pvm"), "the PVM check should pass: {}", stderr(&out));
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert!(s.tmp_is_empty(), "vm-run left its socket directory behind");
}

#[test]
fn a_missing_kernel_names_the_path_where_it_came_from_and_how_to_build_it() {
    let s = Scratch::new("nokernel");
    let missing = s.dir.join("missing-vmlinuz");
    let missing = missing.to_str().unwrap();

    let (out, _) = s.vm_run(&["--kernel", missing, "--share", &s.share(), "--", "/bin/true"], &[]);
    failed_with(&out, 125, &[missing, "--kernel", "just kernel"]);
    assert!(s.tmp_is_empty());

    let (out, _) = s.vm_run(&["--share", &s.share(), "--", "/bin/true"], &[("HULL_KERNEL", missing)]);
    failed_with(&out, 125, &[missing, "HULL_KERNEL", "just kernel"]);

    let config = s.dir.join("config.toml");
    std::fs::write(&config, format!("[vm]\nkernel = \"{missing}\"\n")).unwrap();
    let (out, _) =
        s.vm_run(&["--share", &s.share(), "--", "/bin/true"], &[("HULL_CONFIG", config.to_str().unwrap())]);
    failed_with(&out, 125, &[missing, config.to_str().unwrap(), "just kernel"]);
}

#[test]
fn without_any_setting_the_default_kernel_path_is_named() {
    let default = "/usr/local/share/hull/vmlinuz";
    if Path::new(default).exists() {
        eprintln!("skipped: {default} is installed here");
        return;
    }
    let s = Scratch::new("default-kernel");
    let (out, _) = s.vm_run(&["--share", &s.share(), "--", "/bin/true"], &[]);
    failed_with(&out, 125, &[default, "the default", "just kernel"]);
}

#[test]
fn a_bad_config_file_is_a_clear_error() {
    let s = Scratch::new("badconfig");
    let config = s.dir.join("config.toml");
    std::fs::write(&config, "[vm]\nkernal = \"/typo\"\n").unwrap();
    let (out, _) =
        s.vm_run(&["--share", &s.share(), "--", "/bin/true"], &[("HULL_CONFIG", config.to_str().unwrap())]);
    failed_with(&out, 125, &[config.to_str().unwrap(), "kernal"]);
}

#[test]
fn a_share_that_is_not_a_directory_is_refused() {
    let s = Scratch::new("badshare");
    let missing = s.dir.join("no-such-dir");
    let (out, _) =
        s.vm_run(&["--kernel", &s.kernel(), "--share", missing.to_str().unwrap(), "--", "/bin/true"], &[]);
    failed_with(&out, 125, &["--share", missing.to_str().unwrap()]);
    let (out, _) = s.vm_run(&["--kernel", &s.kernel(), "--share", &s.kernel(), "--", "/bin/true"], &[]);
    failed_with(&out, 125, &["--share", "not a directory"]);
    assert!(s.tmp_is_empty());
}

#[test]
fn bad_options_are_refused_before_anything_runs() {
    let s = Scratch::new("usage");
    // No command: a usage error from the argument parser.
    let (out, _) = s.vm_run(&["--kernel", &s.kernel(), "--share", &s.share()], &[]);
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(&out));
    let (out, _) =
        s.vm_run(&["--kernel", &s.kernel(), "--cwd", "tmp", "--share", &s.share(), "--", "/bin/true"], &[]);
    failed_with(&out, 125, &["--cwd", "absolute"]);
    let (out, _) = s.vm_run(
        &["--kernel", &s.kernel(), "--env", "NOVALUE", "--share", &s.share(), "--", "/bin/true"],
        &[],
    );
    failed_with(&out, 125, &["--env", "NAME=VALUE"]);
    let (out, _) =
        s.vm_run(&["--kernel", &s.kernel(), "--cpus", "0", "--share", &s.share(), "--", "/bin/true"], &[]);
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(&out));
}

#[test]
fn vm_run_is_listed_in_the_help() {
    let out = Command::new(HULL).arg("--help").output().unwrap();
    assert!(stdout(&out).contains("vm-run"), "{}", stdout(&out));
    let out = Command::new(HULL).args(["vm-run", "--help"]).output().unwrap();
    let help = stdout(&out);
    for flag in [
        "--kernel",
        "--mem",
        "--cpus",
        "--share",
        "--cwd",
        "--env",
        "--serial",
        "--cmdline-extra",
        "--boot-timeout",
        "125",
    ] {
        assert!(help.contains(flag), "vm-run --help lacks {flag}: {help}");
    }
}
