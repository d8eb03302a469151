//! The virtio-fs config space (virtio 1.2, 5.11.4): what the guest reads to find the tag.

use super::{Error, NUM_REQUEST_QUEUES, TAG_MAX_LEN};

/// `struct virtio_fs_config { u8 tag[36]; le32 num_request_queues; }`; the optional
/// `notify_buf_size` field is absent because VIRTIO_FS_F_NOTIFICATION is not offered.
const CONFIG_SPACE_LEN: usize = TAG_MAX_LEN + 4;

/// The config space bytes, laid out once: they never change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ConfigSpace {
    bytes: [u8; CONFIG_SPACE_LEN],
}

impl ConfigSpace {
    /// Checks the tag: 1 to 36 bytes of UTF-8 with no NUL (the guest reads it up to the first
    /// NUL, so a shorter one would name a different share than the host thinks).
    pub(super) fn new(tag: &str) -> Result<Self, Error> {
        let len = tag.len();
        if len == 0 || len > TAG_MAX_LEN {
            return Err(Error::TagLength { tag: tag.to_string(), len });
        }
        if tag.as_bytes().contains(&0) {
            return Err(Error::TagNul(tag.to_string()));
        }
        let mut bytes = [0u8; CONFIG_SPACE_LEN];
        bytes[..len].copy_from_slice(tag.as_bytes());
        let queues = NUM_REQUEST_QUEUES as u32;
        bytes[TAG_MAX_LEN..].copy_from_slice(&queues.to_le_bytes());
        Ok(ConfigSpace { bytes })
    }

    /// A driver read of `data.len()` bytes at `offset`; bytes past the end read as zero.
    pub(super) fn read(&self, offset: u64, data: &mut [u8]) {
        crate::devices::virtio::read_config_bytes(&self.bytes, offset, data)
    }
}
