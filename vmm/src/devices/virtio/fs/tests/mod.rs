//! The device end to end without KVM: FUSE requests in descriptor chains on mock queues, served
//! against a real temporary directory, replies parsed back.

mod container;
mod guest;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::{Arc, Mutex};

use event_manager::{EventManager, SubscriberOps};
use fuse_backend_rs::abi::fuse_abi::{
    AttrOut, CreateIn, EntryOut, ForgetIn, FsOptions, GetattrIn, GetxattrIn, InitIn, InitIn2, InitOut,
    MkdirIn, MknodIn, Opcode, OpenIn, OpenOut, OutHeader, ReadIn, ReleaseIn, WriteIn, WriteOut, ROOT_ID,
};
use virtio_bindings::bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use virtio_queue::desc::{split::Descriptor as SplitDescriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{ByteValued, Bytes, GuestAddress};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};
use vmm_sys_util::tempdir::TempDir;

use self::guest::{fuse_request, memory, name, Buf, Guest, Reply, HIPRIO, REQUEST};
use super::{Error, Fs, TAG_MAX_LEN};
use crate::devices::virtio::{Interrupt, VirtioDevice, FEATURE_VERSION_1, INT_USED_RING, TYPE_FS};

const HELLO: &[u8] = b"hello from the host\n";
/// Room for any reply the tests expect, data included.
const REPLY_LEN: usize = 4096;
/// What READs ask for: the driver gives room for all of it after the reply header, as the server
/// checks.
const READ_SIZE: u32 = 1024;

/// A shared directory holding hello.txt.
fn shared_dir() -> TempDir {
    let dir = TempDir::new().unwrap();
    fs::write(dir.as_path().join("hello.txt"), HELLO).unwrap();
    dir
}

/// FUSE_INIT the way Linux 6.1 sends it: protocol 7.37, the flags extended by a second word.
fn init(guest: &mut Guest) -> InitOut {
    let wanted =
        FsOptions::MAX_PAGES | FsOptions::BIG_WRITES | FsOptions::DO_READDIRPLUS | FsOptions::INIT_EXT;
    let init_in = InitIn { major: 7, minor: 37, max_readahead: 128 << 10, flags: wanted.bits() as u32 };
    let init_in2 = InitIn2 { flags2: (wanted.bits() >> 32) as u32, unused: [0; 11] };
    let reply = guest.call(Opcode::Init, 0, &[init_in.as_slice(), init_in2.as_slice()], REPLY_LEN);
    assert_eq!(reply.header.error, 0);
    reply.body::<InitOut>()
}

fn lookup(guest: &mut Guest, parent: u64, file: &str) -> Reply {
    let arg = name(file);
    guest.call(Opcode::Lookup, parent, &[&arg], REPLY_LEN)
}

fn open(guest: &mut Guest, nodeid: u64, flags: i32) -> Reply {
    let open_in = OpenIn { flags: flags as u32, fuse_flags: 0 };
    guest.call(Opcode::Open, nodeid, &[open_in.as_slice()], REPLY_LEN)
}

fn create(guest: &mut Guest, parent: u64, file: &str) -> Reply {
    let create_in = CreateIn {
        flags: (libc::O_WRONLY | libc::O_CREAT) as u32,
        mode: 0o100640,
        umask: 0o022,
        fuse_flags: 0,
    };
    let arg = name(file);
    guest.call(Opcode::Create, parent, &[create_in.as_slice(), &arg], REPLY_LEN)
}

fn errno(reply: &Reply) -> i32 {
    -reply.header.error
}

#[test]
fn config_space_has_the_tag_and_one_request_queue() {
    let dir = shared_dir();
    let dev = Fs::new("rootfs", dir.as_path(), false).unwrap();
    assert_eq!(dev.device_type(), TYPE_FS);
    assert_eq!(dev.tag(), "rootfs");
    assert_eq!(dev.queue_max_sizes(), &[1024, 1024]);
    assert_eq!(dev.queue_events().len(), 2);
    assert_eq!(dev.avail_features(), FEATURE_VERSION_1);

    let mut config = [0xffu8; 40];
    dev.read_config(0, &mut config);
    let mut want = [0u8; 40];
    want[..6].copy_from_slice(b"rootfs");
    want[36..].copy_from_slice(&1u32.to_le_bytes());
    assert_eq!(config, want);

    let mut queues = [0xffu8; 4];
    dev.read_config(36, &mut queues);
    assert_eq!(u32::from_le_bytes(queues), 1);
    let mut past_end = [0xffu8; 8];
    dev.read_config(38, &mut past_end);
    assert_eq!(past_end, [0, 0, 0, 0, 0, 0, 0, 0]);
    dev.read_config(u64::MAX, &mut past_end);
    assert_eq!(past_end, [0; 8]);
}

#[test]
fn tags_are_checked() {
    let dir = shared_dir();
    let longest = "t".repeat(TAG_MAX_LEN);
    let dev = Fs::new(&longest, dir.as_path(), false).unwrap();
    let mut tag = [0u8; TAG_MAX_LEN];
    dev.read_config(0, &mut tag);
    assert_eq!(&tag[..], longest.as_bytes());

    let err = Fs::new("", dir.as_path(), false).err().unwrap();
    assert!(matches!(err, Error::TagLength { len: 0, .. }), "{err}");
    let too_long = "t".repeat(TAG_MAX_LEN + 1);
    let err = Fs::new(&too_long, dir.as_path(), false).err().unwrap();
    assert!(matches!(err, Error::TagLength { len: 37, .. }), "{err}");
    assert!(err.to_string().contains(&too_long), "the error names the tag: {err}");
    let err = Fs::new("a\0b", dir.as_path(), false).err().unwrap();
    assert!(matches!(err, Error::TagNul(_)), "{err}");
}

#[test]
fn the_shared_directory_must_be_a_directory() {
    let dir = shared_dir();
    let missing = dir.as_path().join("missing");
    let err = Fs::new("share", &missing, false).err().unwrap();
    assert!(matches!(err, Error::Dir { .. }), "{err}");
    assert!(err.to_string().contains(missing.to_str().unwrap()), "the error names the path: {err}");

    let file = dir.as_path().join("hello.txt");
    let err = Fs::new("share", &file, false).err().unwrap();
    assert!(matches!(err, Error::NotADirectory(_)), "{err}");
    assert!(err.to_string().contains(file.to_str().unwrap()), "the error names the path: {err}");
}

#[test]
fn a_symlink_to_a_directory_is_shared_as_the_directory() {
    let dir = shared_dir();
    let links = TempDir::new().unwrap();
    let link = links.as_path().join("link");
    std::os::unix::fs::symlink(dir.as_path(), &link).unwrap();
    let mem = memory();
    let mut guest = Guest::new(&mem, &link, false);
    init(&mut guest);
    assert_eq!(lookup(&mut guest, ROOT_ID, "hello.txt").header.error, 0);
}

#[test]
fn init_lookup_getattr() {
    let dir = shared_dir();
    let mem = memory();
    let mut guest = Guest::new(&mem, dir.as_path(), false);

    let init_out = init(&mut guest);
    assert_eq!(init_out.major, 7);
    assert_eq!(init_out.max_pages, 256, "1 MiB requests");
    assert_eq!(init_out.max_write, 1 << 20);

    let reply = lookup(&mut guest, ROOT_ID, "hello.txt");
    assert_eq!(reply.header.error, 0);
    assert_eq!(reply.used_len as usize, 16 + std::mem::size_of::<EntryOut>());
    let entry = reply.body::<EntryOut>();
    assert_ne!(entry.nodeid, 0);
    assert_eq!(entry.attr.size, HELLO.len() as u64);
    assert_eq!(entry.attr.mode & libc::S_IFMT, libc::S_IFREG);

    let getattr_in = GetattrIn::default();
    let reply = guest.call(Opcode::Getattr, entry.nodeid, &[getattr_in.as_slice()], REPLY_LEN);
    assert_eq!(reply.header.error, 0);
    let attr = reply.body::<AttrOut>();
    assert_eq!(attr.attr.size, HELLO.len() as u64);
    assert_eq!(attr.attr.ino, entry.attr.ino);

    let reply = lookup(&mut guest, ROOT_ID, "no-such-file");
    assert_eq!(errno(&reply), libc::ENOENT);
    assert_eq!(reply.used_len, 16);

    // The root's parent is the root: the guest cannot climb out.
    let reply = lookup(&mut guest, ROOT_ID, "..");
    assert_eq!(reply.header.error, 0);
    assert_eq!(reply.body::<EntryOut>().nodeid, ROOT_ID);
}

#[test]
fn open_and_read_a_host_file() {
    let dir = shared_dir();
    let mem = memory();
    let mut guest = Guest::new(&mem, dir.as_path(), false);
    init(&mut guest);
    let nodeid = lookup(&mut guest, ROOT_ID, "hello.txt").body::<EntryOut>().nodeid;

    let reply = open(&mut guest, nodeid, libc::O_RDONLY);
    assert_eq!(reply.header.error, 0);
    let fh = reply.body::<OpenOut>().fh;

    let read_in = ReadIn { fh, offset: 0, size: READ_SIZE, ..Default::default() };
    let reply = guest.call(Opcode::Read, nodeid, &[read_in.as_slice()], REPLY_LEN);
    assert_eq!(reply.header.error, 0);
    assert_eq!(reply.payload, HELLO);
    assert_eq!(reply.used_len as usize, 16 + HELLO.len());

    let read_in = ReadIn { fh, offset: 6, size: 4, ..Default::default() };
    let reply = guest.call(Opcode::Read, nodeid, &[read_in.as_slice()], REPLY_LEN);
    assert_eq!(reply.payload, b"from");

    let release_in = ReleaseIn { fh, ..Default::default() };
    let reply = guest.call(Opcode::Release, nodeid, &[release_in.as_slice()], REPLY_LEN);
    assert_eq!(reply.header.error, 0);
}

#[test]
fn create_and_write_land_in_the_host_directory() {
    let dir = shared_dir();
    let mem = memory();
    let mut guest = Guest::new(&mem, dir.as_path(), false);
    init(&mut guest);

    let reply = create(&mut guest, ROOT_ID, "new.txt");
    assert_eq!(reply.header.error, 0);
    let entry = reply.body::<EntryOut>();
    let fh = reply.body_at::<OpenOut>(std::mem::size_of::<EntryOut>()).fh;

    let data = b"written by the guest";
    let write_in = WriteIn { fh, offset: 0, size: data.len() as u32, ..Default::default() };
    let reply = guest.call(Opcode::Write, entry.nodeid, &[write_in.as_slice(), data], REPLY_LEN);
    assert_eq!(reply.header.error, 0);
    assert_eq!(reply.body::<WriteOut>().size, data.len() as u32);

    // No writeback cache: the bytes are on the host when the write is answered.
    let host_file = dir.as_path().join("new.txt");
    assert_eq!(fs::read(&host_file).unwrap(), data);
    let release_in = ReleaseIn { fh, ..Default::default() };
    guest.call(Opcode::Release, entry.nodeid, &[release_in.as_slice()], REPLY_LEN);
    assert_eq!(fs::read(&host_file).unwrap(), data);
    // The guest's mode and umask decide the mode, not the VMM's umask.
    assert_eq!(fs::metadata(&host_file).unwrap().permissions().mode() & 0o777, 0o640);

    let mkdir_in = MkdirIn { mode: 0o755, umask: 0 };
    let arg = name("subdir");
    let reply = guest.call(Opcode::Mkdir, ROOT_ID, &[mkdir_in.as_slice(), &arg], REPLY_LEN);
    assert_eq!(reply.header.error, 0);
    assert!(dir.as_path().join("subdir").is_dir());
}

#[test]
fn a_read_only_share_refuses_every_change() {
    let dir = shared_dir();
    let mem = memory();
    let mut guest = Guest::new(&mem, dir.as_path(), true);
    init(&mut guest);
    let nodeid = lookup(&mut guest, ROOT_ID, "hello.txt").body::<EntryOut>().nodeid;

    // Reading still works.
    let reply = open(&mut guest, nodeid, libc::O_RDONLY);
    assert_eq!(reply.header.error, 0);
    let fh = reply.body::<OpenOut>().fh;
    let read_in = ReadIn { fh, offset: 0, size: READ_SIZE, ..Default::default() };
    assert_eq!(guest.call(Opcode::Read, nodeid, &[read_in.as_slice()], REPLY_LEN).payload, HELLO);

    // A write through that read-only handle is refused.
    let data = b"nope";
    let write_in = WriteIn { fh, offset: 0, size: data.len() as u32, ..Default::default() };
    let reply = guest.call(Opcode::Write, nodeid, &[write_in.as_slice(), data], REPLY_LEN);
    assert_eq!(errno(&reply), libc::EROFS);

    for flags in [libc::O_WRONLY, libc::O_RDWR, libc::O_RDONLY | libc::O_TRUNC] {
        assert_eq!(errno(&open(&mut guest, nodeid, flags)), libc::EROFS, "open flags {flags:#o}");
    }
    assert_eq!(errno(&create(&mut guest, ROOT_ID, "new.txt")), libc::EROFS);
    let mkdir_in = MkdirIn { mode: 0o755, umask: 0 };
    let arg = name("subdir");
    let reply = guest.call(Opcode::Mkdir, ROOT_ID, &[mkdir_in.as_slice(), &arg], REPLY_LEN);
    assert_eq!(errno(&reply), libc::EROFS);
    let arg = name("hello.txt");
    assert_eq!(errno(&guest.call(Opcode::Unlink, ROOT_ID, &[&arg], REPLY_LEN)), libc::EROFS);

    assert_eq!(fs::read(dir.as_path().join("hello.txt")).unwrap(), HELLO);
    assert!(!dir.as_path().join("new.txt").exists());
    assert!(!dir.as_path().join("subdir").exists());
}

#[test]
fn a_request_too_short_for_a_header_gets_an_error_reply() {
    let dir = shared_dir();
    let mem = memory();
    let mut guest = Guest::new(&mem, dir.as_path(), false);

    let reply = guest.send(REQUEST, &[1u8; 10], 16);
    assert_eq!(errno(&reply), libc::EINVAL);
    assert_eq!(reply.header.len, 16);
    assert_eq!(reply.used_len, 16);

    // The device keeps serving.
    init(&mut guest);
    assert_eq!(lookup(&mut guest, ROOT_ID, "hello.txt").header.error, 0);
}

#[test]
fn a_request_with_missing_arguments_gets_an_error_reply() {
    let dir = shared_dir();
    let mem = memory();
    let mut guest = Guest::new(&mem, dir.as_path(), false);
    init(&mut guest);

    // GETATTR without its GetattrIn: the server cannot decode it and writes nothing itself.
    let unique = guest.unique();
    let request = fuse_request(Opcode::Getattr as u32, unique, ROOT_ID, &[]);
    let reply = guest.send(REQUEST, &request, REPLY_LEN);
    assert_eq!(errno(&reply), libc::EINVAL);
    assert_eq!(reply.header.unique, unique);

    // A name with no NUL: the server answers EINVAL itself, and that answer is kept.
    let reply = guest.call(Opcode::Lookup, ROOT_ID, &[b"hello.txt"], REPLY_LEN);
    assert_eq!(errno(&reply), libc::EINVAL);

    // An opcode nobody knows.
    let unique = guest.unique();
    let request = fuse_request(9999, unique, ROOT_ID, &[]);
    assert_eq!(errno(&guest.send(REQUEST, &request, REPLY_LEN)), libc::ENOSYS);

    assert_eq!(lookup(&mut guest, ROOT_ID, "hello.txt").header.error, 0);
}

#[test]
fn a_chain_outside_guest_memory_is_returned_and_the_device_goes_on() {
    let dir = shared_dir();
    let mem = memory();
    let mut guest = Guest::new(&mem, dir.as_path(), false);
    init(&mut guest);

    let reply_addr = guest.alloc(16, &[]);
    let bufs = [
        Buf { addr: 0x7fff_0000_0000, len: 40, writable: false },
        Buf { addr: reply_addr, len: 16, writable: true },
    ];
    let reply = guest.roundtrip(REQUEST, &bufs);
    assert_eq!(reply.used_len, 0);

    // A request with no reply buffer at all.
    let request = fuse_request(Opcode::Getattr as u32, guest.unique(), ROOT_ID, &[]);
    let addr = guest.alloc(request.len(), &request);
    let reply = guest.roundtrip(REQUEST, &[Buf { addr, len: request.len() as u32, writable: false }]);
    assert_eq!(reply.used_len, 0);

    assert_eq!(lookup(&mut guest, ROOT_ID, "hello.txt").header.error, 0);
}

#[test]
fn forget_on_the_hiprio_queue_gets_no_reply() {
    let dir = shared_dir();
    let mem = memory();
    let mut guest = Guest::new(&mem, dir.as_path(), false);
    init(&mut guest);
    let nodeid = lookup(&mut guest, ROOT_ID, "hello.txt").body::<EntryOut>().nodeid;

    let forget_in = ForgetIn { nlookup: 1 };
    let request = fuse_request(Opcode::Forget as u32, guest.unique(), nodeid, &[forget_in.as_slice()]);
    let reply = guest.send(HIPRIO, &request, 0);
    assert_eq!(reply.used_len, 0);

    // Forgotten: the old node id is gone, a new lookup works.
    let getattr_in = GetattrIn::default();
    let reply = guest.call(Opcode::Getattr, nodeid, &[getattr_in.as_slice()], REPLY_LEN);
    assert_eq!(errno(&reply), libc::EBADF);
    assert_eq!(lookup(&mut guest, ROOT_ID, "hello.txt").header.error, 0);
}

#[test]
fn destroy_is_answered_and_init_works_again() {
    let dir = shared_dir();
    let mem = memory();
    let mut guest = Guest::new(&mem, dir.as_path(), false);
    init(&mut guest);
    assert_eq!(lookup(&mut guest, ROOT_ID, "hello.txt").header.error, 0);

    let reply = guest.call(Opcode::Destroy, 0, &[], REPLY_LEN);
    assert_eq!(reply.header.error, 0);
    assert_eq!(reply.used_len, 16);

    init(&mut guest);
    assert_eq!(lookup(&mut guest, ROOT_ID, "hello.txt").header.error, 0);
}

#[test]
fn the_event_loop_serves_a_notified_queue_and_raises_the_interrupt() {
    let dir = shared_dir();
    let mem = memory();
    let mock = MockSplitQueue::create(&mem, GuestAddress(0x10_0000), 16);
    let hiprio = MockSplitQueue::create(&mem, GuestAddress(0), 16);
    let mut dev = Fs::new("share", dir.as_path(), false).unwrap();
    let irqfd = EventFd::new(EFD_NONBLOCK).unwrap();
    let interrupt = Arc::new(Interrupt::new(irqfd.try_clone().unwrap()));
    let queues = vec![hiprio.create_queue().unwrap(), mock.create_queue().unwrap()];
    dev.activate(mem.clone(), queues, Arc::clone(&interrupt)).unwrap();
    assert!(dev.is_activated());
    let notify = dev.queue_events()[1].try_clone().unwrap();

    let dev = Arc::new(Mutex::new(dev));
    let mut manager = EventManager::<Arc<Mutex<Fs>>>::new().unwrap();
    manager.add_subscriber(Arc::clone(&dev));

    let init_in = InitIn { major: 7, minor: 31, max_readahead: 0, flags: 0 };
    let request = fuse_request(Opcode::Init as u32, 7, 0, &[init_in.as_slice()]);
    let (request_addr, reply_addr) = (0x20_0000, 0x30_0000);
    mem.write_slice(&request, GuestAddress(request_addr)).unwrap();
    let descs = [
        SplitDescriptor::new(request_addr, request.len() as u32, VRING_DESC_F_NEXT as u16, 1),
        SplitDescriptor::new(reply_addr, 4096, VRING_DESC_F_WRITE as u16, 0),
    ]
    .map(RawDescriptor::from);
    mock.add_desc_chains(&descs, 0).unwrap();

    notify.write(1).unwrap();
    manager.run_with_timeout(1000).unwrap();

    assert_eq!(mock.used().idx().load(), 1);
    let header = mem.read_obj::<OutHeader>(GuestAddress(reply_addr)).unwrap();
    assert_eq!((header.error, header.unique), (0, 7));
    assert_eq!(interrupt.status() & INT_USED_RING, INT_USED_RING);
    assert_eq!(irqfd.read().unwrap(), 1);

    // A reset drops the queues; the driver can set the device up again.
    let mut dev = dev.lock().unwrap();
    assert!(dev.reset());
    assert!(!dev.is_activated());
}

#[test]
fn activation_needs_both_queues() {
    let dir = shared_dir();
    let mem = memory();
    let mock = MockSplitQueue::create(&mem, GuestAddress(0), 16);
    let mut dev = Fs::new("share", dir.as_path(), false).unwrap();
    let interrupt = Arc::new(Interrupt::new(EventFd::new(EFD_NONBLOCK).unwrap()));
    let err = dev.activate(mem.clone(), vec![mock.create_queue().unwrap()], interrupt).unwrap_err();
    assert!(err.to_string().contains("1 queues given"), "{err}");
    assert!(!dev.is_activated());
}

#[test]
fn only_regular_files_are_opened_on_the_host() {
    let dir = shared_dir();
    let fifo = std::ffi::CString::new(dir.as_path().join("fifo").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o666) }, 0);
    let mem = memory();
    let mut guest = Guest::new(&mem, dir.as_path(), false);
    init(&mut guest);

    // Opening a fifo on the host would block the event loop until a writer came.
    let nodeid = lookup(&mut guest, ROOT_ID, "fifo").body::<EntryOut>().nodeid;
    assert_eq!(errno(&open(&mut guest, nodeid, libc::O_RDONLY)), libc::EACCES);
    // A directory goes through OPENDIR, not OPEN.
    assert_eq!(errno(&open(&mut guest, ROOT_ID, libc::O_RDONLY)), libc::EACCES);
}

#[test]
fn files_are_created_as_the_guest_user() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: the server takes the guest user's ids only when it runs as root");
        return;
    }
    let dir = shared_dir();
    let mem = memory();
    let mut guest = Guest::new(&mem, dir.as_path(), false);
    init(&mut guest);

    // The host checks permissions as the guest user: root's 0755 directory is not theirs.
    fs::set_permissions(dir.as_path(), fs::Permissions::from_mode(0o755)).unwrap();
    let mkdir_in = MkdirIn { mode: 0o755, umask: 0 };
    let arg = name("home");
    let reply = guest.call_as(1000, Opcode::Mkdir, ROOT_ID, &[mkdir_in.as_slice(), &arg], REPLY_LEN);
    assert_eq!(errno(&reply), libc::EACCES);

    fs::set_permissions(dir.as_path(), fs::Permissions::from_mode(0o777)).unwrap();
    let reply = guest.call_as(1000, Opcode::Mkdir, ROOT_ID, &[mkdir_in.as_slice(), &arg], REPLY_LEN);
    assert_eq!(reply.header.error, 0);
    let meta = fs::metadata(dir.as_path().join("home")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (1000, 1000));
    // The server is root again for the next request.
    assert_eq!(create(&mut guest, ROOT_ID, "root-file").header.error, 0);
    assert_eq!(fs::metadata(dir.as_path().join("root-file")).unwrap().uid(), 0);
}

#[test]
fn no_device_node_is_made_on_the_host_but_a_fifo_is() {
    let dir = shared_dir();
    let mem = memory();
    let mut guest = Guest::new(&mem, dir.as_path(), false);
    init(&mut guest);
    let mut mknod = |file: &str, mode: u32, rdev: u32| {
        let mknod_in = MknodIn { mode, rdev, umask: 0o022, padding: 0 };
        let arg = name(file);
        guest.call(Opcode::Mknod, ROOT_ID, &[mknod_in.as_slice(), &arg], REPLY_LEN)
    };
    // /dev/mem is 1:1, /dev/sda 8:0.
    let mem_dev = mknod("mem", libc::S_IFCHR | 0o600, (1 << 8) | 1);
    assert_eq!(errno(&mem_dev), libc::EPERM);
    let disk = mknod("sda", libc::S_IFBLK | 0o600, 8 << 8);
    assert_eq!(errno(&disk), libc::EPERM);
    assert!(!dir.as_path().join("mem").exists() && !dir.as_path().join("sda").exists());
    let fifo = mknod("pipe", libc::S_IFIFO | 0o644, 0);
    assert_eq!(fifo.header.error, 0);
    use std::os::unix::fs::FileTypeExt;
    assert!(fs::metadata(dir.as_path().join("pipe")).unwrap().file_type().is_fifo());
}

/// The fuzz target's input (fuzz/artifacts-found/virtio_fs_request/oom-getxattr-size): a
/// GETXATTR whose size, 0x9d9d9d9d, had the passthrough fs allocate 2.5 GiB. Sizes are cut to
/// the kernel's own limit, and the replies are what the kernel would give for that limit.
#[test]
fn xattr_sizes_past_the_kernel_limit_are_cut_to_it() {
    assert_eq!(super::shared_dir::xattr_size(0), 0);
    assert_eq!(super::shared_dir::xattr_size(100), 100);
    assert_eq!(super::shared_dir::xattr_size(0x9d9d_9d9d), 64 * 1024);
    assert_eq!(super::shared_dir::xattr_size(u32::MAX), 64 * 1024);

    let dir = shared_dir();
    let mem = memory();
    let mut guest = Guest::new(&mem, dir.as_path(), true);
    init(&mut guest);
    let nodeid = lookup(&mut guest, ROOT_ID, "hello.txt").body::<EntryOut>().nodeid;
    for size in [0x9d9d_9d9d, u32::MAX] {
        let getxattr_in = GetxattrIn { size, padding: 0 };
        let arg = name("user.none");
        let reply = guest.call(Opcode::Getxattr, nodeid, &[getxattr_in.as_slice(), &arg], REPLY_LEN);
        // No such attribute, or none at all on the test's file system.
        assert!([libc::ENODATA, libc::EOPNOTSUPP].contains(&errno(&reply)), "getxattr: {:?}", reply.header);
        let reply = guest.call(Opcode::Listxattr, nodeid, &[getxattr_in.as_slice()], REPLY_LEN);
        assert!([0, libc::EOPNOTSUPP].contains(&errno(&reply)), "listxattr: {:?}", reply.header);
    }
}

#[test]
fn a_reads_flags_never_reach_the_handles_fd() {
    // The fuzz target's find: a READ whose flags differ from the open's made the passthrough fs
    // F_SETFL the handle's fd, and on failure close it (a double close at release).
    let dir = shared_dir();
    let mem = memory();
    let mut guest = Guest::new(&mem, dir.as_path(), false);
    init(&mut guest);
    let nodeid = lookup(&mut guest, ROOT_ID, "hello.txt").body::<EntryOut>().nodeid;
    assert_eq!(errno(&open(&mut guest, nodeid, libc::O_RDONLY | libc::O_PATH)), libc::EINVAL);
    let reply = open(&mut guest, nodeid, libc::O_RDONLY);
    assert_eq!(reply.header.error, 0);
    let fh = reply.body::<OpenOut>().fh;
    for flags in
        [libc::O_RDONLY | libc::O_PATH, libc::O_RDONLY | libc::O_NONBLOCK | libc::O_APPEND, libc::O_RDONLY]
    {
        let read_in = ReadIn { fh, offset: 0, size: READ_SIZE, flags: flags as u32, ..Default::default() };
        let reply = guest.call(Opcode::Read, nodeid, &[read_in.as_slice()], REPLY_LEN);
        assert_eq!((reply.header.error, reply.payload.as_slice()), (0, HELLO), "read with flags {flags:#x}");
    }
    let release_in = ReleaseIn { fh, ..Default::default() };
    assert_eq!(guest.call(Opcode::Release, nodeid, &[release_in.as_slice()], REPLY_LEN).header.error, 0);
}
