//! Container directories under `--root`: exclusive creation, a lock per container, atomic
//! state writes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::State;

const STATE_FILE: &str = "state.json";
const LOCK_FILE: &str = "lock";
/// A container directory being removed is renamed to `<TOMB_PREFIX><id>:<pid>` first (':' is
/// in no id, so `ids` skips it).
const TOMB_PREFIX: &str = ".deleting:";
/// The fifo the init blocks on until `start` opens it.
pub const EXEC_FIFO: &str = "exec.fifo";

/// Makes the exec fifo at `path`, mode 0622 whatever the umask: the container's root must be
/// able to write it from whatever user namespace it is in (umask would take the bits mkfifo
/// asked for, and an unmapped owner's 0600 fifo is closed to it); only root can read it and
/// so start the container. Shared by `create` on the host and the agent in a VM's guest.
pub fn make_exec_fifo(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o622)).map_err(io::Error::from)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o622))
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid container id {0:?}: {1}")]
    BadId(String, &'static str),
    #[error("container {0} already exists")]
    Exists(String),
    #[error("container {0} does not exist")]
    NotFound(String),
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: io::Error },
    #[error("state of container {id} is unreadable ({path}): {msg}")]
    Corrupt { id: String, path: PathBuf, msg: String },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io { what, path: path.to_path_buf(), source }
}

/// The `--root` directory.
pub struct Store {
    root: PathBuf,
}

/// One container's directory, held under its lock for as long as this value lives.
pub struct ContainerDir {
    pub id: String,
    pub path: PathBuf,
    _lock: File,
}

/// Ids become directory names: keep them to what runc allows.
pub fn validate_id(id: &str) -> Result<(), StoreError> {
    let bad = |why| Err(StoreError::BadId(id.to_string(), why));
    if id.is_empty() {
        return bad("empty");
    }
    if id == "." || id == ".." {
        return bad("a dot name");
    }
    if id.len() > 1024 {
        return bad("too long");
    }
    if !id.chars().all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c)) {
        return bad("only letters, digits and _ + - . are allowed");
    }
    Ok(())
}

impl Store {
    /// Opens the root, creating it with mode 0700 when missing.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        if !root.is_dir() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(root)
                .map_err(io_err("create state root", root))?;
        }
        Ok(Store { root: root.to_path_buf() })
    }

    /// Opens the root only if it exists (read-only commands must not create it).
    pub fn existing(root: &Path) -> Store {
        Store { root: root.to_path_buf() }
    }

    pub fn dir_of(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Makes the container's directory; exactly one of several racing callers wins.
    pub fn create(&self, id: &str) -> Result<ContainerDir, StoreError> {
        validate_id(id)?;
        let path = self.dir_of(id);
        match fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(StoreError::Exists(id.to_string()))
            }
            Err(e) => return Err(io_err("create container directory", &path)(e)),
        }
        let lock = match lock_file(&path) {
            Ok(l) => l,
            Err(e) => {
                let _ = fs::remove_dir_all(&path);
                return Err(e);
            }
        };
        Ok(ContainerDir { id: id.to_string(), path, _lock: lock })
    }

    /// Locks an existing container's directory, waiting for other commands on it.
    pub fn lock(&self, id: &str) -> Result<ContainerDir, StoreError> {
        validate_id(id)?;
        let found = self.lock_found(id);
        if let Err(StoreError::NotFound(_)) = found {
            self.sweep(id);
        }
        found
    }

    /// What a delete killed half-way left of container `id`: `.deleting:<id>:<pid>`
    /// directories whose process is gone (their resources were released before the rename).
    fn sweep(&self, id: &str) {
        let prefix = format!("{TOMB_PREFIX}{id}:");
        let Ok(entries) = fs::read_dir(&self.root) else { return };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else { continue };
            if pid.parse::<u32>().is_ok_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }

    fn lock_found(&self, id: &str) -> Result<ContainerDir, StoreError> {
        let path = self.dir_of(id);
        if !path.is_dir() {
            return Err(StoreError::NotFound(id.to_string()));
        }
        // The holder before us may have deleted the container while we waited, and another
        // create may even have made a new one of the same id: the lock counts only when the
        // file we hold is still the directory's lock.
        for _ in 0..16 {
            let lock = lock_file(&path).map_err(|e| match e {
                StoreError::Io { ref source, .. } if source.kind() == io::ErrorKind::NotFound => {
                    StoreError::NotFound(id.to_string())
                }
                e => e,
            })?;
            if is_current_lock(&lock, &path) {
                return Ok(ContainerDir { id: id.to_string(), path, _lock: lock });
            }
            if !path.exists() {
                return Err(StoreError::NotFound(id.to_string()));
            }
        }
        Err(StoreError::NotFound(id.to_string()))
    }

    /// Reads a container's state without taking its lock (state.json is replaced atomically,
    /// so a reader sees the old or the new file, never half of one).
    pub fn read(&self, id: &str) -> Result<State, StoreError> {
        validate_id(id)?;
        let path = self.dir_of(id);
        if !path.is_dir() {
            return Err(StoreError::NotFound(id.to_string()));
        }
        read_state(id, &path)
    }

    /// Ids of all containers with a directory under the root, sorted.
    pub fn ids(&self) -> Result<Vec<String>, StoreError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(io_err("read state root", &self.root)(e)),
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|id| validate_id(id).is_ok())
            .collect();
        ids.sort();
        Ok(ids)
    }
}

fn lock_file(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join(LOCK_FILE);
    let f = OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(&path)
        .map_err(io_err("open lock", &path))?;
    // SAFETY: flock on an fd we own; it only blocks this thread until the lock is free.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
    if rc != 0 {
        return Err(io_err("lock", &path)(io::Error::last_os_error()));
    }
    Ok(f)
}

/// True when `lock` is the file at `dir`'s lock path (not one a delete unlinked meanwhile).
fn is_current_lock(lock: &File, dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (lock.metadata(), fs::metadata(dir.join(LOCK_FILE))) {
        (Ok(held), Ok(now)) => held.dev() == now.dev() && held.ino() == now.ino(),
        _ => false,
    }
}

fn read_state(id: &str, dir: &Path) -> Result<State, StoreError> {
    let path = dir.join(STATE_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if dir.exists() {
                return Err(StoreError::Corrupt { id: id.to_string(), path, msg: "no state.json".into() });
            }
            return Err(StoreError::NotFound(id.to_string()));
        }
        Err(e) => return Err(io_err("read state", &path)(e)),
    };
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
        id: id.to_string(),
        path,
        msg: e.to_string(),
    })
}

impl ContainerDir {
    /// Reads state.json; a directory without one belongs to a create that never got far.
    pub fn load(&self) -> Result<State, StoreError> {
        read_state(&self.id, &self.path)
    }

    /// Writes state.json atomically: a temp file in the same directory, renamed over the old
    /// one. Not fsync'd: the root lives on /run (tmpfs) and the state is derived from live
    /// processes anyway; a sync cost milliseconds per write (runc does not sync either).
    pub fn save(&self, state: &State) -> Result<(), StoreError> {
        let tmp = self.path.join(".state.json.tmp");
        let dst = self.path.join(STATE_FILE);
        let text = serde_json::to_vec(state).map_err(|e| StoreError::Corrupt {
            id: self.id.clone(),
            path: dst.clone(),
            msg: e.to_string(),
        })?;
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&tmp)
            .map_err(io_err("write state", &tmp))?;
        f.write_all(&text).map_err(io_err("write state", &tmp))?;
        fs::rename(&tmp, &dst).map_err(io_err("rename state", &dst))?;
        Ok(())
    }

    pub fn fifo_path(&self) -> PathBuf {
        self.path.join(EXEC_FIFO)
    }

    /// Removes the directory and everything in it; the lock goes with this value.
    ///
    /// The directory is first renamed out of the way (to a name no id can have, which `ids`
    /// skips): a command that comes for the container meanwhile then finds nothing, where it
    /// used to make a fresh lock file in the directory being emptied, and the rmdir failed
    /// with ENOTEMPTY (two deletes at once). A file that still lands in the renamed directory
    /// (a lookup that began before the rename) is removed by trying again.
    pub fn remove(self) -> Result<(), StoreError> {
        let tomb = self.path.with_file_name(format!("{TOMB_PREFIX}{}:{}", self.id, std::process::id()));
        let target = match fs::rename(&self.path, &tomb) {
            Ok(()) => tomb,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(_) => self.path.clone(),
        };
        let mut tries = 0;
        loop {
            match fs::remove_dir_all(&target) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) && tries < 16 => tries += 1,
                Err(e) => return Err(io_err("remove state directory", &self.path)(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::validate_id;
    #[test]
    fn ids() {
        assert!(validate_id("abc-1_2.3+x").is_ok());
        for bad in ["", ".", "..", "a/b", "../x", "a b", "a\0"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }
}
