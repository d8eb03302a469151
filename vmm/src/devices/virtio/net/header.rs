//! The virtio-net header (virtio 1.2, 5.1.6) and the features hull's device offers.

use virtio_bindings::bindings::virtio_net as vn;
use virtio_bindings::bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX;

use crate::devices::virtio::FEATURE_VERSION_1;

/// `struct virtio_net_hdr_v1`: every frame on either queue starts with it. With VERSION_1 it
/// is always 12 bytes, `num_buffers` included, merged rx buffers or not; a tap opened with
/// IFF_VNET_HDR and a header size of 12 reads and writes the same layout.
pub const HEADER_SIZE: usize = 12;
/// Where `num_buffers` (le16) is in it: how many rx chains one frame took.
pub const NUM_BUFFERS_OFFSET: usize = 10;
/// The largest frame either way, header included: a 64 KiB GSO packet behind an Ethernet
/// header with a VLAN tag.
pub const MAX_FRAME: usize = HEADER_SIZE + 65535 + 18;

const fn bit(b: u32) -> u64 {
    1 << b
}

/// What the device offers: the MAC and link status in the config space (the MTU too when one
/// is set), merged rx buffers, checksum and TSO offloads both ways (a bulk TCP stream then
/// crosses as 64 KiB segments, not a frame at a time), and EVENT_IDX.
pub const OFFERED: u64 = FEATURE_VERSION_1
    | bit(vn::VIRTIO_NET_F_MAC)
    | bit(vn::VIRTIO_NET_F_STATUS)
    | bit(vn::VIRTIO_NET_F_MRG_RXBUF)
    | bit(vn::VIRTIO_NET_F_CSUM)
    | bit(vn::VIRTIO_NET_F_GUEST_CSUM)
    | bit(vn::VIRTIO_NET_F_GUEST_TSO4)
    | bit(vn::VIRTIO_NET_F_GUEST_TSO6)
    | bit(vn::VIRTIO_NET_F_GUEST_ECN)
    | bit(vn::VIRTIO_NET_F_HOST_TSO4)
    | bit(vn::VIRTIO_NET_F_HOST_TSO6)
    | bit(vn::VIRTIO_NET_F_HOST_ECN)
    | bit(VIRTIO_RING_F_EVENT_IDX);
/// Offered when the device has an MTU to give.
pub const MTU: u64 = bit(vn::VIRTIO_NET_F_MTU);
pub const MRG_RXBUF: u64 = bit(vn::VIRTIO_NET_F_MRG_RXBUF);
pub const EVENT_IDX: u64 = bit(VIRTIO_RING_F_EVENT_IDX);
/// `status` in the config space.
pub const LINK_UP: u16 = vn::VIRTIO_NET_S_LINK_UP as u16;

/// The receive offloads (TUN_F_*) the host end may use towards a driver that accepted
/// `features`: a partial checksum or a segment larger than the MTU reaches only a guest that
/// said it takes one (the spec makes TSO depend on GUEST_CSUM, and ECN on TSO).
pub fn tap_offloads(features: u64) -> u32 {
    let has = |b: u32| features & bit(b) != 0;
    if !has(vn::VIRTIO_NET_F_GUEST_CSUM) {
        return 0;
    }
    let mut flags = libc::TUN_F_CSUM;
    if has(vn::VIRTIO_NET_F_GUEST_TSO4) {
        flags |= libc::TUN_F_TSO4;
    }
    if has(vn::VIRTIO_NET_F_GUEST_TSO6) {
        flags |= libc::TUN_F_TSO6;
    }
    if has(vn::VIRTIO_NET_F_GUEST_ECN) && flags & (libc::TUN_F_TSO4 | libc::TUN_F_TSO6) != 0 {
        flags |= libc::TUN_F_TSO_ECN;
    }
    flags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offloads_follow_what_the_driver_accepted() {
        assert_eq!(tap_offloads(0), 0);
        // TSO without the checksum offload it depends on: nothing.
        assert_eq!(tap_offloads(bit(vn::VIRTIO_NET_F_GUEST_TSO4)), 0);
        let csum = bit(vn::VIRTIO_NET_F_GUEST_CSUM);
        assert_eq!(tap_offloads(csum), libc::TUN_F_CSUM);
        assert_eq!(
            tap_offloads(csum | bit(vn::VIRTIO_NET_F_GUEST_TSO4) | bit(vn::VIRTIO_NET_F_GUEST_ECN)),
            libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO_ECN
        );
        // ECN alone is no segmentation.
        assert_eq!(tap_offloads(csum | bit(vn::VIRTIO_NET_F_GUEST_ECN)), libc::TUN_F_CSUM);
        assert_eq!(
            tap_offloads(OFFERED),
            libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6 | libc::TUN_F_TSO_ECN
        );
    }

    #[test]
    fn the_header_is_the_v1_one() {
        assert_eq!(
            HEADER_SIZE,
            std::mem::size_of::<virtio_bindings::bindings::virtio_net::virtio_net_hdr_v1>()
        );
    }
}
