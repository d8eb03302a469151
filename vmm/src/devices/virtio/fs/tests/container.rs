//! The device where the vm backend builds it: in the container's mount namespace after
//! pivot_root, sharing "/". Needs root (CAP_SYS_ADMIN for the mount namespace); skipped
//! without it.
//!
//! The namespace is made on a thread of its own: unshare(CLONE_NEWNS) also unshares the
//! thread's root and cwd, so the other test threads keep theirs, and the mounts go away with
//! the thread.

use std::ffi::CString;
use std::fs;
use std::io;
use std::path::Path;

use fuse_backend_rs::abi::fuse_abi::{EntryOut, Opcode, OpenOut, ReadIn, WriteIn, ROOT_ID};
use vm_memory::ByteValued;
use vmm_sys_util::tempdir::TempDir;

use super::guest::{memory, Guest};
use super::{create, init, lookup, open, HELLO, READ_SIZE, REPLY_LEN};

fn cstr(path: &Path) -> CString {
    CString::new(path.to_str().unwrap()).unwrap()
}

fn check(what: &str, ret: libc::c_long) -> io::Result<()> {
    if ret < 0 {
        let err = io::Error::last_os_error();
        return Err(io::Error::new(err.kind(), format!("{what}: {err}")));
    }
    Ok(())
}

/// This thread's root becomes `new_root`, with procfs at /proc, the old root detached.
fn pivot_into(new_root: &Path) -> io::Result<()> {
    let root = cstr(new_root);
    let none = std::ptr::null();
    // SAFETY: the calls below take NUL-terminated strings that outlive them, or null where
    // the syscall allows it; none keeps a pointer.
    unsafe {
        check("unshare(CLONE_NEWNS)", libc::unshare(libc::CLONE_NEWNS).into())?;
        check(
            "making / private",
            libc::mount(none, c"/".as_ptr(), none, libc::MS_REC | libc::MS_PRIVATE, std::ptr::null()).into(),
        )?;
        check(
            "bind-mounting the new root",
            libc::mount(root.as_ptr(), root.as_ptr(), none, libc::MS_BIND | libc::MS_REC, std::ptr::null())
                .into(),
        )?;
        check("chdir", libc::chdir(root.as_ptr()).into())?;
        check(
            "mounting /proc",
            libc::mount(c"proc".as_ptr(), c"proc".as_ptr(), c"proc".as_ptr(), 0, std::ptr::null()).into(),
        )?;
        check("pivot_root", libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c"oldroot".as_ptr()))?;
        check("chdir /", libc::chdir(c"/".as_ptr()).into())?;
        check("detaching the old root", libc::umount2(c"/oldroot".as_ptr(), libc::MNT_DETACH).into())?;
    }
    Ok(())
}

#[test]
fn serves_the_root_after_pivot_root_and_without_proc_afterwards() {
    let root = TempDir::new().unwrap();
    fs::write(root.as_path().join("hello.txt"), HELLO).unwrap();
    fs::create_dir(root.as_path().join("proc")).unwrap();
    fs::create_dir(root.as_path().join("oldroot")).unwrap();
    let new_root = root.as_path().to_path_buf();

    let in_container = std::thread::spawn(move || {
        if let Err(e) = pivot_into(&new_root) {
            if e.kind() == io::ErrorKind::PermissionDenied {
                eprintln!("skipped: no permission for a mount namespace ({e})");
                return;
            }
            panic!("{e}");
        }
        let mem = memory();
        let mut guest = Guest::new(&mem, Path::new("/"), false);
        init(&mut guest);

        // A guest write lands in the container's root.
        let reply = create(&mut guest, ROOT_ID, "from-guest.txt");
        assert_eq!(reply.header.error, 0);
        let nodeid = reply.body::<EntryOut>().nodeid;
        let fh = reply.body_at::<OpenOut>(std::mem::size_of::<EntryOut>()).fh;
        let data = b"guest data";
        let write_in = WriteIn { fh, offset: 0, size: data.len() as u32, ..Default::default() };
        let reply = guest.call(Opcode::Write, nodeid, &[write_in.as_slice(), data], REPLY_LEN);
        assert_eq!(reply.header.error, 0);
        assert_eq!(fs::read("/from-guest.txt").unwrap(), data);

        // /proc may go once the device is built: files are reopened through the fd it kept,
        // and a new mount (DESTROY, then INIT) reopens "/" by path.
        // SAFETY: a NUL-terminated path.
        let ret = unsafe { libc::umount2(c"/proc".as_ptr(), libc::MNT_DETACH) };
        assert_eq!(ret, 0, "unmounting /proc: {}", io::Error::last_os_error());
        assert_eq!(guest.call(Opcode::Destroy, 0, &[], REPLY_LEN).header.error, 0);
        init(&mut guest);
        let nodeid = lookup(&mut guest, ROOT_ID, "hello.txt").body::<EntryOut>().nodeid;
        let reply = open(&mut guest, nodeid, libc::O_RDONLY);
        assert_eq!(reply.header.error, 0);
        let fh = reply.body::<OpenOut>().fh;
        let read_in = ReadIn { fh, offset: 0, size: READ_SIZE, ..Default::default() };
        assert_eq!(guest.call(Opcode::Read, nodeid, &[read_in.as_slice()], REPLY_LEN).payload, HELLO);
    });
    in_container.join().unwrap();
}
