//! hull's configuration file, /etc/hull/config.toml (HULL_CONFIG names another one; tests use
//! it). A missing file is the same as an empty one. Each part of hull reads its own section:
//!
//! ```toml
//! [runtime]
//! backend = "vm"        # the backend of containers nothing else chose one for
//!
//! [vm]                  # read by crate::vm::config
//! kernel = "/usr/local/share/hull/vmlinuz"
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub const DEFAULT_PATH: &str = "/etc/hull/config.toml";
pub const PATH_ENV: &str = "HULL_CONFIG";

/// The file HULL_CONFIG names, else /etc/hull/config.toml.
pub fn path() -> PathBuf {
    match std::env::var_os(PATH_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_PATH),
    }
}

/// The `[runtime]` section; the other sections are not looked at here.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
struct File {
    #[serde(default)]
    runtime: Runtime,
}

#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct Runtime {
    backend: Option<String>,
}

/// `backend` under `[runtime]`, as written; None when the file or the key is missing. The
/// error names the file.
pub fn runtime_backend() -> Result<Option<String>, String> {
    runtime_backend_in(&path())
}

fn runtime_backend_in(path: &Path) -> Result<Option<String>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("read {}: {e}", path.display())),
    };
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn parse(text: &str) -> Result<Option<String>, String> {
    let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
    Ok(file.runtime.backend)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_runtime_backend_and_nothing_else() {
        assert_eq!(parse("[runtime]\nbackend = \"vm\"\n"), Ok(Some("vm".to_string())));
        assert_eq!(parse("[vm]\nkernel = \"/k\"\n"), Ok(None));
        assert_eq!(parse(""), Ok(None));
        assert!(parse("[runtime]\nbackend = 3\n").is_err());
        assert!(parse("[runtime]\nbakend = \"vm\"\n").unwrap_err().contains("bakend"));
    }

    #[test]
    fn a_missing_file_sets_nothing() {
        assert_eq!(runtime_backend_in(Path::new("/nonexistent/hull/config.toml")), Ok(None));
    }
}
