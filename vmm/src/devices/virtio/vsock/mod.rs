//! virtio-vsock. (vsock work.)
