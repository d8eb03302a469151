//! virtio-fs. (virtio-fs work.)
