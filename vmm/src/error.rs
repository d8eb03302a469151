//! The VMM's errors: each names what failed, so the caller can print one clear line.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(String),
    #[error("/dev/kvm: {0}")]
    Kvm(#[source] kvm_ioctls::Error),
    #[error("{what}: {source}")]
    KvmOp {
        what: &'static str,
        #[source]
        source: kvm_ioctls::Error,
    },
    #[error("guest memory: {0}")]
    Memory(String),
    #[error("loading the kernel {path}: {msg}")]
    Kernel { path: PathBuf, msg: String },
    #[error("{0}")]
    Pvm(String),
    #[error("device {what}: {msg}")]
    Device { what: String, msg: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        Error::Io { what: what.into(), source }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
