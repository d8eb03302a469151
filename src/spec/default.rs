//! The config.json that `hull spec` writes: the same starter spec as `runc spec`
//! (and `runc spec --rootless`).

use std::path::PathBuf;

use oci_spec::runtime::{
    get_default_mounts, Capabilities, Capability, LinuxCapabilities, LinuxDeviceCgroup,
    LinuxIdMappingBuilder, LinuxNamespace, LinuxNamespaceType, LinuxResources, Mount, Spec,
};

/// What runc masks in a new container.
const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
    "/sys/devices/virtual/tpm",
];

/// What runc makes read-only in a new container.
const READONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// The starter spec; `rootless` adapts it for an unprivileged user, mapping the caller's
/// effective uid and gid to root in a new user namespace.
pub fn default_spec(rootless: bool) -> Spec {
    let mut spec = Spec::default();
    spec.set_version(super::OCI_VERSION.to_string());
    spec.set_hostname(Some("hull".to_string()));
    spec.set_annotations(None);
    spec.set_mounts(Some(get_default_mounts()));

    if let Some(p) = spec.process_mut() {
        p.set_terminal(Some(true));
        let caps: Capabilities =
            [Capability::AuditWrite, Capability::Kill, Capability::NetBindService].into_iter().collect();
        let mut lc = LinuxCapabilities::default();
        lc.set_bounding(Some(caps.clone()));
        lc.set_effective(Some(caps.clone()));
        lc.set_permitted(Some(caps));
        lc.set_inheritable(None);
        lc.set_ambient(None);
        p.set_capabilities(Some(lc));
    }

    if let Some(l) = spec.linux_mut() {
        l.set_masked_paths(Some(MASKED_PATHS.iter().map(|s| s.to_string()).collect()));
        l.set_readonly_paths(Some(READONLY_PATHS.iter().map(|s| s.to_string()).collect()));
        let mut deny_all = LinuxDeviceCgroup::default();
        deny_all.set_allow(false);
        deny_all.set_access(Some("rwm".to_string()));
        let mut resources = LinuxResources::default();
        resources.set_devices(Some(vec![deny_all]));
        l.set_resources(Some(resources));
        let ns = |t| {
            let mut n = LinuxNamespace::default();
            n.set_typ(t);
            n
        };
        use LinuxNamespaceType::*;
        l.set_namespaces(Some([Pid, Network, Ipc, Uts, Mount, Cgroup].into_iter().map(ns).collect()));
    }

    if rootless {
        to_rootless(&mut spec);
    }
    spec
}

/// What runc's ToRootless does: a user namespace mapping the caller to root and no network
/// namespace, /sys bound from the host (sysfs cannot be mounted without owning a network
/// namespace), no uid=/gid= mount options (those ids are not mapped), no cgroup settings.
fn to_rootless(spec: &mut Spec) {
    let uid = nix::unistd::geteuid().as_raw();
    let gid = nix::unistd::getegid().as_raw();
    if let Some(l) = spec.linux_mut() {
        let mut nss: Vec<LinuxNamespace> = l.namespaces().clone().unwrap_or_default();
        nss.retain(|n| !matches!(n.typ(), LinuxNamespaceType::Network | LinuxNamespaceType::User));
        let mut user = LinuxNamespace::default();
        user.set_typ(LinuxNamespaceType::User);
        nss.push(user);
        l.set_namespaces(Some(nss));
        let map = |host: u32| {
            let m = LinuxIdMappingBuilder::default().container_id(0u32).host_id(host).size(1u32).build();
            // The builder has no required fields: it cannot fail.
            m.map(|m| vec![m]).unwrap_or_default()
        };
        l.set_uid_mappings(Some(map(uid)));
        l.set_gid_mappings(Some(map(gid)));
        l.set_resources(None);
    }
    let mounts: Vec<Mount> = spec
        .mounts()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|mut m| {
            if m.destination() == &PathBuf::from("/sys") {
                let mut sys = Mount::default();
                sys.set_destination(PathBuf::from("/sys"));
                sys.set_typ(Some("none".to_string()));
                sys.set_source(Some(PathBuf::from("/sys")));
                sys.set_options(Some(
                    ["rbind", "nosuid", "noexec", "nodev", "ro"].iter().map(|s| s.to_string()).collect(),
                ));
                return sys;
            }
            if let Some(opts) = m.options().clone() {
                let kept: Vec<String> =
                    opts.into_iter().filter(|o| !o.starts_with("uid=") && !o.starts_with("gid=")).collect();
                m.set_options(Some(kept));
            }
            m
        })
        .collect();
    spec.set_mounts(Some(mounts));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn json(spec: &Spec) -> Value {
        serde_json::to_value(spec).unwrap()
    }

    fn ns_types(v: &Value) -> Vec<String> {
        v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap().to_string())
            .collect()
    }

    fn with_rootfs(f: impl FnOnce(&std::path::Path)) {
        let dir = std::env::temp_dir().join(format!(
            "hull-default-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(dir.join("rootfs")).unwrap();
        f(&dir);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn runc_shape() {
        let v = json(&default_spec(false));
        assert_eq!(v["ociVersion"], super::super::OCI_VERSION);
        assert_eq!(v["process"]["args"], serde_json::json!(["sh"]));
        assert_eq!(v["process"]["terminal"], true);
        assert_eq!(v["process"]["cwd"], "/");
        assert_eq!(v["root"]["path"], "rootfs");
        assert_eq!(v["root"]["readonly"], true);
        assert_eq!(v["process"]["rlimits"][0]["type"], "RLIMIT_NOFILE");
        assert_eq!(v["process"]["rlimits"][0]["hard"], 1024);
        let caps = &v["process"]["capabilities"];
        for set in ["bounding", "effective", "permitted"] {
            let mut got: Vec<&str> =
                caps[set].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
            got.sort();
            assert_eq!(got, ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"], "{set}");
        }
        assert!(caps.get("inheritable").is_none() && caps.get("ambient").is_none());
        let dests: Vec<&str> =
            v["mounts"].as_array().unwrap().iter().map(|m| m["destination"].as_str().unwrap()).collect();
        assert_eq!(dests, ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"]);
        assert_eq!(v["mounts"][5]["type"], "sysfs");
        assert!(v["mounts"][2]["options"].as_array().unwrap().contains(&"gid=5".into()));
        assert_eq!(ns_types(&v), ["pid", "network", "ipc", "uts", "mount", "cgroup"]);
        assert!(v["linux"]["maskedPaths"].as_array().unwrap().contains(&"/proc/kcore".into()));
        assert!(v["linux"]["readonlyPaths"].as_array().unwrap().contains(&"/proc/sys".into()));
        assert_eq!(v["linux"]["resources"]["devices"][0]["allow"], false);
        assert_eq!(v["linux"]["resources"]["devices"][0]["access"], "rwm");
        assert!(v.get("annotations").is_none());
        assert!(v["linux"].get("uidMappings").is_none());
    }

    #[test]
    fn rootless_shape() {
        let v = json(&default_spec(true));
        assert_eq!(ns_types(&v), ["pid", "ipc", "uts", "mount", "cgroup", "user"]);
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        assert_eq!(
            v["linux"]["uidMappings"],
            serde_json::json!([{"hostID": uid, "containerID": 0, "size": 1}])
        );
        assert_eq!(
            v["linux"]["gidMappings"],
            serde_json::json!([{"hostID": gid, "containerID": 0, "size": 1}])
        );
        let sys = v["mounts"].as_array().unwrap().iter().find(|m| m["destination"] == "/sys").unwrap();
        assert_eq!(sys["type"], "none");
        assert_eq!(sys["source"], "/sys");
        assert!(sys["options"].as_array().unwrap().contains(&"rbind".into()));
        for m in v["mounts"].as_array().unwrap() {
            for o in m["options"].as_array().map(|a| a.as_slice()).unwrap_or_default() {
                let o = o.as_str().unwrap();
                assert!(!o.starts_with("gid=") && !o.starts_with("uid="), "{o}");
            }
        }
        assert!(v["linux"].get("resources").is_none());
    }

    #[test]
    fn default_specs_pass_validation() {
        with_rootfs(|bundle| {
            for rootless in [false, true] {
                // Through JSON, as `hull create` reads what `hull spec` wrote.
                let text = serde_json::to_string(&default_spec(rootless)).unwrap();
                let spec: Spec = serde_json::from_str(&text).unwrap();
                if let Err(e) = super::super::validate::validate(&spec, bundle) {
                    panic!("rootless={rootless}: {}: {}", e.field, e.msg);
                }
            }
        });
    }
}
