//! The runtime spec's rules, checked before anything is created.
//!
//! oci-spec's parser already rejects what does not fit its types (unknown namespace, rlimit,
//! device and capability names, wrong JSON types); this module checks the rules that need more
//! than a type: required fields, absolute paths, how the fields depend on each other, and what
//! hull itself needs. Each [`Violation`] names the field with a JSON-path-like name
//! (`mounts[2].destination`) so the user can find it in config.json.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{
    Hook, Hooks, Linux, LinuxDeviceType, LinuxIdMapping, LinuxNamespace, LinuxNamespaceType, Mount, Process,
    Spec,
};

/// A rule the config breaks: which field, and why.
#[derive(Debug)]
pub struct Violation {
    pub field: String,
    pub msg: String,
}

fn bad(field: impl Into<String>, msg: impl Into<String>) -> Violation {
    Violation { field: field.into(), msg: msg.into() }
}

type Check = Result<(), Violation>;

/// Checks `spec`; returns the absolute rootfs path (symlinks resolved).
pub fn validate(spec: &Spec, bundle: &Path) -> Result<PathBuf, Violation> {
    oci_version(spec.version())?;
    let rootfs = root(spec, bundle)?;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| bad("process", "missing: hull needs the process to run to create a container"))?;
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| bad("linux", "missing: hull runs Linux containers and needs the linux section"))?;
    check_process(process)?;
    if let Some(mounts) = spec.mounts() {
        for (i, m) in mounts.iter().enumerate() {
            check_mount(&format!("mounts[{i}]"), m)?;
            check_idmap(&format!("mounts[{i}]"), m, linux)?;
        }
    }
    check_linux(spec, linux, process)?;
    if let Some(hooks) = spec.hooks() {
        check_hooks(hooks)?;
    }
    if let Some(annotations) = spec.annotations() {
        if annotations.contains_key("") {
            return Err(bad("annotations", "keys must not be empty"));
        }
    }
    Ok(rootfs)
}

// ---- ociVersion, root ----

/// A SemVer 2.0.0 version whose major is 1 (hull implements runtime-spec 1.x).
fn oci_version(v: &str) -> Check {
    let field = "ociVersion";
    if v.is_empty() {
        return Err(bad(field, "missing"));
    }
    let core = v.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    let numeric = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if parts.len() != 3 || !parts.iter().all(numeric) {
        return Err(bad(field, format!("{v:?} is not a SemVer version like {:?}", super::OCI_VERSION)));
    }
    if parts[0] != "1" {
        return Err(bad(
            field,
            format!(
                "{v:?} is not supported: hull implements runtime-spec 1.x (up to {})",
                super::OCI_VERSION
            ),
        ));
    }
    Ok(())
}

/// root.path, relative to the bundle or absolute, must be a directory.
fn root(spec: &Spec, bundle: &Path) -> Result<PathBuf, Violation> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| bad("root", "missing: a Linux container needs a root filesystem"))?;
    let path = root.path();
    if path.as_os_str().is_empty() {
        return Err(bad("root.path", "missing"));
    }
    let abs = if path.is_absolute() { path.clone() } else { bundle.join(path) };
    match std::fs::metadata(&abs) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(bad("root.path", format!("{} is not a directory", abs.display()))),
        Err(e) => return Err(bad("root.path", format!("{}: {e}", abs.display()))),
    }
    abs.canonicalize().map_err(|e| bad("root.path", format!("{}: {e}", abs.display())))
}

// ---- process ----

fn check_process(p: &Process) -> Check {
    let args = p.args().as_deref().unwrap_or_default();
    if args.is_empty() {
        return Err(bad("process.args", "must name the program to run (at least one entry)"));
    }
    if args[0].is_empty() {
        return Err(bad("process.args[0]", "the program name is empty"));
    }
    for (i, a) in args.iter().enumerate() {
        no_nul(&format!("process.args[{i}]"), a)?;
    }
    let cwd = p.cwd();
    if !cwd.is_absolute() {
        return Err(bad("process.cwd", format!("{cwd:?} is not an absolute path")));
    }
    no_nul("process.cwd", &cwd.to_string_lossy())?;
    if let Some(env) = p.env() {
        check_env("process.env", env)?;
    }
    if let Some(rlimits) = p.rlimits() {
        for (i, r) in rlimits.iter().enumerate() {
            if rlimits[..i].iter().any(|o| o.typ() == r.typ()) {
                return Err(bad(
                    format!("process.rlimits[{i}].type"),
                    format!("{} is listed twice", r.typ()),
                ));
            }
            if r.soft() > r.hard() {
                return Err(bad(
                    format!("process.rlimits[{i}]"),
                    format!("soft limit {} is above the hard limit {}", r.soft(), r.hard()),
                ));
            }
        }
    }
    if let Some(adj) = p.oom_score_adj() {
        if !(-1000..=1000).contains(&adj) {
            return Err(bad("process.oomScoreAdj", format!("{adj} is outside -1000..1000")));
        }
    }
    if let Some(io) = p.io_priority() {
        if !(0..=7).contains(&io.priority()) {
            return Err(bad("process.ioPriority.priority", format!("{} is outside 0..7", io.priority())));
        }
    }
    Ok(())
}

/// Environment entries are KEY=VALUE with a non-empty KEY.
fn check_env(field: &str, env: &[String]) -> Check {
    for (i, e) in env.iter().enumerate() {
        let f = format!("{field}[{i}]");
        match e.split_once('=') {
            None => return Err(bad(f, format!("{e:?} is not of the form KEY=VALUE"))),
            Some(("", _)) => return Err(bad(f, format!("{e:?} has an empty variable name"))),
            Some(_) => no_nul(&f, e)?,
        }
    }
    Ok(())
}

fn no_nul(field: &str, s: &str) -> Check {
    if s.contains('\0') {
        return Err(bad(field, "contains a NUL byte"));
    }
    Ok(())
}

/// An absolute path without `..` components.
fn abs_clean(field: &str, path: &Path) -> Check {
    if !path.is_absolute() {
        return Err(bad(field, format!("{path:?} is not an absolute path")));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(bad(field, format!("{path:?} must not contain \"..\"")));
    }
    no_nul(field, &path.to_string_lossy())
}

// ---- mounts ----

fn check_mount(f: &str, m: &Mount) -> Check {
    abs_clean(&format!("{f}.destination"), m.destination())?;
    let opts = m.options().as_deref().unwrap_or_default();
    for (i, o) in opts.iter().enumerate() {
        no_nul(&format!("{f}.options[{i}]"), o)?;
    }
    let typ = m.typ().as_deref().unwrap_or_default();
    no_nul(&format!("{f}.type"), typ)?;
    let source = m.source().as_ref().map(|s| s.as_os_str()).unwrap_or_default();
    no_nul(&format!("{f}.source"), &source.to_string_lossy())?;
    let is_bind = typ == "bind" || opts.iter().any(|o| o == "bind" || o == "rbind");
    if is_bind {
        if source.is_empty() {
            return Err(bad(format!("{f}.source"), "a bind mount needs a source"));
        }
    } else if typ.is_empty() {
        return Err(bad(
            format!("{f}.type"),
            "missing: only bind mounts (options bind or rbind) may leave the type out",
        ));
    }
    let uid = m.uid_mappings().as_deref().unwrap_or_default();
    let gid = m.gid_mappings().as_deref().unwrap_or_default();
    if uid.is_empty() != gid.is_empty() {
        let (set, unset) =
            if uid.is_empty() { ("gidMappings", "uidMappings") } else { ("uidMappings", "gidMappings") };
        return Err(bad(format!("{f}.{unset}"), format!("missing: {set} is set, and the two go together")));
    }
    check_mappings(&format!("{f}.uidMappings"), uid)?;
    check_mappings(&format!("{f}.gidMappings"), gid)
}

/// An idmapped mount (`idmap`, `ridmap`; runtime-spec 1.2), by runc's rules: it is a bind,
/// and its mappings are its own `uidMappings`/`gidMappings` or, without them (or with empty
/// ones, as the spec allows), the container's user namespace's, which it must then have.
/// Unlike runc, which takes mappings without either option as `idmap`, such a mount is
/// refused: the spec asks for the option, and a mount that only some runtimes would idmap is
/// better named than guessed.
fn check_idmap(f: &str, m: &Mount, linux: &Linux) -> Check {
    let opts = m.options().as_deref().unwrap_or_default();
    let idmap = opts.iter().any(|o| o == "idmap" || o == "ridmap");
    // check_mount made sure that both are set or neither.
    let own_maps = !m.uid_mappings().as_deref().unwrap_or_default().is_empty();
    let dest = m.destination().display();
    if own_maps && !idmap {
        return Err(bad(
            format!("{f}.uidMappings"),
            format!(
                "set on the mount on {dest}, whose options have neither idmap nor ridmap: mappings are for an \
                 idmapped mount (add idmap, or ridmap to idmap its submounts too)"
            ),
        ));
    }
    if !idmap {
        return Ok(());
    }
    let typ = m.typ().as_deref().unwrap_or_default();
    if !(typ == "bind" || opts.iter().any(|o| o == "bind" || o == "rbind")) {
        return Err(bad(
            format!("{f}.options"),
            format!(
                "idmap on the mount on {dest}, which is not a bind mount: only binds can be idmapped here"
            ),
        ));
    }
    let userns = linux.namespaces().iter().flatten().any(|n| n.typ() == LinuxNamespaceType::User);
    if !own_maps && !userns {
        return Err(bad(
            format!("{f}.options"),
            format!(
                "idmap on the mount on {dest}, without uidMappings and gidMappings of its own, takes the \
                 container's user namespace's, and linux.namespaces has no user namespace: give the mount its \
                 own mappings"
            ),
        ));
    }
    Ok(())
}

// ---- linux ----

/// Without a mount namespace the container's mounts go into the host's mount table, below a
/// bind of the rootfs that delete removes (native/hostroot.rs). What cannot stay below it is
/// refused.
fn check_without_mount_namespace(linux: &Linux, user_ns: bool) -> Check {
    if user_ns {
        return Err(bad(
            "linux.namespaces",
            "a user namespace without a mount namespace: the container could mount nothing in the \
             host's mount table (add {\"type\": \"mount\"})",
        ));
    }
    if linux.rootfs_propagation().as_deref().is_some_and(|p| !p.is_empty()) {
        return Err(bad(
            "linux.rootfsPropagation",
            "set, but linux.namespaces has no mount namespace: it would change the propagation of a \
             mount in the host's mount table",
        ));
    }
    Ok(())
}

/// The name config.json uses for a namespace type.
fn ns_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Time => "time",
    }
}

fn check_linux(spec: &Spec, linux: &Linux, process: &Process) -> Check {
    let nss = linux.namespaces().as_deref().unwrap_or_default();
    check_namespaces(nss)?;
    let find = |t: LinuxNamespaceType| nss.iter().find(|n| n.typ() == t);

    if find(LinuxNamespaceType::Mount).is_none() {
        check_without_mount_namespace(linux, find(LinuxNamespaceType::User).is_some())?;
    }
    check_user_namespace(linux, find(LinuxNamespaceType::User), process)?;
    check_time_namespace(linux, nss)?;
    check_sysctl(linux, nss)?;
    for (field, value) in [("hostname", spec.hostname()), ("domainname", spec.domainname())] {
        let Some(value) = value.as_deref().filter(|v| !v.is_empty()) else { continue };
        if find(LinuxNamespaceType::Uts).is_none() {
            return Err(bad(
                field,
                "set, but linux.namespaces has no uts namespace: it would change the host's",
            ));
        }
        if value.len() > 64 {
            return Err(bad(field, format!("{value:?} is longer than 64 bytes")));
        }
        no_nul(field, value)?;
    }
    check_devices(linux)?;
    for (field, paths) in
        [("linux.maskedPaths", linux.masked_paths()), ("linux.readonlyPaths", linux.readonly_paths())]
    {
        for (i, p) in paths.as_deref().unwrap_or_default().iter().enumerate() {
            abs_clean(&format!("{field}[{i}]"), Path::new(p))?;
        }
    }
    if let Some(prop) = linux.rootfs_propagation().as_deref().filter(|p| !p.is_empty()) {
        const KNOWN: [&str; 8] =
            ["private", "rprivate", "shared", "rshared", "slave", "rslave", "unbindable", "runbindable"];
        if !KNOWN.contains(&prop) {
            return Err(bad(
                "linux.rootfsPropagation",
                format!("{prop:?} is not one of {}", KNOWN.join(", ")),
            ));
        }
    }
    if let Some(p) = linux.memory_policy() {
        super::mempolicy::parse(p).map_err(|(f, m)| bad(format!("linux.memoryPolicy.{f}"), m))?;
    }
    if linux.intel_rdt().is_some() {
        return Err(bad("linux.intelRdt", "hull does not support Intel RDT"));
    }
    if let Some(devs) = linux.resources().as_ref().and_then(|r| r.devices().as_ref()) {
        for (i, d) in devs.iter().enumerate() {
            if let Some(access) = d.access().as_deref() {
                if !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
                    return Err(bad(
                        format!("linux.resources.devices[{i}].access"),
                        format!("{access:?} may only hold r, w and m"),
                    ));
                }
            }
        }
    }
    if let Some(syscalls) = linux.seccomp().as_ref().and_then(|s| s.syscalls().as_ref()) {
        for (i, s) in syscalls.iter().enumerate() {
            if s.names().is_empty() {
                return Err(bad(format!("linux.seccomp.syscalls[{i}].names"), "empty"));
            }
            for (j, a) in s.args().as_deref().unwrap_or_default().iter().enumerate() {
                if a.index() > 5 {
                    return Err(bad(
                        format!("linux.seccomp.syscalls[{i}].args[{j}].index"),
                        format!("{} is not a syscall argument (0..5)", a.index()),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Which namespace a key lives in, or None when it is global to the host.
fn sysctl_namespace(key: &str) -> Option<&'static str> {
    const IPC: [&str; 8] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        Some("ipc")
    } else if key.starts_with("net.") {
        Some("network")
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        Some("uts")
    } else {
        None
    }
}

/// linux.sysctl: a key must belong to one of the container's namespaces (new or joined: a
/// joined one is the caller's choice, as in runc), never to the host as a whole.
fn check_sysctl(linux: &Linux, nss: &[LinuxNamespace]) -> Check {
    let Some(sysctl) = linux.sysctl() else { return Ok(()) };
    let mut keys: Vec<&String> = sysctl.keys().collect();
    keys.sort();
    for key in keys {
        let field = format!("linux.sysctl[{key:?}]");
        let Some(ns) = sysctl_namespace(key) else {
            return Err(bad(field, "not a namespaced sysctl: setting it would change the host"));
        };
        let t = match ns {
            "ipc" => LinuxNamespaceType::Ipc,
            "network" => LinuxNamespaceType::Network,
            _ => LinuxNamespaceType::Uts,
        };
        if !nss.iter().any(|n| n.typ() == t) {
            return Err(bad(field, format!("needs a {ns} namespace, which linux.namespaces lacks")));
        }
    }
    Ok(())
}

fn check_namespaces(nss: &[LinuxNamespace]) -> Check {
    let mut seen = HashSet::new();
    for (i, ns) in nss.iter().enumerate() {
        if !seen.insert(ns.typ()) {
            return Err(bad(
                format!("linux.namespaces[{i}].type"),
                format!("the {} namespace is listed twice", ns_name(ns.typ())),
            ));
        }
        if let Some(path) = ns.path() {
            let f = format!("linux.namespaces[{i}].path");
            if !path.is_absolute() {
                return Err(bad(f, format!("{path:?} is not an absolute path")));
            }
            if let Err(e) = std::fs::metadata(path) {
                return Err(bad(f, format!("{}: {e}", path.display())));
            }
        }
    }
    Ok(())
}

fn check_user_namespace(linux: &Linux, userns: Option<&LinuxNamespace>, process: &Process) -> Check {
    let uid = linux.uid_mappings().as_deref().unwrap_or_default();
    let gid = linux.gid_mappings().as_deref().unwrap_or_default();
    match userns {
        None => {
            for (field, maps) in [("linux.uidMappings", uid), ("linux.gidMappings", gid)] {
                if !maps.is_empty() {
                    return Err(bad(field, "set, but linux.namespaces has no user namespace"));
                }
            }
        }
        Some(ns) if ns.path().is_none() => {
            for (field, maps) in [("linux.uidMappings", uid), ("linux.gidMappings", gid)] {
                if maps.is_empty() {
                    return Err(bad(field, "missing: a new user namespace needs at least one mapping"));
                }
            }
            check_mappings("linux.uidMappings", uid)?;
            check_mappings("linux.gidMappings", gid)?;
            let user = process.user();
            if !mapped(uid, user.uid()) {
                return Err(bad(
                    "process.user.uid",
                    format!("{} is not mapped by linux.uidMappings", user.uid()),
                ));
            }
            if !mapped(gid, user.gid()) {
                return Err(bad(
                    "process.user.gid",
                    format!("{} is not mapped by linux.gidMappings", user.gid()),
                ));
            }
            for (i, g) in user.additional_gids().as_deref().unwrap_or_default().iter().enumerate() {
                if !mapped(gid, *g) {
                    return Err(bad(
                        format!("process.user.additionalGids[{i}]"),
                        format!("{g} is not mapped by linux.gidMappings"),
                    ));
                }
            }
        }
        // A joined user namespace comes with its own mappings.
        Some(_) => {
            check_mappings("linux.uidMappings", uid)?;
            check_mappings("linux.gidMappings", gid)?;
        }
    }
    Ok(())
}

/// True when container id `id` falls in one of `maps`.
fn mapped(maps: &[LinuxIdMapping], id: u32) -> bool {
    maps.iter().any(|m| {
        let start = u64::from(m.container_id());
        (start..start + u64::from(m.size())).contains(&u64::from(id))
    })
}

/// What the kernel accepts in uid_map/gid_map: non-empty ranges that do not overflow or
/// overlap, at most 340 lines.
fn check_mappings(field: &str, maps: &[LinuxIdMapping]) -> Check {
    const MAX_LINES: usize = 340;
    if maps.len() > MAX_LINES {
        return Err(bad(field, format!("{} mappings: the kernel takes at most {MAX_LINES}", maps.len())));
    }
    let end = |start: u32, size: u32| u64::from(start) + u64::from(size);
    for (i, m) in maps.iter().enumerate() {
        let f = format!("{field}[{i}]");
        if m.size() == 0 {
            return Err(bad(format!("{f}.size"), "must be greater than 0"));
        }
        if end(m.container_id(), m.size()) > u64::from(u32::MAX)
            || end(m.host_id(), m.size()) > u64::from(u32::MAX)
        {
            return Err(bad(format!("{f}.size"), "the range runs past the largest id (4294967294)"));
        }
        for (j, o) in maps[..i].iter().enumerate() {
            let overlap = |a: u32, b: u32| u64::from(a) < end(b, o.size()) && u64::from(b) < end(a, m.size());
            if overlap(m.container_id(), o.container_id()) {
                return Err(bad(f, format!("its containerID range overlaps {field}[{j}]")));
            }
            if overlap(m.host_id(), o.host_id()) {
                return Err(bad(f, format!("its hostID range overlaps {field}[{j}]")));
            }
        }
    }
    Ok(())
}

fn check_time_namespace(linux: &Linux, nss: &[LinuxNamespace]) -> Check {
    let Some(offsets) = linux.time_offsets().as_ref().filter(|o| !o.is_empty()) else {
        return Ok(());
    };
    let field = "linux.timeOffsets";
    match nss.iter().position(|n| n.typ() == LinuxNamespaceType::Time) {
        None => return Err(bad(field, "set, but linux.namespaces has no time namespace")),
        Some(i) if nss[i].path().is_some() => {
            return Err(bad(
                field,
                format!("set, but the time namespace is joined (linux.namespaces[{i}].path): offsets only apply to a new one"),
            ))
        }
        Some(_) => {}
    }
    let mut clocks: Vec<_> = offsets.iter().collect();
    clocks.sort_by(|a, b| a.0.cmp(b.0));
    for (clock, off) in clocks {
        if clock != "monotonic" && clock != "boottime" {
            return Err(bad(
                format!("{field}.{clock}"),
                "unknown clock: only monotonic and boottime can be offset",
            ));
        }
        if off.nanosecs().unwrap_or(0) >= 1_000_000_000 {
            return Err(bad(format!("{field}.{clock}.nanosecs"), "must be below 1000000000"));
        }
    }
    Ok(())
}

fn check_devices(linux: &Linux) -> Check {
    let mut seen = HashSet::new();
    for (i, d) in linux.devices().as_deref().unwrap_or_default().iter().enumerate() {
        let f = format!("linux.devices[{i}]");
        let path = d.path();
        abs_clean(&format!("{f}.path"), path)?;
        if !path.starts_with("/dev") || path == Path::new("/dev") {
            return Err(bad(format!("{f}.path"), format!("{path:?} is not under /dev")));
        }
        if !seen.insert(path.components().collect::<PathBuf>()) {
            return Err(bad(format!("{f}.path"), format!("{path:?} is listed twice")));
        }
        match d.typ() {
            LinuxDeviceType::A => {
                return Err(bad(
                    format!("{f}.type"),
                    "\"a\" is not a device node type (c, b, u or p); it belongs in linux.resources.devices",
                ))
            }
            LinuxDeviceType::P => {}
            t @ (LinuxDeviceType::C | LinuxDeviceType::B | LinuxDeviceType::U) => {
                let (major, minor) = (d.major(), d.minor());
                if major == 0 && minor == 0 {
                    return Err(bad(f, format!("a {} device needs its major and minor numbers", t.as_str())));
                }
                if !(0..4096).contains(&major) {
                    return Err(bad(format!("{f}.major"), format!("{major} is outside 0..4095")));
                }
                if !(0..1 << 20).contains(&minor) {
                    return Err(bad(format!("{f}.minor"), format!("{minor} is outside 0..1048575")));
                }
            }
        }
    }
    Ok(())
}

// ---- hooks ----

#[allow(deprecated)] // prestart: deprecated by the spec, still run by runtimes
fn check_hooks(hooks: &Hooks) -> Check {
    let lists = [
        ("prestart", hooks.prestart()),
        ("createRuntime", hooks.create_runtime()),
        ("createContainer", hooks.create_container()),
        ("startContainer", hooks.start_container()),
        ("poststart", hooks.poststart()),
        ("poststop", hooks.poststop()),
    ];
    for (name, list) in lists {
        for (i, h) in list.as_deref().unwrap_or_default().iter().enumerate() {
            check_hook(&format!("hooks.{name}[{i}]"), h)?;
        }
    }
    Ok(())
}

fn check_hook(f: &str, h: &Hook) -> Check {
    let path = h.path();
    if !path.is_absolute() {
        return Err(bad(format!("{f}.path"), format!("{path:?} is not an absolute path")));
    }
    no_nul(&format!("{f}.path"), &path.to_string_lossy())?;
    for (i, a) in h.args().as_deref().unwrap_or_default().iter().enumerate() {
        no_nul(&format!("{f}.args[{i}]"), a)?;
    }
    if let Some(env) = h.env() {
        check_env(&format!("{f}.env"), env)?;
    }
    if let Some(t) = h.timeout() {
        if t <= 0 {
            return Err(bad(format!("{f}.timeout"), format!("{t}: must be greater than 0")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// A bundle dir with an empty rootfs, removed on drop.
    struct Bundle(PathBuf);

    impl Bundle {
        fn new() -> Bundle {
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let dir = std::env::temp_dir().join(format!("hull-validate-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("rootfs")).unwrap();
            Bundle(dir.canonicalize().unwrap())
        }
    }

    impl Drop for Bundle {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn base() -> Value {
        json!({
            "ociVersion": "1.2.0",
            "process": {
                "user": {"uid": 0, "gid": 0},
                "args": ["sh"],
                "env": ["PATH=/bin", "TERM=xterm"],
                "cwd": "/"
            },
            "root": {"path": "rootfs"},
            "hostname": "h",
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/data", "source": "/tmp", "options": ["rbind", "ro"]}
            ],
            "linux": {
                "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}],
                "maskedPaths": ["/proc/kcore"],
                "readonlyPaths": ["/proc/sys"]
            }
        })
    }

    fn check(v: &Value) -> Result<PathBuf, Violation> {
        let b = Bundle::new();
        let spec: Spec = serde_json::from_value(v.clone()).expect("test config parses");
        validate(&spec, &b.0)
    }

    /// Applies `edit` to the base config and expects a violation of `field` whose message
    /// holds `msg`.
    fn rejects(edit: impl FnOnce(&mut Value), field: &str, msg: &str) {
        let mut v = base();
        edit(&mut v);
        match check(&v) {
            Ok(_) => panic!("accepted, expected {field}: {msg}\n{v:#}"),
            Err(e) => {
                assert_eq!(e.field, field, "message: {}", e.msg);
                assert!(e.msg.contains(msg), "{}: {:?} lacks {msg:?}", e.field, e.msg);
            }
        }
    }

    fn accepts(edit: impl FnOnce(&mut Value)) {
        let mut v = base();
        edit(&mut v);
        if let Err(e) = check(&v) {
            panic!("rejected: {}: {}\n{v:#}", e.field, e.msg);
        }
    }

    #[test]
    fn base_is_valid_and_rootfs_is_absolute() {
        let b = Bundle::new();
        let spec: Spec = serde_json::from_value(base()).unwrap();
        let rootfs = validate(&spec, &b.0).unwrap();
        assert_eq!(rootfs, b.0.join("rootfs"));
    }

    #[test]
    fn absolute_root_path() {
        let b = Bundle::new();
        let mut v = base();
        v["root"]["path"] = json!(b.0.join("rootfs"));
        let spec: Spec = serde_json::from_value(v).unwrap();
        assert_eq!(validate(&spec, Path::new("/nonexistent")).unwrap(), b.0.join("rootfs"));
    }

    #[test]
    fn oci_version() {
        rejects(|v| v["ociVersion"] = json!(""), "ociVersion", "missing");
        rejects(
            |v| {
                v.as_object_mut().unwrap().remove("ociVersion");
            },
            "ociVersion",
            "missing",
        );
        rejects(|v| v["ociVersion"] = json!("2.0.0"), "ociVersion", "1.x");
        rejects(|v| v["ociVersion"] = json!("0.5.0"), "ociVersion", "1.x");
        rejects(|v| v["ociVersion"] = json!("1.0"), "ociVersion", "SemVer");
        rejects(|v| v["ociVersion"] = json!("latest"), "ociVersion", "SemVer");
        accepts(|v| v["ociVersion"] = json!("1.0.0"));
        accepts(|v| v["ociVersion"] = json!("1.0.2-dev"));
        accepts(|v| v["ociVersion"] = json!("1.3.0+build.1"));
    }

    #[test]
    fn root() {
        rejects(
            |v| {
                v.as_object_mut().unwrap().remove("root");
            },
            "root",
            "missing",
        );
        rejects(|v| v["root"]["path"] = json!(""), "root.path", "missing");
        rejects(|v| v["root"]["path"] = json!("nope"), "root.path", "No such file");
        rejects(|v| v["root"]["path"] = json!("/etc/hostname"), "root.path", "not a directory");
    }

    #[test]
    fn process() {
        rejects(
            |v| {
                v.as_object_mut().unwrap().remove("process");
            },
            "process",
            "missing",
        );
        rejects(|v| v["process"]["args"] = json!([]), "process.args", "at least one");
        rejects(
            |v| {
                v["process"].as_object_mut().unwrap().remove("args");
            },
            "process.args",
            "at least one",
        );
        rejects(|v| v["process"]["args"] = json!([""]), "process.args[0]", "empty");
        rejects(|v| v["process"]["args"] = json!(["sh", "a\u{0}b"]), "process.args[1]", "NUL");
        rejects(|v| v["process"]["cwd"] = json!("tmp"), "process.cwd", "absolute");
        rejects(|v| v["process"]["env"] = json!(["A=1", "NOEQUALS"]), "process.env[1]", "KEY=VALUE");
        rejects(|v| v["process"]["env"] = json!(["=x"]), "process.env[0]", "empty variable name");
        accepts(|v| v["process"]["env"] = json!(["EMPTY=", "A=b=c"]));
        rejects(|v| v["process"]["oomScoreAdj"] = json!(1001), "process.oomScoreAdj", "-1000..1000");
        rejects(
            |v| v["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 8}),
            "process.ioPriority.priority",
            "0..7",
        );
    }

    #[test]
    fn rlimits() {
        rejects(
            |v| {
                v["process"]["rlimits"] = json!([
                    {"type": "RLIMIT_NOFILE", "soft": 1, "hard": 2},
                    {"type": "RLIMIT_CORE", "soft": 1, "hard": 2},
                    {"type": "RLIMIT_NOFILE", "soft": 1, "hard": 2}
                ])
            },
            "process.rlimits[2].type",
            "RLIMIT_NOFILE is listed twice",
        );
        rejects(
            |v| v["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 3, "hard": 2}]),
            "process.rlimits[0]",
            "above the hard limit",
        );
        // Unknown names fail when parsing, before validation.
        let mut v = base();
        v["process"]["rlimits"] = json!([{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]);
        assert!(serde_json::from_value::<Spec>(v).is_err());
    }

    #[test]
    fn capabilities_are_checked_by_the_parser() {
        let mut v = base();
        v["process"]["capabilities"] = json!({"bounding": ["CAP_CHOWN", "CAP_BOGUS"]});
        let e = serde_json::from_value::<Spec>(v).unwrap_err().to_string();
        assert!(e.contains("CAP_BOGUS"), "{e}");
        accepts(|v| v["process"]["capabilities"] = json!({"bounding": ["CAP_CHECKPOINT_RESTORE"]}));
    }

    #[test]
    fn mounts() {
        rejects(|v| v["mounts"][0]["destination"] = json!("proc"), "mounts[0].destination", "absolute");
        rejects(|v| v["mounts"][1]["destination"] = json!("/../etc"), "mounts[1].destination", "..");
        rejects(|v| v["mounts"][1]["destination"] = json!(""), "mounts[1].destination", "absolute");
        rejects(
            |v| {
                v["mounts"][1].as_object_mut().unwrap().remove("source");
            },
            "mounts[1].source",
            "bind mount needs a source",
        );
        rejects(
            |v| v["mounts"][1] = json!({"destination": "/x", "type": "bind"}),
            "mounts[1].source",
            "bind mount needs a source",
        );
        rejects(
            |v| {
                v["mounts"][0].as_object_mut().unwrap().remove("type");
            },
            "mounts[0].type",
            "missing",
        );
        rejects(|v| v["mounts"][0]["options"] = json!(["nosuid", "a\u{0}"]), "mounts[0].options[1]", "NUL");
        rejects(
            |v| v["mounts"][1]["uidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 1}]),
            "mounts[1].gidMappings",
            "missing",
        );
        accepts(|v| v["mounts"][1]["destination"] = json!("/data/./x//y"));
        accepts(|v| v["mounts"][1]["type"] = json!("none"));
    }

    #[test]
    fn idmapped_mounts() {
        let maps = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        let own_maps = |v: &mut Value| {
            v["mounts"][1]["uidMappings"] = maps.clone();
            v["mounts"][1]["gidMappings"] = maps.clone();
        };
        rejects(own_maps, "mounts[1].uidMappings", "neither idmap nor ridmap");
        rejects(
            |v| {
                own_maps(v);
                v["mounts"][1]["options"] = json!(["rbind", "ro"]);
            },
            "mounts[1].uidMappings",
            "the mount on /data",
        );
        accepts(|v| {
            own_maps(v);
            v["mounts"][1]["options"] = json!(["rbind", "idmap"]);
        });
        accepts(|v| {
            own_maps(v);
            v["mounts"][1]["options"] = json!(["rbind", "ridmap"]);
        });
        // Without mappings of its own it takes the container's user namespace's.
        rejects(
            |v| v["mounts"][1]["options"] = json!(["rbind", "idmap"]),
            "mounts[1].options",
            "no user namespace",
        );
        accepts(|v| {
            userns(v);
            v["mounts"][1]["options"] = json!(["rbind", "ridmap"]);
        });
        // Empty mappings are no mappings (runtime-spec 1.2 allows them with idmap).
        accepts(|v| {
            userns(v);
            v["mounts"][1]["options"] = json!(["bind", "idmap"]);
            v["mounts"][1]["uidMappings"] = json!([]);
            v["mounts"][1]["gidMappings"] = json!([]);
        });
        rejects(
            |v| {
                userns(v);
                v["mounts"][0]["options"] = json!(["idmap"]);
            },
            "mounts[0].options",
            "not a bind mount",
        );
        rejects(
            |v| {
                own_maps(v);
                v["mounts"][1]["options"] = json!(["bind", "idmap"]);
                v["mounts"][1]["gidMappings"] = json!([{"containerID": 0, "hostID": 1, "size": 0}]);
            },
            "mounts[1].gidMappings[0].size",
            "greater than 0",
        );
    }

    #[test]
    fn without_mount_namespace() {
        accepts(|v| v["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "uts"}]));
        rejects(
            |v| {
                v["linux"]["namespaces"] = json!([{"type": "pid"}]);
                v["linux"]["rootfsPropagation"] = json!("private");
            },
            "linux.rootfsPropagation",
            "no mount namespace",
        );
        rejects(
            |v| {
                v.as_object_mut().unwrap().remove("linux");
            },
            "linux",
            "missing",
        );
    }

    #[test]
    fn namespaces() {
        rejects(
            |v| {
                v["linux"]["namespaces"] =
                    json!([{"type": "mount"}, {"type": "pid"}, {"type": "uts"}, {"type": "pid"}])
            },
            "linux.namespaces[3].type",
            "pid namespace is listed twice",
        );
        rejects(
            |v| v["linux"]["namespaces"][0]["path"] = json!("/proc/self/ns/nope"),
            "linux.namespaces[0].path",
            "No such file",
        );
        rejects(
            |v| v["linux"]["namespaces"][0]["path"] = json!("proc/self/ns/pid"),
            "linux.namespaces[0].path",
            "absolute",
        );
        accepts(|v| v["linux"]["namespaces"][0]["path"] = json!("/proc/self/ns/pid"));
        // Unknown types fail when parsing.
        let mut v = base();
        v["linux"]["namespaces"][0]["type"] = json!("bogus");
        assert!(serde_json::from_value::<Spec>(v).is_err());
    }

    fn userns(v: &mut Value) {
        v["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "user"}));
        v["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        v["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    }

    #[test]
    fn user_namespace() {
        accepts(userns);
        rejects(
            |v| {
                userns(v);
                v["linux"].as_object_mut().unwrap().remove("uidMappings");
            },
            "linux.uidMappings",
            "needs at least one mapping",
        );
        rejects(
            |v| {
                userns(v);
                v["linux"]["gidMappings"] = json!([]);
            },
            "linux.gidMappings",
            "needs at least one mapping",
        );
        rejects(
            |v| v["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 1}]),
            "linux.uidMappings",
            "no user namespace",
        );
        rejects(
            |v| v["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 1}]),
            "linux.gidMappings",
            "no user namespace",
        );
        rejects(
            |v| {
                userns(v);
                v["linux"]["uidMappings"][0]["size"] = json!(0);
            },
            "linux.uidMappings[0].size",
            "greater than 0",
        );
        rejects(
            |v| {
                userns(v);
                v["linux"]["gidMappings"] = json!([
                    {"containerID": 0, "hostID": 100000, "size": 10},
                    {"containerID": 5, "hostID": 200000, "size": 10}
                ]);
            },
            "linux.gidMappings[1]",
            "containerID range overlaps linux.gidMappings[0]",
        );
        rejects(
            |v| {
                userns(v);
                v["linux"]["uidMappings"][0]["hostID"] = json!(4294967295u32);
            },
            "linux.uidMappings[0].size",
            "largest id",
        );
        rejects(
            |v| {
                userns(v);
                v["process"]["user"]["uid"] = json!(70000);
            },
            "process.user.uid",
            "not mapped",
        );
        rejects(
            |v| {
                userns(v);
                v["process"]["user"]["additionalGids"] = json!([1, 70000]);
            },
            "process.user.additionalGids[1]",
            "not mapped",
        );
        // Joining a user namespace: its mappings exist already.
        accepts(|v| {
            v["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "user", "path": "/proc/self/ns/user"}));
        });
    }

    #[test]
    fn time_namespace() {
        let offsets = json!({"monotonic": {"secs": 10}, "boottime": {"secs": 1, "nanosecs": 5}});
        rejects(|v| v["linux"]["timeOffsets"] = offsets.clone(), "linux.timeOffsets", "no time namespace");
        accepts(|v| {
            v["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "time"}));
            v["linux"]["timeOffsets"] = offsets.clone();
        });
        rejects(
            |v| {
                v["linux"]["namespaces"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"type": "time", "path": "/proc/self/ns/time"}));
                v["linux"]["timeOffsets"] = offsets.clone();
            },
            "linux.timeOffsets",
            "joined",
        );
        rejects(
            |v| {
                v["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "time"}));
                v["linux"]["timeOffsets"] = json!({"realtime": {"secs": 1}});
            },
            "linux.timeOffsets.realtime",
            "unknown clock",
        );
        rejects(
            |v| {
                v["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "time"}));
                v["linux"]["timeOffsets"] = json!({"boottime": {"nanosecs": 1000000000u32}});
            },
            "linux.timeOffsets.boottime.nanosecs",
            "below",
        );
    }

    #[test]
    fn hostname_needs_uts_namespace() {
        let no_uts = |v: &mut Value| v["linux"]["namespaces"] = json!([{"type": "mount"}]);
        rejects(no_uts, "hostname", "no uts namespace");
        rejects(
            |v| {
                no_uts(v);
                v.as_object_mut().unwrap().remove("hostname");
                v["domainname"] = json!("d");
            },
            "domainname",
            "no uts namespace",
        );
        accepts(|v| {
            no_uts(v);
            v.as_object_mut().unwrap().remove("hostname");
        });
        accepts(|v| {
            no_uts(v);
            v["hostname"] = json!("");
        });
        rejects(|v| v["hostname"] = json!("x".repeat(65)), "hostname", "64 bytes");
    }

    #[test]
    fn masked_and_readonly_paths() {
        rejects(
            |v| v["linux"]["maskedPaths"] = json!(["/proc/kcore", "proc/keys"]),
            "linux.maskedPaths[1]",
            "absolute",
        );
        rejects(|v| v["linux"]["readonlyPaths"] = json!(["sys"]), "linux.readonlyPaths[0]", "absolute");
    }

    #[test]
    fn memory_policy() {
        accepts(|v| v["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "0-1,3"}));
        rejects(
            |v| v["linux"]["memoryPolicy"] = json!({"mode": "MPOL_LOCAL", "nodes": "0"}),
            "linux.memoryPolicy.nodes",
            "takes no nodes",
        );
    }

    #[test]
    fn devices() {
        let dev = |v: &mut Value, d: Value| v["linux"]["devices"] = json!([d]);
        accepts(|v| dev(v, json!({"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229})));
        accepts(|v| dev(v, json!({"path": "/dev/fifo", "type": "p"})));
        rejects(
            |v| dev(v, json!({"path": "dev/fuse", "type": "c", "major": 10, "minor": 229})),
            "linux.devices[0].path",
            "absolute",
        );
        rejects(
            |v| dev(v, json!({"path": "/etc/fuse", "type": "c", "major": 10, "minor": 229})),
            "linux.devices[0].path",
            "under /dev",
        );
        rejects(
            |v| dev(v, json!({"path": "/dev/../etc/x", "type": "c", "major": 10, "minor": 229})),
            "linux.devices[0].path",
            "..",
        );
        rejects(
            |v| dev(v, json!({"path": "/dev/fuse", "type": "a"})),
            "linux.devices[0].type",
            "c, b, u or p",
        );
        rejects(|v| dev(v, json!({"path": "/dev/fuse", "type": "c"})), "linux.devices[0]", "major and minor");
        rejects(
            |v| dev(v, json!({"path": "/dev/sda", "type": "b", "major": -1, "minor": 0})),
            "linux.devices[0].major",
            "outside",
        );
        rejects(
            |v| {
                v["linux"]["devices"] = json!([
                    {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229},
                    {"path": "/dev//fuse", "type": "c", "major": 10, "minor": 229}
                ])
            },
            "linux.devices[1].path",
            "listed twice",
        );
        // Unknown types fail when parsing.
        let mut v = base();
        dev(&mut v, json!({"path": "/dev/x", "type": "z", "major": 1, "minor": 1}));
        assert!(serde_json::from_value::<Spec>(v).is_err());
    }

    #[test]
    fn hooks() {
        rejects(
            |v| v["hooks"] = json!({"prestart": [{"path": "hook"}]}),
            "hooks.prestart[0].path",
            "absolute",
        );
        rejects(
            |v| v["hooks"] = json!({"poststop": [{"path": "/bin/true"}, {"path": "bin/true"}]}),
            "hooks.poststop[1].path",
            "absolute",
        );
        rejects(
            |v| v["hooks"] = json!({"createRuntime": [{"path": "/bin/true", "timeout": 0}]}),
            "hooks.createRuntime[0].timeout",
            "greater than 0",
        );
        rejects(
            |v| v["hooks"] = json!({"startContainer": [{"path": "/bin/true", "env": ["X"]}]}),
            "hooks.startContainer[0].env[0]",
            "KEY=VALUE",
        );
        accepts(|v| {
            v["hooks"] = json!({
                "createContainer": [{"path": "/bin/true", "args": ["true"], "env": ["A=b"], "timeout": 5}],
                "poststart": [{"path": "/bin/true"}]
            })
        });
    }

    #[test]
    fn other_linux_fields() {
        rejects(
            |v| v["linux"]["rootfsPropagation"] = json!("everywhere"),
            "linux.rootfsPropagation",
            "not one of",
        );
        accepts(|v| v["linux"]["rootfsPropagation"] = json!("rslave"));
        rejects(|v| v["linux"]["intelRdt"] = json!({"closID": "x"}), "linux.intelRdt", "does not support");
        rejects(
            |v| v["linux"]["resources"] = json!({"devices": [{"allow": false, "access": "rwx"}]}),
            "linux.resources.devices[0].access",
            "r, w and m",
        );
        rejects(
            |v| {
                v["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                    {"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}
                ]})
            },
            "linux.seccomp.syscalls[0].args[0].index",
            "0..5",
        );
        rejects(|v| v["annotations"] = json!({"": "x"}), "annotations", "empty");
    }
}
