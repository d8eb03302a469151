//! Why a virtio-fs device could not be built.

use std::io;
use std::path::PathBuf;

use super::TAG_MAX_LEN;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("virtio-fs tag {tag:?} is {len} bytes long: a tag has 1 to {TAG_MAX_LEN} bytes")]
    TagLength { tag: String, len: usize },
    #[error("virtio-fs tag {0:?} contains a NUL byte")]
    TagNul(String),
    #[error("virtio-fs shared directory {path}: {source}")]
    Dir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("virtio-fs shared directory {0} is not a directory")]
    NotADirectory(PathBuf),
    #[error("virtio-fs shared directory {0}: the path is not UTF-8 or contains a NUL byte")]
    DirName(PathBuf),
    #[error(
        "virtio-fs shared directory {path}: starting the passthrough file system \
         (it needs procfs mounted at /proc): {source}"
    )]
    Passthrough {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("virtio-fs: creating a queue eventfd: {0}")]
    EventFd(#[source] io::Error),
}
