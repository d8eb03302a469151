//! One FUSE request: a descriptor chain whose readable part holds the request and whose
//! writable part receives the reply (virtio 1.2, 5.11.6).
//!
//! Whatever the chain holds, it is completed: when the server cannot decode a request it writes
//! no reply of its own, and the guest would take the untouched reply buffer for a success; so a
//! reply with an error is written in its place. A chain whose buffers are not in guest memory
//! is returned with nothing written.

use std::mem::size_of;

use fuse_backend_rs::abi::fuse_abi::{InHeader, Opcode, OutHeader};
use fuse_backend_rs::api::filesystem::FileSystem;
use fuse_backend_rs::api::server::Server;
use fuse_backend_rs::transport::{Reader, VirtioFsWriter, Writer};
use virtio_queue::DescriptorChain;
use vm_memory::{ByteValued, Bytes};

use crate::memory::GuestMemoryMmap;

const OUT_HEADER_LEN: usize = size_of::<OutHeader>();

/// Serves the request in `chain` and returns the number of bytes written into it (the used
/// length).
pub(super) fn serve<F: FileSystem + Sync>(
    server: &Server<F>,
    mem: &GuestMemoryMmap,
    chain: DescriptorChain<&GuestMemoryMmap>,
) -> u32 {
    // Kept to reread the request or rewrite the reply when the server fails.
    let again = chain.clone();
    let Ok(reader) = Reader::from_descriptor_chain(mem, chain.clone()) else {
        return 0;
    };
    let Ok(writer) = VirtioFsWriter::new(mem, chain) else {
        return 0;
    };
    match server.handle_message(reader, Writer::from(writer), None, None) {
        Ok(0) => no_reply_len(mem, again),
        Ok(written) => u32::try_from(written).unwrap_or(u32::MAX),
        Err(err) => reply_failure(mem, again, &err),
    }
}

/// The server returns 0 for the requests that get no reply (FORGET, BATCH_FORGET, INTERRUPT)
/// and also for DESTROY, whose reply it did write: a bare header.
fn no_reply_len(mem: &GuestMemoryMmap, chain: DescriptorChain<&GuestMemoryMmap>) -> u32 {
    match in_header(mem, chain.clone()) {
        Some(header) if header.opcode == Opcode::Destroy as u32 && writable_len(chain) >= OUT_HEADER_LEN => {
            OUT_HEADER_LEN as u32
        }
        _ => 0,
    }
}

/// The server failed: keep the error reply it wrote, if any, or write one.
fn reply_failure(
    mem: &GuestMemoryMmap,
    chain: DescriptorChain<&GuestMemoryMmap>,
    err: &fuse_backend_rs::Error,
) -> u32 {
    let header = in_header(mem, chain.clone());
    let opcode = header.map(|h| h.opcode);
    // FORGETs get no reply, whatever went wrong: the driver gave no buffer for one.
    if opcode == Some(Opcode::Forget as u32) || opcode == Some(Opcode::BatchForget as u32) {
        return 0;
    }
    let unique = header.map_or(0, |h| h.unique);
    if let Some(written) = written_header(mem, chain.clone()) {
        if written.unique == unique && written.error < 0 && written.len as usize == OUT_HEADER_LEN {
            return OUT_HEADER_LEN as u32;
        }
    }
    let reply = OutHeader { len: OUT_HEADER_LEN as u32, error: -errno_for(err), unique };
    let Ok(mut writer) = VirtioFsWriter::new(mem, chain) else {
        return 0;
    };
    match std::io::Write::write_all(&mut writer, reply.as_slice()) {
        Ok(()) => OUT_HEADER_LEN as u32,
        // No room for even a header: the guest gave no reply buffer.
        Err(_) => 0,
    }
}

/// EINVAL for a request that does not decode, EIO for a failure to answer one.
fn errno_for(err: &fuse_backend_rs::Error) -> i32 {
    use fuse_backend_rs::Error as E;
    match err {
        E::DecodeMessage(_)
        | E::MissingParameter
        | E::InvalidCString(_)
        | E::InvalidHeaderLength
        | E::InvalidXattrSize(_)
        | E::InvalidMessage(_) => libc::EINVAL,
        _ => libc::EIO,
    }
}

fn in_header(mem: &GuestMemoryMmap, chain: DescriptorChain<&GuestMemoryMmap>) -> Option<InHeader> {
    Reader::from_descriptor_chain(mem, chain).ok()?.read_obj::<InHeader>().ok()
}

fn writable_len(chain: DescriptorChain<&GuestMemoryMmap>) -> usize {
    chain.writable().map(|d| d.len() as usize).sum()
}

/// The reply header as it stands in the writable buffers (it may span descriptors).
fn written_header(mem: &GuestMemoryMmap, chain: DescriptorChain<&GuestMemoryMmap>) -> Option<OutHeader> {
    let mut header = OutHeader::default();
    let bytes = header.as_mut_slice();
    let mut filled = 0;
    for desc in chain.writable() {
        if filled == bytes.len() {
            break;
        }
        let n = (desc.len() as usize).min(bytes.len() - filled);
        mem.read_slice(&mut bytes[filled..filled + n], desc.addr()).ok()?;
        filled += n;
    }
    (filled == bytes.len()).then_some(header)
}
