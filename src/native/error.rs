//! The native backend's error: what hull was doing, and the system's reason.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call failed while doing `what`.
    #[error("{what}: {source}")]
    Sys { what: String, source: io::Error },
    /// A rule of hull's own, or a message from a child process.
    #[error("{0}")]
    Msg(String),
    /// The container's cgroup could not be made for the init (see `Place`).
    #[error(transparent)]
    Place(#[from] super::PlaceError),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Attaches "what hull was doing" to a failed system call.
pub trait Context<T> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, nix::errno::Errno> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error::Sys { what: what().into(), source: io::Error::from(e) })
    }
}

impl<T> Context<T> for std::result::Result<T, io::Error> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|source| Error::Sys { what: what().into(), source })
    }
}

pub fn msg<T>(m: impl Into<String>) -> Result<T> {
    Err(Error::Msg(m.into()))
}
