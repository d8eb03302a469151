//! The container's spec as the guest agent applies it with the native code: the same process,
//! namespaces, mounts, devices, masked and read-only paths, sysctls and seccomp profile, less
//! what belongs to the host:
//!
//! - the root is the share the guest mounted (the rootfs), read-only as the spec says;
//! - a bind mount of a host path reads from its entry in the binds share (`<index>/<source's
//!   name>`, [`binds::entry_name`]); binds onto the guest's own /proc, /sys and /dev are left
//!   out (the guest has its own);
//! - of the hooks only startContainer, which runs in the container after `start` and whose
//!   path is the container's (the others ran on the host, or run there: they name host
//!   programs), no network namespace (the guest's own is the container's), no namespace by path (those
//!   are the host's), no AppArmor or SELinux label (the guest kernel has neither);
//! - a cgroup of its own in the guest ([`GUEST_CGROUP`]) with the spec's memory, cpu and
//!   pids limits, so that the container reads its limits where it looks for them
//!   (/sys/fs/cgroup/memory.max, as JVMs and the like do); the host cgroup holds the VM and
//!   enforces them on the host. The device rules hold in the guest's cgroup: they name
//!   devices by type and numbers, which mean the same devices to the guest kernel, and a
//!   device node in the share opens the guest's device, never the host's. What names host
//!   things is left out: cpusets and memory nodes, block IO, hugepages, RDMA, swap, network
//!   classes and unified files.

use oci_spec::runtime::{Hooks, LinuxCpu, LinuxMemory, LinuxResources, Mount, Process, Spec};

use std::path::Path;

use super::binds::{self, Bind};
use crate::agent::BINDS_MOUNT_POINT;
use crate::vm::SHARE_MOUNT_POINT;

/// `binds` are the spec's staged binds, as [`binds::from_spec`] found them.
pub fn for_guest(spec: &Spec, binds: &[Bind]) -> Result<Spec, String> {
    let mut guest = spec.clone();
    if let Some(root) = guest.root_mut() {
        root.set_path(SHARE_MOUNT_POINT.into());
    }
    guest.set_mounts(Some(mounts(spec, binds)?));
    guest.set_hooks(start_container_hooks(spec));
    if let Some(process) = guest.process().clone() {
        guest.set_process(Some(process_for_guest(&process)));
    }
    if let Some(linux) = guest.linux_mut() {
        let resources = linux.resources().as_ref().map(guest_resources);
        linux.set_resources(resources);
        linux.set_cgroups_path(Some(GUEST_CGROUP.into()));
        linux.set_mount_label(None);
        linux.set_intel_rdt(None);
        if let Some(namespaces) = linux.namespaces_mut() {
            namespaces.retain(|ns| ns.typ() != oci_spec::runtime::LinuxNamespaceType::Network);
            for ns in namespaces.iter_mut() {
                ns.set_path(None);
            }
        }
    }
    Ok(guest)
}

/// The spec's startContainer hooks alone, or None.
fn start_container_hooks(spec: &Spec) -> Option<Hooks> {
    let start = crate::hooks::of_kind(spec, crate::hooks::Kind::StartContainer);
    if start.is_empty() {
        return None;
    }
    let mut hooks = Hooks::default();
    hooks.set_start_container(Some(start));
    Some(hooks)
}

/// The container's cgroup in the guest.
pub const GUEST_CGROUP: &str = "/hull/container";

/// The limits the guest's cgroup repeats: memory, cpu weight and quota, pids, device rules.
fn guest_resources(host: &LinuxResources) -> LinuxResources {
    let mut r = LinuxResources::default();
    if let Some(m) = host.memory() {
        let mut memory = LinuxMemory::default();
        memory.set_limit(m.limit());
        memory.set_reservation(m.reservation());
        r.set_memory(Some(memory));
    }
    if let Some(c) = host.cpu() {
        let mut cpu = LinuxCpu::default();
        cpu.set_shares(c.shares());
        cpu.set_quota(c.quota());
        cpu.set_period(c.period());
        r.set_cpu(Some(cpu));
    }
    r.set_pids(*host.pids());
    r.set_devices(host.devices().clone());
    r
}

/// A process (the workload, or one `exec` runs) without the host's security labels.
pub fn process_for_guest(process: &Process) -> Process {
    let mut p = process.clone();
    p.set_apparmor_profile(None);
    p.set_selinux_label(None);
    p
}

/// The spec's mounts, each host bind reading from its entry in the binds share: `binds` are
/// the staged ones in the spec's order, which this walk repeats, each named by
/// [`binds::entry_name`] as the staging names it. A staged mount without its bind (or with
/// another's destination) is an error, never a bind of the wrong entry.
fn mounts(spec: &Spec, binds: &[Bind]) -> Result<Vec<Mount>, String> {
    let mut staged = binds.iter().enumerate();
    let mut out = Vec::new();
    for m in spec.mounts().iter().flatten() {
        match binds::staged(m) {
            None => out.push(m.clone()),
            Some(false) => {}
            Some(true) => {
                let dest = m.destination().display().to_string();
                let (index, bind) = staged
                    .next()
                    .filter(|(_, b)| b.dest == dest)
                    .ok_or_else(|| format!("bind mount {dest}: not staged for the guest"))?;
                let mut guest = m.clone();
                guest.set_source(Some(
                    Path::new(BINDS_MOUNT_POINT).join(binds::entry_name(index, &bind.source)),
                ));
                out.push(guest);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_guest_gets_the_spec_less_what_belongs_to_the_host() {
        let spec: Spec = serde_json::from_value(json!({
            "ociVersion": "1.0.2",
            "root": {"path": "/bundles/c1/rootfs", "readonly": true},
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                        "apparmorProfile": "docker-default", "noNewPrivileges": true},
            "hooks": {"prestart": [{"path": "/usr/bin/netns-setup"}],
                      "createContainer": [{"path": "/usr/bin/nvidia-hook"}],
                      "startContainer": [{"path": "/bin/started", "args": ["started", "now"]}]},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev/shm", "type": "bind", "source": "/var/lib/shm", "options": ["rbind"]},
                {"destination": "/data", "type": "bind", "source": "/srv/data", "options": ["rbind", "ro"]},
                {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"},
                {"destination": "/etc/hosts", "type": "none", "source": "/run/hosts", "options": ["bind"]}
            ],
            "linux": {
                "cgroupsPath": "/pods/c1",
                "resources": {"memory": {"limit": 268435456}, "cpu": {"cpus": "2-3", "shares": 512},
                              "devices": [{"allow": false, "access": "rwm"},
                                          {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"}]},
                "namespaces": [
                    {"type": "pid"}, {"type": "mount"},
                    {"type": "network", "path": "/var/run/netns/cni-1"},
                    {"type": "ipc", "path": "/proc/42/ns/ipc"}
                ]
            }
        }))
        .unwrap();
        let staged = |source: &str, dest: &str, read_only: bool| Bind {
            source: source.into(),
            dest: dest.into(),
            read_only,
            is_dir: true,
            recursive: true,
        };
        let binds = [staged("/srv/data", "/data", true), staged("/run/hosts", "/etc/hosts", false)];
        let guest = for_guest(&spec, &binds).unwrap();
        let root = guest.root().as_ref().unwrap();
        assert_eq!((root.path().to_str(), root.readonly()), (Some(SHARE_MOUNT_POINT), Some(true)));
        let hooks = guest.hooks().as_ref().unwrap();
        assert_eq!(hooks.prestart(), &None);
        assert_eq!(hooks.create_container(), &None);
        let start = hooks.start_container().as_ref().unwrap();
        assert_eq!(start.len(), 1);
        assert_eq!(start[0].path().to_str(), Some("/bin/started"));
        let process = guest.process().as_ref().unwrap();
        assert_eq!((process.apparmor_profile(), process.no_new_privileges()), (&None, Some(true)));
        let mounts: Vec<(String, String)> = guest
            .mounts()
            .iter()
            .flatten()
            .map(|m| {
                (m.destination().display().to_string(), m.source().as_ref().unwrap().display().to_string())
            })
            .collect();
        assert_eq!(
            mounts,
            [
                ("/proc".to_string(), "proc".to_string()),
                ("/data".to_string(), format!("{BINDS_MOUNT_POINT}/0/data")),
                ("/tmp".to_string(), "tmpfs".to_string()),
                ("/etc/hosts".to_string(), format!("{BINDS_MOUNT_POINT}/1/hosts")),
            ]
        );
        let linux = guest.linux().as_ref().unwrap();
        let memory = linux.resources().as_ref().and_then(|r| *r.memory()).unwrap();
        assert_eq!(memory.limit(), Some(268435456));
        let resources = linux.resources().as_ref().unwrap();
        let cpu = resources.cpu().as_ref().unwrap();
        assert_eq!((cpu.shares(), cpu.cpus()), (Some(512), &None), "a host cpuset reached the guest");
        let devices = resources.devices().as_ref().unwrap();
        assert_eq!(devices.iter().map(|d| d.allow()).collect::<Vec<_>>(), [false, true]);
        assert_eq!((devices[1].major(), devices[1].minor()), (Some(1), Some(3)));
        assert_eq!(linux.cgroups_path().as_ref().and_then(|p| p.to_str()), Some(GUEST_CGROUP));
        let namespaces: Vec<_> =
            linux.namespaces().iter().flatten().map(|n| (n.typ(), n.path().is_some())).collect();
        use oci_spec::runtime::LinuxNamespaceType as T;
        assert_eq!(namespaces, [(T::Pid, false), (T::Mount, false), (T::Ipc, false)]);
    }

    #[test]
    fn the_guest_spec_names_the_entries_the_agent_is_told_of() {
        let dir = std::env::temp_dir().join(format!("hull-vm-guest-spec-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("vol")).unwrap();
        std::fs::write(dir.join("hosts"), "127.0.0.1 localhost\n").unwrap();
        let spec: Spec = serde_json::from_value(json!({
            "ociVersion": "1.0.2",
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/vol", "type": "bind", "source": "vol", "options": ["rbind"]},
                {"destination": "/root-of-the-host", "type": "bind", "source": "/", "options": ["rbind", "ro"]},
                {"destination": "/etc/hosts", "type": "bind", "source": dir.join("hosts")}
            ]
        }))
        .unwrap();
        let binds = binds::from_spec(&spec, &dir).unwrap();
        let guest = for_guest(&spec, &binds).unwrap();
        let sources: Vec<String> = guest
            .mounts()
            .iter()
            .flatten()
            .filter(|m| m.typ().as_deref() == Some("bind"))
            .map(|m| m.source().as_ref().unwrap().display().to_string())
            .collect();
        let told: Vec<String> =
            binds::for_guest(&binds).iter().map(|g| format!("{BINDS_MOUNT_POINT}/{}", g.name)).collect();
        assert_eq!(sources, told);
        assert_eq!(
            told,
            [
                format!("{BINDS_MOUNT_POINT}/0/vol"),
                format!("{BINDS_MOUNT_POINT}/1/root"),
                format!("{BINDS_MOUNT_POINT}/2/hosts")
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_staged_mount_without_its_bind_is_an_error() {
        let spec: Spec = serde_json::from_value(json!({
            "ociVersion": "1.0.2",
            "mounts": [{"destination": "/data", "type": "bind", "source": "/srv/data"}]
        }))
        .unwrap();
        let err = for_guest(&spec, &[]).unwrap_err();
        assert!(err.contains("/data"), "{err}");
        let other = Bind {
            source: "/srv/other".into(),
            dest: "/other".into(),
            read_only: false,
            is_dir: true,
            recursive: false,
        };
        let err = for_guest(&spec, &[other]).unwrap_err();
        assert!(err.contains("/data"), "{err}");
    }
}
