//! A seccomp profile (config.json's `linux.seccomp`, the JSON Docker and podman pass) compiled
//! to the BPF program hull installs: unknown syscalls and architectures, argument comparisons of
//! every operator and width, errno values, flags, notify actions. Apart from `config_json` so
//! the fuzzer works on the profile alone.

#![no_main]

use libfuzzer_sys::fuzz_target;
use oci_spec::runtime::LinuxSeccomp;

fuzz_target!(|data: &[u8]| {
    let Ok(profile) = serde_json::from_slice::<LinuxSeccomp>(data) else { return };
    let _ = hull::native::seccomp::compile(&profile);
});
