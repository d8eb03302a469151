//! The bundle's config.json: parsed with oci-spec and validated once, before anything is
//! created. The rest of hull reads the spec only through [`Bundle`].

mod default;
mod features;
pub mod mempolicy;
mod validate;

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

pub use default::default_spec;
pub use features::features;

/// The runtime-spec version hull implements.
pub const OCI_VERSION: &str = "1.2.1";

/// A loaded, validated bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Absolute path of the bundle directory.
    pub dir: PathBuf,
    /// Absolute path of the root filesystem (root.path resolved against the bundle).
    pub rootfs: PathBuf,
    pub spec: Spec,
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("bundle {bundle}: {err}")]
    Io { bundle: PathBuf, err: std::io::Error },
    #[error("bundle {bundle}: config.json: {msg}")]
    Parse { bundle: PathBuf, msg: String },
    #[error("bundle {bundle}: config.json: {field}: {msg}")]
    Invalid { bundle: PathBuf, field: String, msg: String },
}

/// Reads `<dir>/config.json`, parses it, and checks it against the runtime spec's rules.
pub fn load(dir: &Path) -> Result<Bundle, SpecError> {
    let dir = std::path::absolute(dir)
        .and_then(|d| d.canonicalize())
        .map_err(|err| SpecError::Io { bundle: dir.to_path_buf(), err })?;
    let path = dir.join("config.json");
    let text = std::fs::read(&path).map_err(|e| SpecError::Io {
        bundle: dir.clone(),
        err: std::io::Error::new(e.kind(), format!("read config.json: {e}")),
    })?;
    from_json(dir, &text)
}

/// Parses config.json's bytes for the bundle at `dir` (absolute, canonical) and checks them
/// against the runtime spec's rules. What `load` does once it has read the file; the config
/// fuzz target (fuzz/) calls it directly.
pub fn from_json(dir: PathBuf, text: &[u8]) -> Result<Bundle, SpecError> {
    let spec: Spec = serde_json::from_slice(text)
        .map_err(|e| SpecError::Parse { bundle: dir.clone(), msg: e.to_string() })?;
    let rootfs = validate::validate(&spec, &dir).map_err(|v| SpecError::Invalid {
        bundle: dir.clone(),
        field: v.field,
        msg: v.msg,
    })?;
    Ok(Bundle { dir, rootfs, spec })
}
