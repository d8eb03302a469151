//! x86_64: the memory map, the boot protocols and the vcpu state a Linux guest expects.

pub mod boot;
pub mod boot_params;
pub mod cpuid;
pub mod layout;
pub mod mptable;
pub mod msrs;
pub mod regs;
