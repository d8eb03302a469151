//! The host side of the hybrid vsock: unix sockets.
//!
//! - [`HostListener`]: the socket at `uds_path` that host programs connect to. Each starts with
//!   the line `CONNECT <port>\n` ([`ConnectLine`]); once the guest accepts, it reads
//!   `OK <host_port>\n` and the rest of the stream is the guest's.
//! - [`connect_to_host_port`]: a guest connecting to the host's port P reaches the unix socket
//!   `<uds_path>_P`, which some host program listens on.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use super::Error;

/// The listening socket at `uds_path`. Dropping it unlinks the socket file, unless something
/// else has replaced the file since.
pub struct HostListener {
    listener: UnixListener,
    path: PathBuf,
    /// (device, inode) of the socket file this listener created.
    file_id: (u64, u64),
}

impl HostListener {
    /// Binds `path`, first removing a socket file a previous VMM left there. Anything else at
    /// the path is left alone and the bind fails.
    pub fn bind(path: &Path) -> Result<HostListener, Error> {
        if let Ok(meta) = fs::symlink_metadata(path) {
            if meta.file_type().is_socket() {
                fs::remove_file(path)
                    .map_err(|source| Error::RemoveStale { path: path.to_owned(), source })?;
            }
        }
        let bind_error = |source| Error::Bind { path: path.to_owned(), source };
        let listener = UnixListener::bind(path).map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        let meta = fs::symlink_metadata(path).map_err(bind_error)?;
        Ok(HostListener { listener, path: path.to_owned(), file_id: (meta.dev(), meta.ino()) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next pending host connection, non-blocking; `None` when there is none.
    pub fn accept(&self) -> io::Result<Option<UnixStream>> {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(true)?;
                    return Ok(Some(stream));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }
}

impl AsRawFd for HostListener {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.listener.as_raw_fd()
    }
}

impl Drop for HostListener {
    fn drop(&mut self) {
        let ours = fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.file_id);
        if ours {
            // Nothing to do about a failure here: the next bind removes a stale socket anyway.
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// `<uds_path>_<port>`: where a guest's connection to host port `port` goes.
pub fn host_port_path(uds_path: &Path, port: u32) -> PathBuf {
    let mut name = OsString::from(uds_path.as_os_str());
    name.push(format!("_{port}"));
    PathBuf::from(name)
}

/// Connects to the unix socket `<uds_path>_<port>` without blocking: the event loop must not
/// wait on a host program whose listen backlog is full (that fails with WouldBlock instead).
/// The returned stream is non-blocking.
pub fn connect_to_host_port(uds_path: &Path, port: u32) -> io::Result<UnixStream> {
    let path = host_port_path(uds_path, port);
    let bytes = path.as_os_str().as_bytes();
    let mut addr = libc::sockaddr_un { sun_family: libc::AF_UNIX as libc::sa_family_t, sun_path: [0; 108] };
    // One byte stays zero: the path is NUL-terminated.
    if bytes.len() >= addr.sun_path.len() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{} is too long", path.display())));
    }
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    let addr_len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;

    // SAFETY: socket() takes no pointers; its result is checked before use.
    let fd = unsafe {
        libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0)
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a socket just created here that nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: `addr` is a valid sockaddr_un that outlives the call, and `addr_len` does not
    // exceed its size (the path length was checked above).
    let rc = unsafe {
        libc::connect(
            socket.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast::<libc::sockaddr>(),
            addr_len as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(UnixStream::from(socket))
}

/// The longest `CONNECT <port>\n` line accepted: "CONNECT " and ten digits, with room to spare.
const MAX_CONNECT_LINE: usize = 32;

/// What a host client's first line said, so far.
#[derive(Debug, PartialEq, Eq)]
pub enum ConnectProgress {
    /// The line is not complete yet: wait for more.
    Incomplete,
    /// `CONNECT <port>`: connect the client to the guest's `port`.
    Port(u32),
    /// Not a CONNECT line, too long, or the client went away: close it.
    Invalid,
}

/// Reads a host client's `CONNECT <port>\n` one byte at a time, so that nothing the client
/// sends after the newline is consumed: it belongs to the guest.
#[derive(Default)]
pub struct ConnectLine {
    line: Vec<u8>,
}

impl ConnectLine {
    pub fn read_from(&mut self, stream: &mut impl Read) -> ConnectProgress {
        loop {
            let mut byte = [0u8; 1];
            match stream.read(&mut byte) {
                Ok(0) => return ConnectProgress::Invalid,
                Ok(_) if byte[0] == b'\n' => return parse_connect_line(&self.line),
                Ok(_) if self.line.len() >= MAX_CONNECT_LINE => return ConnectProgress::Invalid,
                Ok(_) => self.line.push(byte[0]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ConnectProgress::Incomplete,
                Err(_) => return ConnectProgress::Invalid,
            }
        }
    }
}

fn parse_connect_line(line: &[u8]) -> ConnectProgress {
    let port = std::str::from_utf8(line)
        .ok()
        .map(|l| l.trim_end_matches('\r'))
        .and_then(|l| l.strip_prefix("CONNECT "))
        .and_then(|p| p.trim().parse::<u32>().ok());
    match port {
        Some(port) => ConnectProgress::Port(port),
        None => ConnectProgress::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn parses_connect_lines() {
        let read = |bytes: &[u8]| ConnectLine::default().read_from(&mut Cursor::new(bytes.to_vec()));
        assert_eq!(read(b"CONNECT 1234\n"), ConnectProgress::Port(1234));
        assert_eq!(read(b"CONNECT 52\r\n"), ConnectProgress::Port(52));
        assert_eq!(read(b"CONNECT 4294967295\n"), ConnectProgress::Port(u32::MAX));
        assert_eq!(read(b"CONNECT 4294967296\n"), ConnectProgress::Invalid);
        assert_eq!(read(b"connect 1\n"), ConnectProgress::Invalid);
        assert_eq!(read(b"CONNECT x\n"), ConnectProgress::Invalid);
        assert_eq!(read(b"CONNECT 1"), ConnectProgress::Invalid, "EOF before the newline");
        assert_eq!(read(&[b'C'; 100]), ConnectProgress::Invalid);
    }

    #[test]
    fn stops_at_the_newline() {
        let mut input = Cursor::new(b"CONNECT 7\nhello".to_vec());
        assert_eq!(ConnectLine::default().read_from(&mut input), ConnectProgress::Port(7));
        let mut rest = String::new();
        input.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "hello");
    }

    #[test]
    fn waits_for_the_rest_of_a_split_line() {
        let (mut client, mut server) = UnixStream::pair().unwrap();
        server.set_nonblocking(true).unwrap();
        let mut line = ConnectLine::default();
        use std::io::Write;
        client.write_all(b"CONN").unwrap();
        assert_eq!(line.read_from(&mut server), ConnectProgress::Incomplete);
        client.write_all(b"ECT 99\n").unwrap();
        assert_eq!(line.read_from(&mut server), ConnectProgress::Port(99));
    }

    #[test]
    fn listener_replaces_a_stale_socket_and_unlinks_on_drop() {
        let dir = tempdir();
        let path = dir.join("v.sock");
        drop(UnixListener::bind(&path).unwrap()); // leaves the socket file behind
        let listener = HostListener::bind(&path).unwrap();
        assert!(listener.accept().unwrap().is_none());
        let _client = UnixStream::connect(&path).unwrap();
        assert!(listener.accept().unwrap().is_some());
        drop(listener);
        assert!(!path.exists());

        // A regular file is not ours to remove.
        fs::write(&path, b"data").unwrap();
        let err = HostListener::bind(&path).err().unwrap();
        assert!(err.to_string().contains(&path.display().to_string()), "{err}");
        assert!(path.exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn connects_to_the_port_socket() {
        let dir = tempdir();
        let uds = dir.join("v.sock");
        assert_eq!(host_port_path(&uds, 52), dir.join("v.sock_52"));
        let err = connect_to_host_port(&uds, 52).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let listener = UnixListener::bind(dir.join("v.sock_52")).unwrap();
        let stream = connect_to_host_port(&uds, 52).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        use std::io::Write;
        (&stream).write_all(b"hi").unwrap();
        let mut buf = [0u8; 2];
        (&accepted).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hi");
        let long = dir.join("x".repeat(200));
        assert_eq!(connect_to_host_port(&long, 1).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        fs::remove_dir_all(&dir).unwrap();
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "hull-vsock-unix-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }
}
