//! The file system behind the FUSE server: fuse-backend-rs's passthrough fs over the shared
//! directory, plus the read-only policy, which the passthrough fs does not have.
//!
//! Read-only is enforced here, on the host, for every request that could change the directory:
//! mount options in the guest are only a hint to a guest kernel that is not trusted. Mutating
//! operations answer EROFS before they reach the passthrough fs; opens are refused unless they
//! are read-only and do not truncate, so no host fd that can write is ever opened. Operations the
//! passthrough fs does not implement keep the trait's ENOSYS default (DAX mappings, locks, ioctl),
//! which the guest kernel handles locally or refuses.
//!
//! Either way, only regular files are opened through FUSE_OPEN: the guest kernel handles device
//! nodes, fifos and sockets on a FUSE mount itself. And no device node is made on the host
//! (MKNOD of a character or block device answers EPERM): fifos and sockets only.

use std::collections::HashMap;
use std::ffi::CStr;
use std::io;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use fuse_backend_rs::abi::fuse_abi::CreateIn;
use fuse_backend_rs::api::filesystem::{
    Context, DirEntry, Entry, FileSystem, FsOptions, GetxattrReply, ListxattrReply, OpenOptions,
    SetattrValid, ZeroCopyReader, ZeroCopyWriter,
};
use fuse_backend_rs::passthrough::{CachePolicy, Config, PassthroughFs};

use super::Error;

type Inode = <PassthroughFs as FileSystem>::Inode;
type Handle = <PassthroughFs as FileSystem>::Handle;

/// The guest keeps file data cached across opens (FOPEN_KEEP_CACHE) and directory pages
/// (FOPEN_CACHE_DIR). Right for a container rootfs, which only the guest changes while the VM
/// runs; a host-side change made meanwhile may stay invisible to the guest until the file's
/// pages are evicted. Writes still go straight through (no writeback cache), so what the guest
/// writes is on the host as soon as its write returns.
const CACHE_POLICY: CachePolicy = CachePolicy::Always;
/// How long the guest trusts a name lookup and an inode's attributes before asking again.
const ENTRY_TIMEOUT: Duration = Duration::from_secs(5);
const ATTR_TIMEOUT: Duration = Duration::from_secs(5);

/// Init options added to the passthrough fs's own: requests of up to 1 MiB (max_pages 256)
/// instead of 4 KiB writes. The server sizes max_write and max_pages from them.
const EXTRA_INIT_OPTIONS: FsOptions = FsOptions::BIG_WRITES.union(FsOptions::MAX_PAGES);

/// Linux's XATTR_SIZE_MAX and XATTR_LIST_MAX: no xattr value or name list is longer, and the
/// kernel's getxattr(2) and listxattr(2) cut a larger size to this. The guest's GETXATTR and
/// LISTXATTR sizes are cut the same way: the passthrough fs allocates a buffer of the size asked
/// for, up to 4 GiB a request otherwise (found by fuzz/'s virtio_fs_request target).
const XATTR_MAX: u32 = 64 * 1024;

/// The buffer size to ask the host for when the guest asked for `size` (0: "how long is it?").
pub(super) fn xattr_size(size: u32) -> u32 {
    size.min(XATTR_MAX)
}

/// The process umask at 0 for as long as this lives, then back to what it was.
///
/// The passthrough fs applies the guest's umask itself, so it needs the process umask at 0
/// while it creates files, and its import (at construction, FUSE_INIT and FUSE_DESTROY) sets it
/// to 0 for good. The umask is process-wide: clearing it only around those calls keeps it for
/// everything else the VMM creates (its unix sockets, say). Requests are served on the event
/// loop thread alone, and the vcpu threads create no files, so nothing else sees the 0.
struct UmaskCleared {
    saved: libc::mode_t,
}

impl UmaskCleared {
    fn new() -> Self {
        // SAFETY: umask only sets the process's file creation mask; it cannot fail.
        let saved = unsafe { libc::umask(0) };
        UmaskCleared { saved }
    }
}

impl Drop for UmaskCleared {
    fn drop(&mut self) {
        // SAFETY: as in `new`.
        unsafe { libc::umask(self.saved) };
    }
}

/// The shared directory as the FUSE server sees it.
pub(super) struct SharedDir {
    inner: PassthroughFs,
    read_only: bool,
    /// Each open handle's flags, as opened. A READ or WRITE carries the guest's flags of the
    /// moment; the passthrough fs applies different ones with F_SETFL, and when that fails (an
    /// O_PATH fd, O_DIRECT where unsupported, clearing O_APPEND on an append-only file) it
    /// returns early and closes the handle's fd, which is closed again when the handle is
    /// released: a guest could make the VMM close whatever fd has that number by then (found
    /// by fuzz/ virtio_fs_request). So reads and writes go through with the flags the handle
    /// was opened with, and the F_SETFL never happens; the guest kernel sizes and places each
    /// request itself (O_APPEND's offset included), so nothing is lost.
    open_flags: Mutex<HashMap<Handle, u32>>,
}

impl SharedDir {
    /// Opens the passthrough fs on `root`, an absolute path naming a directory with no symlink
    /// in its last component (the caller canonicalizes it).
    pub(super) fn open(root: &Path, read_only: bool) -> Result<Self, Error> {
        let root_dir = root
            .to_str()
            .filter(|s| !s.contains('\0'))
            .ok_or_else(|| Error::DirName(root.to_path_buf()))?
            .to_string();
        let cfg = Config {
            root_dir,
            // Open the root now (so a bad directory fails here) and again at each FUSE_INIT.
            do_import: true,
            // File capabilities and overlayfs in the guest need xattrs. The cost: the guest
            // kernel may ask for security.capability before each write.
            xattr: true,
            writeback: false,
            cache_policy: CACHE_POLICY,
            entry_timeout: ENTRY_TIMEOUT,
            attr_timeout: ATTR_TIMEOUT,
            no_open: false,
            no_opendir: false,
            ..Config::default()
        };
        let passthrough = |source| Error::Passthrough { path: root.to_path_buf(), source };
        // Opens /proc/self/fd and /proc/self/mountinfo; keeps both open.
        let inner = PassthroughFs::new(cfg).map_err(passthrough)?;
        let _umask = UmaskCleared::new();
        inner.import().map_err(passthrough)?;
        Ok(SharedDir { inner, read_only, open_flags: Mutex::new(HashMap::new()) })
    }

    fn refuse_if_read_only(&self) -> io::Result<()> {
        if self.read_only {
            Err(io::Error::from_raw_os_error(libc::EROFS))
        } else {
            Ok(())
        }
    }

    /// An open that could write or truncate is refused on a read-only share; O_PATH, which the
    /// guest kernel never sends (it resolves such opens itself), is refused everywhere.
    fn check_open_flags(&self, flags: u32) -> io::Result<()> {
        let flags = flags as i32;
        if flags & libc::O_PATH != 0 {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        if flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0 {
            self.refuse_if_read_only()?;
        }
        Ok(())
    }

    fn opened(&self, handle: Option<Handle>, flags: u32) {
        if let Some(h) = handle {
            self.open_flags.lock().unwrap_or_else(|e| e.into_inner()).insert(h, flags);
        }
    }

    /// The flags `handle` was opened with, or the request's for a handle not known here (the
    /// passthrough fs then refuses it before looking at flags).
    fn flags_of(&self, handle: Handle, requested: u32) -> u32 {
        self.open_flags.lock().unwrap_or_else(|e| e.into_inner()).get(&handle).copied().unwrap_or(requested)
    }
}

impl FileSystem for SharedDir {
    type Inode = Inode;
    type Handle = Handle;

    fn init(&self, capable: FsOptions) -> io::Result<FsOptions> {
        let _umask = UmaskCleared::new();
        Ok(self.inner.init(capable)? | EXTRA_INIT_OPTIONS)
    }

    fn destroy(&self) {
        let _umask = UmaskCleared::new();
        self.inner.destroy()
    }

    fn lookup(&self, ctx: &Context, parent: Inode, name: &CStr) -> io::Result<Entry> {
        self.inner.lookup(ctx, parent, name)
    }

    fn forget(&self, ctx: &Context, inode: Inode, count: u64) {
        self.inner.forget(ctx, inode, count)
    }

    fn batch_forget(&self, ctx: &Context, requests: Vec<(Inode, u64)>) {
        self.inner.batch_forget(ctx, requests)
    }

    fn getattr(
        &self,
        ctx: &Context,
        inode: Inode,
        handle: Option<Handle>,
    ) -> io::Result<(libc::stat64, Duration)> {
        self.inner.getattr(ctx, inode, handle)
    }

    fn setattr(
        &self,
        ctx: &Context,
        inode: Inode,
        attr: libc::stat64,
        handle: Option<Handle>,
        valid: SetattrValid,
    ) -> io::Result<(libc::stat64, Duration)> {
        self.refuse_if_read_only()?;
        self.inner.setattr(ctx, inode, attr, handle, valid)
    }

    fn readlink(&self, ctx: &Context, inode: Inode) -> io::Result<Vec<u8>> {
        self.inner.readlink(ctx, inode)
    }

    fn symlink(&self, ctx: &Context, linkname: &CStr, parent: Inode, name: &CStr) -> io::Result<Entry> {
        self.refuse_if_read_only()?;
        self.inner.symlink(ctx, linkname, parent, name)
    }

    fn mknod(
        &self,
        ctx: &Context,
        parent: Inode,
        name: &CStr,
        mode: u32,
        rdev: u32,
        umask: u32,
    ) -> io::Result<Entry> {
        self.refuse_if_read_only()?;
        // A device node made on the host from the guest would be the host's device for any
        // host process (or native container) that later opens it: fifos and sockets only.
        let kind = mode & libc::S_IFMT;
        if kind == libc::S_IFCHR || kind == libc::S_IFBLK {
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }
        let _umask = UmaskCleared::new();
        self.inner.mknod(ctx, parent, name, mode, rdev, umask)
    }

    fn mkdir(&self, ctx: &Context, parent: Inode, name: &CStr, mode: u32, umask: u32) -> io::Result<Entry> {
        self.refuse_if_read_only()?;
        let _umask = UmaskCleared::new();
        self.inner.mkdir(ctx, parent, name, mode, umask)
    }

    fn unlink(&self, ctx: &Context, parent: Inode, name: &CStr) -> io::Result<()> {
        self.refuse_if_read_only()?;
        self.inner.unlink(ctx, parent, name)
    }

    fn rmdir(&self, ctx: &Context, parent: Inode, name: &CStr) -> io::Result<()> {
        self.refuse_if_read_only()?;
        self.inner.rmdir(ctx, parent, name)
    }

    fn rename(
        &self,
        ctx: &Context,
        olddir: Inode,
        oldname: &CStr,
        newdir: Inode,
        newname: &CStr,
        flags: u32,
    ) -> io::Result<()> {
        self.refuse_if_read_only()?;
        self.inner.rename(ctx, olddir, oldname, newdir, newname, flags)
    }

    fn link(&self, ctx: &Context, inode: Inode, newparent: Inode, newname: &CStr) -> io::Result<Entry> {
        self.refuse_if_read_only()?;
        self.inner.link(ctx, inode, newparent, newname)
    }

    fn open(
        &self,
        ctx: &Context,
        inode: Inode,
        flags: u32,
        fuse_flags: u32,
    ) -> io::Result<(Option<Handle>, OpenOptions, Option<u32>)> {
        self.check_open_flags(flags)?;
        // The guest kernel opens device nodes, fifos and sockets on a FUSE mount itself and never
        // asks the server to: a request to is a guest trying to reach the host's devices or to
        // block the event loop on a fifo.
        let (st, _) = self.inner.getattr(ctx, inode, None)?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(io::Error::from_raw_os_error(libc::EACCES));
        }
        let opened = self.inner.open(ctx, inode, flags, fuse_flags)?;
        self.opened(opened.0, flags);
        Ok(opened)
    }

    fn create(
        &self,
        ctx: &Context,
        parent: Inode,
        name: &CStr,
        args: CreateIn,
    ) -> io::Result<(Entry, Option<Handle>, OpenOptions, Option<u32>)> {
        self.refuse_if_read_only()?;
        self.check_open_flags(args.flags)?;
        let flags = args.flags;
        let _umask = UmaskCleared::new();
        let created = self.inner.create(ctx, parent, name, args)?;
        self.opened(created.1, flags);
        Ok(created)
    }

    #[allow(clippy::too_many_arguments)]
    fn read(
        &self,
        ctx: &Context,
        inode: Inode,
        handle: Handle,
        w: &mut dyn ZeroCopyWriter,
        size: u32,
        offset: u64,
        lock_owner: Option<u64>,
        flags: u32,
    ) -> io::Result<usize> {
        self.inner.read(ctx, inode, handle, w, size, offset, lock_owner, self.flags_of(handle, flags))
    }

    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        ctx: &Context,
        inode: Inode,
        handle: Handle,
        r: &mut dyn ZeroCopyReader,
        size: u32,
        offset: u64,
        lock_owner: Option<u64>,
        delayed_write: bool,
        flags: u32,
        fuse_flags: u32,
    ) -> io::Result<usize> {
        // Unreachable through a read-only open, refused anyway.
        self.refuse_if_read_only()?;
        let flags = self.flags_of(handle, flags);
        self.inner.write(ctx, inode, handle, r, size, offset, lock_owner, delayed_write, flags, fuse_flags)
    }

    fn flush(&self, ctx: &Context, inode: Inode, handle: Handle, lock_owner: u64) -> io::Result<()> {
        self.inner.flush(ctx, inode, handle, lock_owner)
    }

    fn fsync(&self, ctx: &Context, inode: Inode, datasync: bool, handle: Handle) -> io::Result<()> {
        self.inner.fsync(ctx, inode, datasync, handle)
    }

    fn fallocate(
        &self,
        ctx: &Context,
        inode: Inode,
        handle: Handle,
        mode: u32,
        offset: u64,
        length: u64,
    ) -> io::Result<()> {
        self.refuse_if_read_only()?;
        self.inner.fallocate(ctx, inode, handle, mode, offset, length)
    }

    #[allow(clippy::too_many_arguments)]
    fn release(
        &self,
        ctx: &Context,
        inode: Inode,
        flags: u32,
        handle: Handle,
        flush: bool,
        flock_release: bool,
        lock_owner: Option<u64>,
    ) -> io::Result<()> {
        self.open_flags.lock().unwrap_or_else(|e| e.into_inner()).remove(&handle);
        self.inner.release(ctx, inode, flags, handle, flush, flock_release, lock_owner)
    }

    fn statfs(&self, ctx: &Context, inode: Inode) -> io::Result<libc::statvfs64> {
        self.inner.statfs(ctx, inode)
    }

    fn setxattr(&self, ctx: &Context, inode: Inode, name: &CStr, value: &[u8], flags: u32) -> io::Result<()> {
        self.refuse_if_read_only()?;
        self.inner.setxattr(ctx, inode, name, value, flags)
    }

    fn getxattr(&self, ctx: &Context, inode: Inode, name: &CStr, size: u32) -> io::Result<GetxattrReply> {
        self.inner.getxattr(ctx, inode, name, xattr_size(size))
    }

    fn listxattr(&self, ctx: &Context, inode: Inode, size: u32) -> io::Result<ListxattrReply> {
        self.inner.listxattr(ctx, inode, xattr_size(size))
    }

    fn removexattr(&self, ctx: &Context, inode: Inode, name: &CStr) -> io::Result<()> {
        self.refuse_if_read_only()?;
        self.inner.removexattr(ctx, inode, name)
    }

    fn opendir(&self, ctx: &Context, inode: Inode, flags: u32) -> io::Result<(Option<Handle>, OpenOptions)> {
        self.inner.opendir(ctx, inode, flags)
    }

    fn readdir(
        &self,
        ctx: &Context,
        inode: Inode,
        handle: Handle,
        size: u32,
        offset: u64,
        add_entry: &mut dyn FnMut(DirEntry) -> io::Result<usize>,
    ) -> io::Result<()> {
        self.inner.readdir(ctx, inode, handle, size, offset, add_entry)
    }

    fn readdirplus(
        &self,
        ctx: &Context,
        inode: Inode,
        handle: Handle,
        size: u32,
        offset: u64,
        add_entry: &mut dyn FnMut(DirEntry, Entry) -> io::Result<usize>,
    ) -> io::Result<()> {
        self.inner.readdirplus(ctx, inode, handle, size, offset, add_entry)
    }

    fn fsyncdir(&self, ctx: &Context, inode: Inode, datasync: bool, handle: Handle) -> io::Result<()> {
        self.inner.fsyncdir(ctx, inode, datasync, handle)
    }

    fn releasedir(&self, ctx: &Context, inode: Inode, flags: u32, handle: Handle) -> io::Result<()> {
        self.inner.releasedir(ctx, inode, flags, handle)
    }

    fn access(&self, ctx: &Context, inode: Inode, mask: u32) -> io::Result<()> {
        if mask & libc::W_OK as u32 != 0 {
            self.refuse_if_read_only()?;
        }
        self.inner.access(ctx, inode, mask)
    }

    fn lseek(
        &self,
        ctx: &Context,
        inode: Inode,
        handle: Handle,
        offset: u64,
        whence: u32,
    ) -> io::Result<u64> {
        self.inner.lseek(ctx, inode, handle, offset, whence)
    }
}
