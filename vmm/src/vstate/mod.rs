//! The KVM VM ([`vm`]) and its vcpus ([`vcpu`]): creation, boot state, and the vcpu threads.

pub mod vcpu;
pub mod vm;
