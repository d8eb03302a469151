//! vm-run's private directory for the vsock unix sockets, removed when vm-run ends.
//!
//! In $XDG_RUNTIME_DIR when set, else the temp directory ($TMPDIR or /tmp); never under
//! hull's --root, where it would look like a container to `hull list`.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};

/// The longest path a unix socket address holds (sun_path, with its NUL).
const SUN_PATH_MAX: usize = 107;

pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    pub fn create() -> anyhow::Result<RunDir> {
        let base = match std::env::var_os("XDG_RUNTIME_DIR") {
            Some(d) if Path::new(&d).is_dir() => PathBuf::from(d),
            _ => std::env::temp_dir(),
        };
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let path = base.join(format!("hull-vm-run-{}-{nanos:08x}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .with_context(|| format!("creating vm-run's directory {}", path.display()))?;
        Ok(RunDir { path })
    }

    /// A socket path in the directory, checked against the unix socket address limit with
    /// room for `suffix` (the VMM adds `_<port>` to the vsock path).
    pub fn socket_path(&self, name: &str, suffix: &str) -> anyhow::Result<PathBuf> {
        let p = self.path.join(name);
        let len = p.as_os_str().len() + suffix.len();
        if len > SUN_PATH_MAX {
            bail!(
                "the socket path {}{suffix} is {len} bytes, over the {SUN_PATH_MAX}-byte limit of unix sockets: \
                 set TMPDIR (or XDG_RUNTIME_DIR) to a shorter directory",
                p.display()
            );
        }
        Ok(p)
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_private_and_gone_after_drop() {
        use std::os::unix::fs::PermissionsExt;
        let dir = RunDir::create().unwrap();
        let path = dir.path.clone();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o700);
        std::fs::write(dir.socket_path("vsock", "_1024").unwrap(), b"").unwrap();
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn refuses_socket_paths_too_long_for_sun_path() {
        let dir = RunDir { path: PathBuf::from(format!("/{}", "d".repeat(100))) };
        assert!(dir.socket_path("vsock", "_1024").is_err());
        std::mem::forget(dir);
    }
}
