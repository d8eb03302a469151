//! Rootless mode, as runc's `--rootless` means it: hull run by an ordinary user, or by root of
//! a user namespace that does not map the host's root (rootless podman runs its runtime so).
//! A rootless hull keeps its state under the user's runtime directory, and a container whose
//! cgroup it may not make runs without one (native/backend/create.rs says which limits that
//! leaves unapplied).

use std::path::PathBuf;

/// The `--rootless` flag's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootlessFlag {
    True,
    False,
    /// Rootless when not uid 0, or when in a user namespace (the default).
    Auto,
}

impl RootlessFlag {
    pub fn parse(s: &str) -> Result<RootlessFlag, String> {
        match s {
            "true" => Ok(RootlessFlag::True),
            "false" => Ok(RootlessFlag::False),
            "auto" => Ok(RootlessFlag::Auto),
            other => Err(format!("{other:?}: true, false or auto")),
        }
    }

    /// Whether hull runs rootless: the flag, or for `auto` (and no flag) what the process is.
    pub fn resolve(flag: Option<RootlessFlag>) -> bool {
        match flag.unwrap_or(RootlessFlag::Auto) {
            RootlessFlag::True => true,
            RootlessFlag::False => false,
            RootlessFlag::Auto => !nix::unistd::geteuid().is_root() || in_user_namespace(),
        }
    }
}

/// True when this process's user namespace is not the initial one: its uid map is anything
/// but the identity over all 2^32 ids.
pub fn in_user_namespace() -> bool {
    match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(map) => !is_initial_uid_map(&map),
        // No /proc: nothing says we are in one.
        Err(_) => false,
    }
}

fn is_initial_uid_map(map: &str) -> bool {
    let lines: Vec<Vec<&str>> = map.lines().map(|l| l.split_whitespace().collect()).collect();
    lines.len() == 1 && lines[0] == ["0", "0", "4294967295"]
}

/// The state root when `--root` is not given: /run/hull, or for a rootless hull
/// `$XDG_RUNTIME_DIR/hull` (the user's own tmpfs, as runc and crun use) when that is set.
pub fn default_root(rootless: bool) -> PathBuf {
    if rootless {
        if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir).join("hull");
        }
    }
    PathBuf::from("/run/hull")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_values() {
        assert_eq!(RootlessFlag::parse("auto"), Ok(RootlessFlag::Auto));
        assert_eq!(RootlessFlag::parse("true"), Ok(RootlessFlag::True));
        assert_eq!(RootlessFlag::parse("false"), Ok(RootlessFlag::False));
        assert!(RootlessFlag::parse("yes").unwrap_err().contains("true, false or auto"));
        assert!(RootlessFlag::resolve(Some(RootlessFlag::True)));
        assert!(!RootlessFlag::resolve(Some(RootlessFlag::False)));
    }

    #[test]
    fn only_the_identity_map_is_the_initial_namespace() {
        assert!(is_initial_uid_map("         0          0 4294967295\n"));
        assert!(!is_initial_uid_map("         0       1000          1\n"));
        assert!(!is_initial_uid_map("0 1000 1\n1 100000 65536\n"));
        assert!(!is_initial_uid_map("0 0 4294967294\n"));
    }
}
