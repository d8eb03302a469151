//! uid/gid maps for a new user namespace, written by the parent. A privileged hull (root, or
//! root of a user namespace that maps the ids) writes any map itself. An ordinary user may
//! write only a one-line map of its own id (for gid_map once the namespace's setgroups is
//! "deny"); any other map goes through the setuid helpers newuidmap and newgidmap (Debian's
//! uidmap package), which grant the ranges /etc/subuid and /etc/subgid give the user.

use std::io;
use std::process::Command;

use oci_spec::runtime::{LinuxIdMapping, Spec};

use super::error::{msg, Context, Result};

/// The lines of a uid_map or gid_map file: `containerID hostID size` each.
pub(super) fn render(maps: &[LinuxIdMapping]) -> String {
    maps.iter().map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size())).collect()
}

/// Writes /proc/<pid>/uid_map and gid_map from the spec's mappings.
pub fn write(pid: i32, spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    let uids = linux.and_then(|l| l.uid_mappings().clone()).unwrap_or_default();
    let gids = linux.and_then(|l| l.gid_mappings().clone()).unwrap_or_default();
    write_maps(pid, &uids, &gids)
}

/// Writes /proc/<pid>/uid_map and gid_map: directly where hull may, else through
/// newuidmap/newgidmap (the vm backend's rootless VMM too, `vm::backend::userns`).
pub(crate) fn write_maps(pid: i32, uids: &[LinuxIdMapping], gids: &[LinuxIdMapping]) -> Result<()> {
    write_map(pid, Ids::USER, uids)?;
    write_map(pid, Ids::GROUP, gids)
}

/// One kind of id (user or group): its /proc map file, its spec field, the setuid helper and
/// the subordinate-id file that go with it.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Ids {
    map_file: &'static str,
    field: &'static str,
    word: &'static str,
    helper: &'static str,
    ranges_file: &'static str,
}

impl Ids {
    const USER: Ids = Ids {
        map_file: "uid_map",
        field: "linux.uidMappings",
        word: "uid",
        helper: "newuidmap",
        ranges_file: "/etc/subuid",
    };
    const GROUP: Ids = Ids {
        map_file: "gid_map",
        field: "linux.gidMappings",
        word: "gid",
        helper: "newgidmap",
        ranges_file: "/etc/subgid",
    };

    /// The caller's own (effective) id of this kind.
    fn own(self) -> u32 {
        if self == Ids::USER {
            nix::unistd::geteuid().as_raw()
        } else {
            nix::unistd::getegid().as_raw()
        }
    }
}

fn write_map(pid: i32, ids: Ids, maps: &[LinuxIdMapping]) -> Result<()> {
    let path = format!("/proc/{pid}/{}", ids.map_file);
    let text = render(maps);
    // A refused write leaves the map unwritten: it can be tried another way.
    match std::fs::write(&path, &text) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
        done => return done.ctx(|| format!("write {path}")),
    }
    let own = ids.own();
    if let [m] = maps {
        if m.host_id() == own && m.size() == 1 {
            // An unprivileged writer's own gid needs setgroups off in the namespace first
            // (else the group could drop itself from a group that denies it access).
            if ids == Ids::GROUP {
                let setgroups = format!("/proc/{pid}/setgroups");
                std::fs::write(&setgroups, "deny").ctx(|| format!("write {setgroups}"))?;
            }
            return std::fs::write(&path, &text).ctx(|| format!("write {path}"));
        }
    }
    through_helper(pid, ids, maps, own)
}

/// newuidmap/newgidmap PID (containerID hostID size)...: they check the ranges against
/// /etc/subuid or /etc/subgid.
fn through_helper(pid: i32, ids: Ids, maps: &[LinuxIdMapping], own: u32) -> Result<()> {
    let who = user_name(own, ids);
    let beyond = format!("{} maps host {}s other than the caller's own ({own})", ids.field, ids.word);
    let ranges = own_ranges(ids, own, who.as_deref());
    if ranges.is_empty() {
        let name = who.map(|n| format!(" ({n})")).unwrap_or_default();
        return msg(format!(
            "{beyond}: {} {own}{name} has no range in {}, which an ordinary user needs for that",
            ids.word, ids.ranges_file
        ));
    }
    let mut cmd = Command::new(ids.helper);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.args([m.container_id().to_string(), m.host_id().to_string(), m.size().to_string()]);
    }
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return msg(format!(
                "{beyond}: that needs {} (Debian's uidmap package), not found in PATH",
                ids.helper
            ))
        }
        Err(e) => return Err(e).ctx(|| format!("run {}", ids.helper)),
    };
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr).trim().replace('\n', "; ");
        return msg(format!(
            "{beyond}: {} refused ({}): {said} ({} gives {} {own}: {})",
            ids.helper,
            out.status,
            ids.ranges_file,
            ids.word,
            ranges.join(", ")
        ));
    }
    Ok(())
}

/// The caller's name, for /etc/subuid lines that name the user rather than the uid (and for
/// /etc/subgid, the user's name too: shadow's tools list groups there under the user's name).
fn user_name(own: u32, ids: Ids) -> Option<String> {
    let uid = if ids == Ids::USER { own } else { nix::unistd::geteuid().as_raw() };
    crate::host_user::name_of(uid)
}

/// "start-end" for each range the subordinate-id file gives the caller.
fn own_ranges(ids: Ids, own: u32, name: Option<&str>) -> Vec<String> {
    let text = std::fs::read_to_string(ids.ranges_file).unwrap_or_default();
    ranges_of(&text, own, name)
}

fn ranges_of(text: &str, own: u32, name: Option<&str>) -> Vec<String> {
    let own = own.to_string();
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().split(':');
            let (who, start, count) =
                (f.next()?, f.next()?.parse::<u64>().ok()?, f.next()?.parse::<u64>().ok()?);
            (who == own || Some(who) == name).then(|| format!("{start}-{}", start + count.saturating_sub(1)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_by_name_or_id() {
        let text = "alice:100000:65536\n1001:200000:10\n# comment\nbob:300000:5\nbroken\n";
        assert_eq!(ranges_of(text, 1000, Some("alice")), vec!["100000-165535"]);
        assert_eq!(ranges_of(text, 1001, Some("carol")), vec!["200000-200009"]);
        assert!(ranges_of(text, 1002, Some("dave")).is_empty());
        assert!(ranges_of("", 1000, None).is_empty());
    }
}
