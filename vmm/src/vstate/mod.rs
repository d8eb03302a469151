//! The KVM VM and its vcpus. (VMM core work.)
