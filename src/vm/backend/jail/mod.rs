//! The VMM's jail, the way Firecracker's jailer shapes it, entered once /dev/kvm, the kernel
//! and the shares are open (the VM is built) and before any thread of the VMM runs:
//!
//! - [`root`]: a root of its own, in the VMM's mount namespace, holding only what it still
//!   opens: the shares it serves, the socket the agent's connection reaches and the exec fifo;
//! - [`caps`]: the capabilities serving files needs, no more, and no_new_privs;
//! - [`seccomp`]: a seccomp filter per kind of thread, each installed by the thread itself
//!   before it does anything the guest drives (a vcpu before its first KVM_RUN).
//!
//! The workload's own seccomp profile, capabilities, user and rlimits apply in the guest.

pub mod caps;
pub mod root;
pub mod seccomp;
