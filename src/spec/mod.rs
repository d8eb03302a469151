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
    let text = read_config(&dir.join("config.json")).map_err(|e| SpecError::Io {
        bundle: dir.clone(),
        err: std::io::Error::new(e.kind(), format!("read config.json: {e}")),
    })?;
    from_json(dir, &text)
}

/// The most of config.json hull reads. Real configs are kilobytes (Kubernetes caps a pod's
/// annotations at 256 KiB); the whole spec is kept in the state and read back by every later
/// command, so a huge one is refused rather than carried around.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// Reads config.json: a regular file (a fifo would block create forever, a device such as
/// /dev/zero would never end) of at most [`MAX_CONFIG_BYTES`].
fn read_config(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let refuse = |msg: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, msg);
    // O_NONBLOCK: opening a fifo must not wait for a writer before the check below.
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(refuse("not a regular file".into()));
    }
    let too_big =
        |n: u64| refuse(format!("{n} bytes, more than the {} MiB hull reads", MAX_CONFIG_BYTES >> 20));
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(too_big(meta.len()));
    }
    let mut text = Vec::with_capacity(meta.len() as usize);
    // A file that grows while it is read stops at the limit too.
    file.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut text)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(too_big(text.len() as u64));
    }
    Ok(text)
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
