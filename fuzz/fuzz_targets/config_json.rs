//! config.json as `create` reads it: parsed and checked against the runtime spec's rules
//! (`spec::from_json`, what `spec::load` does once it has read the file), then what `create`
//! derives from a spec that passed: the seccomp filter, the memory policy, the cgroup device
//! rules. A config is the input of anyone who can write a bundle; none may panic hull.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// A bundle directory with an empty rootfs, made once: validation looks at the rootfs.
fn bundle() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("hull-fuzz-bundle-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("rootfs")).expect("make the fuzz bundle");
        dir.canonicalize().expect("the fuzz bundle's path")
    })
    .clone()
}

fuzz_target!(|data: &[u8]| {
    let Ok(bundle) = hull::spec::from_json(bundle(), data) else { return };
    if let Some(linux) = bundle.spec.linux() {
        if let Some(seccomp) = linux.seccomp() {
            let _ = hull::native::seccomp::compile(seccomp);
        }
        if let Some(policy) = linux.memory_policy() {
            let _ = hull::spec::mempolicy::parse(policy);
        }
    }
    let _ = hull::cgroups::with_default_devices(&bundle.spec);
});
