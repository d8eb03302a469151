//! The virtio-vsock packet: a 44-byte little-endian header, then `len` bytes of payload
//! (virtio 1.2, 5.10.6).
//!
//! Packets are read from and written to descriptor chains through virtio-queue's
//! [`Reader`]/[`Writer`], which follow the chain however the driver split it (Linux 6.1 puts
//! the header and the payload in separate descriptors; later kernels may use one).

use std::io::{self, Read, Write};

use virtio_queue::{Reader, Writer};

/// The host's context id: every guest reaches the host at CID 2.
pub const HOST_CID: u64 = 2;
/// The only socket type this device serves (no VIRTIO_VSOCK_F_SEQPACKET).
pub const TYPE_STREAM: u16 = 1;
pub const HEADER_SIZE: usize = 44;
/// The largest payload of one packet, Linux's VIRTIO_VSOCK_MAX_PKT_BUF_SIZE.
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// Packet operations.
pub mod op {
    pub const REQUEST: u16 = 1;
    pub const RESPONSE: u16 = 2;
    pub const RST: u16 = 3;
    pub const SHUTDOWN: u16 = 4;
    pub const RW: u16 = 5;
    pub const CREDIT_UPDATE: u16 = 6;
    pub const CREDIT_REQUEST: u16 = 7;
}

/// OP_SHUTDOWN flags: the sender will receive no more data / send no more data.
pub const SHUTDOWN_RCV: u32 = 1;
pub const SHUTDOWN_SEND: u32 = 2;

/// `struct virtio_vsock_hdr`, decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub src_cid: u64,
    pub dst_cid: u64,
    pub src_port: u32,
    pub dst_port: u32,
    /// Payload length.
    pub len: u32,
    pub type_: u16,
    pub op: u16,
    pub flags: u32,
    /// The sender's receive buffer size, and how many bytes of it its reader consumed: the
    /// receiver may have `buf_alloc - (sent - fwd_cnt)` bytes in flight to the sender.
    pub buf_alloc: u32,
    pub fwd_cnt: u32,
}

impl Header {
    pub fn decode(b: &[u8; HEADER_SIZE]) -> Header {
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| u64::from(u32_at(i)) | u64::from(u32_at(i + 4)) << 32;
        Header {
            src_cid: u64_at(0),
            dst_cid: u64_at(8),
            src_port: u32_at(16),
            dst_port: u32_at(20),
            len: u32_at(24),
            type_: u16_at(28),
            op: u16_at(30),
            flags: u32_at(32),
            buf_alloc: u32_at(36),
            fwd_cnt: u32_at(40),
        }
    }

    pub fn encode(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0u8; HEADER_SIZE];
        b[0..8].copy_from_slice(&self.src_cid.to_le_bytes());
        b[8..16].copy_from_slice(&self.dst_cid.to_le_bytes());
        b[16..20].copy_from_slice(&self.src_port.to_le_bytes());
        b[20..24].copy_from_slice(&self.dst_port.to_le_bytes());
        b[24..28].copy_from_slice(&self.len.to_le_bytes());
        b[28..30].copy_from_slice(&self.type_.to_le_bytes());
        b[30..32].copy_from_slice(&self.op.to_le_bytes());
        b[32..36].copy_from_slice(&self.flags.to_le_bytes());
        b[36..40].copy_from_slice(&self.buf_alloc.to_le_bytes());
        b[40..44].copy_from_slice(&self.fwd_cnt.to_le_bytes());
        b
    }
}

/// Why a packet from the tx queue was not usable.
#[derive(Debug, thiserror::Error)]
pub enum PacketError {
    #[error("the descriptor chain holds {0} bytes, less than a vsock header")]
    NoHeader(usize),
    #[error("payload of {0} bytes is over the {MAX_PAYLOAD}-byte limit")]
    PayloadTooLong(u32),
    #[error("the header announces {announced} payload bytes but the chain holds {available}")]
    PayloadTruncated { announced: u32, available: usize },
    #[error("reading the packet from guest memory: {0}")]
    Memory(#[source] io::Error),
}

/// Reads the header of a packet the driver put on the tx queue.
pub fn read_header(reader: &mut Reader<'_>) -> Result<Header, PacketError> {
    let available = reader.available_bytes();
    if available < HEADER_SIZE {
        return Err(PacketError::NoHeader(available));
    }
    let mut bytes = [0u8; HEADER_SIZE];
    reader.read_exact(&mut bytes).map_err(PacketError::Memory)?;
    Ok(Header::decode(&bytes))
}

/// Reads the payload that follows the header into `buf` (resized to fit) and returns it.
pub fn read_payload<'b>(
    reader: &mut Reader<'_>,
    header: &Header,
    buf: &'b mut Vec<u8>,
) -> Result<&'b [u8], PacketError> {
    let len = header.len as usize;
    if len > MAX_PAYLOAD {
        return Err(PacketError::PayloadTooLong(header.len));
    }
    let available = reader.available_bytes();
    if available < len {
        return Err(PacketError::PayloadTruncated { announced: header.len, available });
    }
    buf.resize(len, 0);
    reader.read_exact(buf).map_err(PacketError::Memory)?;
    Ok(buf)
}

/// Writes a packet into an rx descriptor chain; returns the bytes written (the used length).
pub fn write_packet(writer: &mut Writer<'_>, header: &Header, payload: &[u8]) -> io::Result<u32> {
    writer.write_all(&header.encode())?;
    writer.write_all(payload)?;
    Ok((HEADER_SIZE + payload.len()) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_matches_virtio_vsock_hdr() {
        let h = Header {
            src_cid: 0x0102_0304_0506_0708,
            dst_cid: 2,
            src_port: 0x1122_3344,
            dst_port: 1234,
            len: 5,
            type_: TYPE_STREAM,
            op: op::RW,
            flags: SHUTDOWN_SEND,
            buf_alloc: 0x4_0000,
            fwd_cnt: 77,
        };
        let b = h.encode();
        assert_eq!(&b[0..8], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(&b[16..20], &[0x44, 0x33, 0x22, 0x11]);
        assert_eq!(&b[28..32], &[1, 0, 5, 0]);
        assert_eq!(&b[36..40], &[0, 0, 4, 0]);
        assert_eq!(Header::decode(&b), h);
    }
}
