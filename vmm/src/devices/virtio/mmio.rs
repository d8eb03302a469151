//! virtio-mmio transport. (virtio transport work.)
