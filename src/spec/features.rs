//! The runtime-spec features document (`hull features`): what this build of hull really
//! supports, for callers (containerd, CRI-O) that check before they ask.

use serde_json::{json, Value};

/// Hooks hull runs, in the spec's order.
const HOOKS: &[&str] =
    &["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"];

/// Mount options hull turns into mount(2) flags, propagation, (the r* forms of the flags)
/// recursive mount_setattr(2) attributes or (`idmap`, `ridmap`) an idmapped bind mount
/// (native/idmapmount.rs); any other option is passed to the filesystem as data.
const MOUNT_OPTIONS: &[&str] = &[
    "async",
    "atime",
    "bind",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "idmap",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "private",
    "ratime",
    "rbind",
    "rdev",
    "rdiratime",
    "relatime",
    "remount",
    "rexec",
    "ridmap",
    "rnoatime",
    "rnodev",
    "rnodiratime",
    "rnoexec",
    "rnorelatime",
    "rnostrictatime",
    "rnosuid",
    "rnosymfollow",
    "ro",
    "rprivate",
    "rrelatime",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "rstrictatime",
    "rsuid",
    "rsymfollow",
    "runbindable",
    "rw",
    "shared",
    "slave",
    "strictatime",
    "suid",
    "sync",
    "unbindable",
];

const NAMESPACES: &[&str] = &["cgroup", "ipc", "mount", "network", "pid", "user", "uts", "time"];

/// Every capability the kernel headers name, in number order (CAP_CHOWN = 0 ..
/// CAP_CHECKPOINT_RESTORE = 40).
pub const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

pub fn features() -> Value {
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": super::OCI_VERSION,
        "hooks": HOOKS,
        "mountOptions": MOUNT_OPTIONS,
        "linux": {
            "namespaces": NAMESPACES,
            "capabilities": CAPABILITIES,
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false},
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                    "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                    "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
                "archs": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_RISCV64", "SCMP_ARCH_X32", "SCMP_ARCH_X86",
                    "SCMP_ARCH_X86_64"],
                "knownFlags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                    "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
                "supportedFlags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                    "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]
            },
            // Applied when the host has the module enabled; a clear error otherwise.
            "apparmor": {"enabled": true},
            "selinux": {"enabled": true},
            "intelRdt": {"enabled": false},
            "memoryPolicy": {
                "modes": ["MPOL_BIND", "MPOL_DEFAULT", "MPOL_INTERLEAVE", "MPOL_LOCAL", "MPOL_PREFERRED",
                    "MPOL_PREFERRED_MANY", "MPOL_WEIGHTED_INTERLEAVE"],
                "flags": ["MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES"]
            },
            // idmap and ridmap on bind mounts, natively; the vm backend refuses them.
            "mountExtensions": {"idmap": {"enabled": true}}
        },
        "annotations": {"io.github.hull.backends": "native"}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_the_keys_features_md_names() {
        let f = features();
        let keys: Vec<&str> = f.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        for k in ["ociVersionMin", "ociVersionMax", "hooks", "mountOptions", "linux", "annotations"] {
            assert!(keys.contains(&k), "{k} missing from {keys:?}");
        }
        let linux = f["linux"].as_object().unwrap();
        for k in [
            "namespaces",
            "capabilities",
            "cgroup",
            "seccomp",
            "apparmor",
            "selinux",
            "intelRdt",
            "mountExtensions",
        ] {
            assert!(linux.contains_key(k), "linux.{k} missing");
        }
        for k in ["v1", "v2", "systemd", "systemdUser"] {
            assert!(f["linux"]["cgroup"][k].is_boolean(), "linux.cgroup.{k}");
        }
        assert_eq!(f["ociVersionMax"], super::super::OCI_VERSION);
        assert_eq!(f["linux"]["seccomp"]["enabled"], true);
    }

    #[test]
    fn parses_as_oci_spec_features() {
        let text = serde_json::to_string(&features()).unwrap();
        let f: oci_spec::runtime::Features = serde_json::from_str(&text).unwrap();
        assert_eq!(f.oci_version_min(), "1.0.0");
        assert_eq!(f.hooks().as_ref().unwrap().len(), 6);
        let linux = f.linux().as_ref().unwrap();
        assert_eq!(linux.namespaces().as_ref().unwrap().len(), 8);
        // Every mode and flag listed is one oci-spec (and so hull's parser) knows.
        let mpol = linux.memory_policy().as_ref().unwrap();
        for m in mpol.modes().as_ref().unwrap() {
            let parsed: Result<oci_spec::runtime::MemoryPolicyModeType, _> =
                serde_json::from_value(Value::String(m.clone()));
            assert!(parsed.is_ok(), "{m}");
        }
        for f in mpol.flags().as_ref().unwrap() {
            let parsed: Result<oci_spec::runtime::MemoryPolicyFlagType, _> =
                serde_json::from_value(Value::String(f.clone()));
            assert!(parsed.is_ok(), "{f}");
        }
        assert_eq!(mpol.modes().as_ref().unwrap().len(), 7);
        assert_eq!(mpol.flags().as_ref().unwrap().len(), 3);
    }

    #[test]
    fn idmapped_mounts_are_advertised() {
        let f = features();
        let options: Vec<&str> =
            f["mountOptions"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
        for o in ["idmap", "ridmap"] {
            assert!(options.contains(&o), "mountOptions lacks {o}");
        }
        let parsed: oci_spec::runtime::Features = serde_json::from_value(f).unwrap();
        let ext =
            parsed.linux().as_ref().unwrap().mount_extensions().as_ref().expect("linux.mountExtensions");
        assert_eq!(ext.idmap().as_ref().expect("mountExtensions.idmap").enabled(), &Some(true));
    }

    #[test]
    fn mount_options_are_sorted_and_unique() {
        let mut sorted = MOUNT_OPTIONS.to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, MOUNT_OPTIONS);
    }

    #[test]
    fn capabilities_are_the_ones_oci_spec_knows() {
        assert_eq!(CAPABILITIES.len(), 41);
        for c in CAPABILITIES {
            let parsed: Result<oci_spec::runtime::Capability, _> =
                serde_json::from_value(Value::String(c.to_string()));
            assert!(parsed.is_ok(), "{c}");
        }
        let mut sorted = CAPABILITIES.to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), CAPABILITIES.len());
    }
}
