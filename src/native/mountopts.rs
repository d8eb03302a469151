//! A mount's `options` list split into mount(2) flags, propagation and filesystem data.

use nix::mount::MsFlags;

use super::mountattr::RecursiveAttrs;

#[derive(Debug, Clone)]
pub struct MountOpts {
    /// Flags to set.
    pub flags: MsFlags,
    /// Flags the options explicitly clear (`rw`, `suid`, ...): kept off even when inherited.
    pub cleared: MsFlags,
    /// MS_SHARED, MS_PRIVATE, ... (with MS_REC for the r* forms), applied after the mount.
    pub propagation: Vec<MsFlags>,
    /// bind or rbind.
    pub bind: bool,
    /// Filesystem-specific options, joined with commas for mount(2)'s data.
    pub data: Vec<String>,
    /// `rro`, `rnosuid`, ...: set on the mount and its submounts once it is made.
    pub recursive: RecursiveAttrs,
    /// `idmap` or `ridmap`: the bind is an idmapped mount (idmapmount.rs).
    pub idmap: Idmap,
}

/// Whether a bind is idmapped, and how far down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Idmap {
    #[default]
    No,
    /// `idmap`: the bind's top mount only; the submounts an rbind brings keep their ids
    /// (runc's reading: ridmap is how a caller asks for more).
    Top,
    /// `ridmap`: the top mount and every submount an rbind brings.
    Recursive,
}

impl Idmap {
    /// The idmap option `opt` names, if it is one.
    pub fn of_option(opt: &str) -> Option<Idmap> {
        match opt {
            "idmap" => Some(Idmap::Top),
            "ridmap" => Some(Idmap::Recursive),
            _ => None,
        }
    }
}

impl Default for MountOpts {
    fn default() -> Self {
        MountOpts {
            flags: MsFlags::empty(),
            cleared: MsFlags::empty(),
            propagation: Vec::new(),
            bind: false,
            data: Vec::new(),
            recursive: RecursiveAttrs::default(),
            idmap: Idmap::No,
        }
    }
}

impl MountOpts {
    pub fn parse(options: &[String]) -> MountOpts {
        let mut o = MountOpts::default();
        for opt in options {
            let (set, clear): (MsFlags, MsFlags) = match opt.as_str() {
                "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
                "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
                "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
                "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
                "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
                "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
                "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
                "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
                "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
                "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
                "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
                "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
                "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
                "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
                "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
                "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
                "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
                "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
                "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
                "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
                "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
                "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
                "bind" => {
                    o.bind = true;
                    (MsFlags::MS_BIND, MsFlags::empty())
                }
                "rbind" => {
                    o.bind = true;
                    (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty())
                }
                "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
                | "runbindable" => {
                    let base = match opt.trim_start_matches('r') {
                        "private" => MsFlags::MS_PRIVATE,
                        "shared" => MsFlags::MS_SHARED,
                        "slave" => MsFlags::MS_SLAVE,
                        _ => MsFlags::MS_UNBINDABLE,
                    };
                    let rec = if opt.starts_with('r') { MsFlags::MS_REC } else { MsFlags::empty() };
                    o.propagation.push(base | rec);
                    continue;
                }
                // Not data for the filesystem (a bind ignores data, which is how these were
                // once silently dropped): ridmap wins over idmap whatever their order, as
                // asking for the submounts too is the larger request.
                "idmap" | "ridmap" => {
                    o.idmap = o.idmap.max(Idmap::of_option(opt).unwrap_or_default());
                    continue;
                }
                // Options other runtimes accept that mean nothing to mount(2).
                "defaults" | "tmpcopyup" | "norbind" | "recursive" => continue,
                _ => {
                    if !o.recursive.add(opt) {
                        o.data.push(opt.clone());
                    }
                    continue;
                }
            };
            o.flags = (o.flags | set) - clear;
            o.cleared = (o.cleared | clear) - set;
        }
        o
    }

    pub fn data(&self) -> Option<String> {
        if self.data.is_empty() {
            None
        } else {
            Some(self.data.join(","))
        }
    }

    /// Flags beyond the bind itself, which need a remount to take effect on a bind mount.
    pub fn remount_flags(&self) -> MsFlags {
        self.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn p(v: &[&str]) -> MountOpts {
        MountOpts::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }
    #[test]
    fn splits_flags_propagation_and_data() {
        let o = p(&["rbind", "ro", "nosuid", "rslave", "mode=755", "size=1m"]);
        assert!(o.bind);
        assert!(o.flags.contains(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY));
        assert_eq!(o.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
        assert_eq!(o.data().as_deref(), Some("mode=755,size=1m"));
        assert_eq!(o.remount_flags(), MsFlags::MS_RDONLY | MsFlags::MS_NOSUID);
        let o = p(&["rbind", "rro", "rnoexec", "mode=755"]);
        assert_eq!(o.recursive.set, libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOEXEC);
        assert_eq!(o.data().as_deref(), Some("mode=755"));
        assert_eq!(o.remount_flags(), MsFlags::empty());
    }
    #[test]
    fn idmap_options_are_not_data() {
        assert_eq!(p(&["bind", "idmap"]).idmap, Idmap::Top);
        assert_eq!(p(&["rbind", "ridmap", "idmap"]).idmap, Idmap::Recursive);
        assert_eq!(p(&["rbind"]).idmap, Idmap::No);
        assert_eq!(p(&["bind", "idmap", "ridmap"]).data(), None);
    }
    #[test]
    fn later_option_wins() {
        let o = p(&["ro", "rw"]);
        assert!(!o.flags.contains(MsFlags::MS_RDONLY));
        assert!(o.cleared.contains(MsFlags::MS_RDONLY));
    }
}
