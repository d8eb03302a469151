//! A writer of newc cpio archives, the format the Linux kernel unpacks an initramfs from.
//!
//! Each entry is a 110-byte ASCII header ("070701" and 13 eight-digit hex fields), the NUL
//! terminated name, padding to 4 bytes, the data, padding to 4 bytes; the archive ends with an
//! entry named `TRAILER!!!`. The kernel creates entries in archive order and does not make
//! missing parent directories, so the writer adds each parent before its first child.

use std::collections::BTreeSet;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CpioError {
    #[error("bad path in the archive: {0:?}")]
    BadPath(String),
    #[error("{path}: {len} bytes is too large for a cpio entry")]
    TooLarge { path: String, len: usize },
    #[error("{0} is already in the archive")]
    Duplicate(String),
}

const MAGIC: &[u8] = b"070701";
const TRAILER: &str = "TRAILER!!!";
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFCHR: u32 = 0o020000;

#[derive(Default)]
pub struct CpioWriter {
    out: Vec<u8>,
    next_ino: u32,
    /// Every path written, so parents are added once and duplicates are refused.
    paths: BTreeSet<String>,
}

impl CpioWriter {
    pub fn new() -> Self {
        CpioWriter { out: Vec::new(), next_ino: 1, paths: BTreeSet::new() }
    }

    /// A directory (and its missing parents, mode 0755). Adding one again is a no-op.
    pub fn dir(&mut self, path: &str, mode: u32) -> Result<(), CpioError> {
        let name = normalize(path)?;
        if self.paths.contains(&name) {
            return Ok(());
        }
        self.parents(&name)?;
        self.entry(&name, S_IFDIR | (mode & 0o7777), 2, (0, 0), &[])
    }

    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> Result<(), CpioError> {
        let name = self.new_name(path)?;
        self.entry(&name, S_IFREG | (mode & 0o7777), 1, (0, 0), data)
    }

    pub fn char_device(&mut self, path: &str, mode: u32, major: u32, minor: u32) -> Result<(), CpioError> {
        let name = self.new_name(path)?;
        self.entry(&name, S_IFCHR | (mode & 0o7777), 1, (major, minor), &[])
    }

    /// Whether `path` is in the archive already.
    pub fn contains(&self, path: &str) -> bool {
        normalize(path).is_ok_and(|n| self.paths.contains(&n))
    }

    /// The finished archive.
    pub fn finish(mut self) -> Vec<u8> {
        self.header(TRAILER, 0, 1, 0, (0, 0), 0);
        self.out
    }

    fn new_name(&mut self, path: &str) -> Result<String, CpioError> {
        let name = normalize(path)?;
        if self.paths.contains(&name) {
            return Err(CpioError::Duplicate(format!("/{name}")));
        }
        self.parents(&name)?;
        Ok(name)
    }

    fn parents(&mut self, name: &str) -> Result<(), CpioError> {
        let mut end = 0;
        while let Some(i) = name[end..].find('/') {
            end += i;
            let parent = &name[..end];
            if !self.paths.contains(parent) {
                self.entry(parent, S_IFDIR | 0o755, 2, (0, 0), &[])?;
            }
            end += 1;
        }
        Ok(())
    }

    fn entry(
        &mut self,
        name: &str,
        mode: u32,
        nlink: u32,
        rdev: (u32, u32),
        data: &[u8],
    ) -> Result<(), CpioError> {
        let size = u32::try_from(data.len())
            .map_err(|_| CpioError::TooLarge { path: format!("/{name}"), len: data.len() })?;
        let ino = self.next_ino;
        self.next_ino += 1;
        self.header(name, ino, nlink, mode, rdev, size);
        self.out.extend_from_slice(data);
        self.pad();
        self.paths.insert(name.to_string());
        Ok(())
    }

    fn header(&mut self, name: &str, ino: u32, nlink: u32, mode: u32, rdev: (u32, u32), size: u32) {
        self.out.extend_from_slice(MAGIC);
        // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
        let fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev.0, rdev.1, name.len() as u32 + 1, 0];
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }
}

/// `/a/b` -> `a/b`; refuses empty, `.` and `..` components (an archive must not reach out of
/// the root it is unpacked into).
fn normalize(path: &str) -> Result<String, CpioError> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() || parts.iter().any(|p| *p == "." || *p == ".." || p.contains('\0')) {
        return Err(CpioError::BadPath(path.to_string()));
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// One entry as read back.
    #[derive(Debug, PartialEq, Eq)]
    pub struct Entry {
        pub name: String,
        pub mode: u32,
        pub rdev: (u32, u32),
        pub data: Vec<u8>,
    }

    /// An independent newc reader, strict about magic, alignment and the trailer.
    pub fn read_archive(mut buf: &[u8]) -> Vec<Entry> {
        let total = buf.len();
        let mut entries = Vec::new();
        loop {
            assert_eq!((total - buf.len()) % 4, 0, "entry not 4-byte aligned");
            assert_eq!(&buf[..6], b"070701");
            let field = |i: usize| {
                u32::from_str_radix(std::str::from_utf8(&buf[6 + i * 8..14 + i * 8]).unwrap(), 16).unwrap()
            };
            let (mode, size, rdev, namesize) =
                (field(1), field(6) as usize, (field(9), field(10)), field(11) as usize);
            let name = std::str::from_utf8(&buf[110..110 + namesize - 1]).unwrap().to_string();
            assert_eq!(buf[110 + namesize - 1], 0, "name not NUL-terminated");
            let data_at = (110 + namesize).next_multiple_of(4);
            let data = buf[data_at..data_at + size].to_vec();
            buf = &buf[(data_at + size).next_multiple_of(4)..];
            if name == TRAILER {
                assert!(buf.is_empty(), "bytes after the trailer");
                return entries;
            }
            entries.push(Entry { name, mode, rdev, data });
        }
    }

    fn sample() -> Vec<u8> {
        let mut w = CpioWriter::new();
        w.dir("/proc", 0o555).unwrap();
        w.file("/init", 0o755, b"\x7fELF...").unwrap();
        w.file("/usr/lib/x86_64-linux-gnu/libc.so.6", 0o755, &[1, 2, 3, 4, 5]).unwrap();
        w.char_device("/dev/console", 0o600, 5, 1).unwrap();
        w.file("/etc/hull-agent.json", 0o644, b"{}").unwrap();
        w.finish()
    }

    #[test]
    fn entries_come_back_with_parents_first() {
        let entries = read_archive(&sample());
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "proc",
                "init",
                "usr",
                "usr/lib",
                "usr/lib/x86_64-linux-gnu",
                "usr/lib/x86_64-linux-gnu/libc.so.6",
                "dev",
                "dev/console",
                "etc",
                "etc/hull-agent.json"
            ]
        );
        let by = |n: &str| entries.iter().find(|e| e.name == n).unwrap();
        assert_eq!(by("proc").mode, 0o040555);
        assert_eq!(by("init").mode, 0o100755);
        assert_eq!(by("init").data, b"\x7fELF...");
        assert_eq!(by("usr/lib/x86_64-linux-gnu/libc.so.6").data, [1, 2, 3, 4, 5]);
        assert_eq!((by("dev/console").mode, by("dev/console").rdev), (0o020600, (5, 1)));
    }

    #[test]
    fn cpio_lists_what_was_written() {
        // The reference reader, where it is installed (Debian's cpio package).
        let Ok(mut child) = std::process::Command::new("cpio")
            .args(["-it", "--quiet"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
        else {
            eprintln!("cpio not installed; skipping the cross-check");
            return;
        };
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&sample()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let listed = String::from_utf8(out.stdout).unwrap();
        assert!(listed.lines().any(|l| l == "usr/lib/x86_64-linux-gnu/libc.so.6"), "{listed}");
        assert!(listed.lines().any(|l| l == "dev/console"), "{listed}");
        assert_eq!(listed.lines().count(), 10, "{listed}");
    }

    #[test]
    fn bad_and_duplicate_paths_are_refused() {
        let mut w = CpioWriter::new();
        assert!(matches!(w.file("/", 0o644, b""), Err(CpioError::BadPath(_))));
        assert!(matches!(w.file("/a/../etc/passwd", 0o644, b""), Err(CpioError::BadPath(_))));
        w.file("/a/b", 0o644, b"x").unwrap();
        assert_eq!(w.file("a//b", 0o644, b"y"), Err(CpioError::Duplicate("/a/b".into())));
        assert!(w.dir("/a", 0o755).is_ok(), "a directory already there is fine");
        assert!(w.contains("/a/b") && !w.contains("/c"));
    }

    #[test]
    fn an_empty_archive_is_just_the_trailer() {
        let bytes = CpioWriter::new().finish();
        assert_eq!(bytes.len() % 4, 0);
        assert!(read_archive(&bytes).is_empty());
    }
}
