//! The lifecycle's errors: what callers (the CLI, and through it containerd and conmon) can
//! tell apart. The words in NotFound and WrongState are matched by callers: containerd's kill
//! path looks for "does not exist" and "container not running".

use crate::state::StoreError;

/// A backend's own error (the native sandbox's, a cgroup's, systemd's, later the VMM's).
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No container by that id under the root.
    #[error("container {0} does not exist")]
    NotFound(String),
    /// The container is in a state the command cannot act on ("container not running").
    #[error("{0}")]
    WrongState(String),
    /// The request itself is wrong: flags, files it names, the backend asked for.
    #[error("{0}")]
    Invalid(String),
    /// The backend tried and failed; its error says why, with its causes (a backend's typed
    /// error keeps the system's reason as its source, and this is the last layer to print it).
    #[error("{}", Chain(.0.as_ref()))]
    BackendFailed(BackendError),
    /// The guest agent of a vm container did not answer.
    // Not made yet: the vm backend's operations land with the VMM as init (issue 13).
    #[allow(dead_code)]
    #[error("vm agent unreachable: {0}")]
    AgentUnreachable(String),
    /// The state store failed (a bad id, an id taken, an unreadable state file, I/O).
    #[error(transparent)]
    Store(StoreError),
    /// The bundle's config.json is missing or invalid.
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
    /// A hook the lifecycle runs itself failed.
    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),
    /// A system call or file operation of the lifecycle's own failed while doing `what`.
    #[error("{what}: {cause}")]
    Io { what: String, cause: std::io::Error },
    /// One step of a command failed: "kill c1: container not running".
    #[error("{op} {id}: {inner}")]
    In { op: &'static str, id: String, inner: Box<Error> },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The backend's error as the lifecycle's.
    pub fn backend(e: impl Into<BackendError>) -> Error {
        Error::BackendFailed(e.into())
    }

    /// What went wrong, beneath the steps that name the command and container.
    #[allow(dead_code)] // for callers that match on the kind; the CLI only prints
    pub fn root(&self) -> &Error {
        match self {
            Error::In { inner, .. } => inner.root(),
            e => e,
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Error {
        match e {
            StoreError::NotFound(id) => Error::NotFound(id),
            e => Error::Store(e),
        }
    }
}

/// Names the command and container an error happened in.
pub trait During<T> {
    fn during(self, op: &'static str, id: &str) -> Result<T>;
}

impl<T, E: Into<Error>> During<T> for std::result::Result<T, E> {
    fn during(self, op: &'static str, id: &str) -> Result<T> {
        self.map_err(|e| Error::In { op, id: id.to_string(), inner: Box::new(e.into()) })
    }
}

/// Names what the lifecycle was doing when a system call failed.
pub trait IoContext<T> {
    fn doing<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T> IoContext<T> for std::result::Result<T, std::io::Error> {
    fn doing<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|cause| Error::Io { what: what().into(), cause })
    }
}

impl<T> IoContext<T> for std::result::Result<T, nix::errno::Errno> {
    fn doing<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error::Io { what: what().into(), cause: std::io::Error::from(e) })
    }
}

/// An error and its causes, as "what: why: the system's reason". A cause whose words the text
/// already ends with is not repeated (errors that print their source themselves).
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut text = self.0.to_string();
        let mut cause = self.0.source();
        while let Some(c) = cause {
            let words = c.to_string();
            if !text.ends_with(&words) {
                text.push_str(": ");
                text.push_str(&words);
            }
            cause = c.source();
        }
        f.write_str(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_words_callers_match() {
        let e: Error = StoreError::NotFound("c1".into()).into();
        assert_eq!(e.to_string(), "container c1 does not exist");
        let r: Result<()> = Err(Error::WrongState("container not running".into()));
        let e = r.during("kill", "c1").unwrap_err();
        assert_eq!(e.to_string(), "kill c1: container not running");
        assert!(matches!(e.root(), Error::WrongState(_)));
    }

    #[test]
    fn a_backend_error_prints_its_causes_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("mkdir /x")]
        struct Bare(#[source] std::io::Error);
        #[derive(Debug, thiserror::Error)]
        #[error("mkdir /x: {0}")]
        struct Says(#[source] std::io::Error);
        let enoent = || std::io::Error::from_raw_os_error(libc::ENOENT);
        let want = "mkdir /x: No such file or directory (os error 2)";
        assert_eq!(Error::backend(Bare(enoent())).to_string(), want);
        assert_eq!(Error::backend(Says(enoent())).to_string(), want);
    }
}
