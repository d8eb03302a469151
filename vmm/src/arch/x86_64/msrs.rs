//! The MSRs a vcpu starts with: the syscall MSRs cleared, the TSC at zero, fast string
//! operations on, and MTRRs enabled with write-back as the default memory type (without it Linux
//! maps all RAM uncached).

use kvm_bindings::{kvm_msr_entry, Msrs};

const MSR_IA32_TSC: u32 = 0x10;
const MSR_IA32_SYSENTER_CS: u32 = 0x174;
const MSR_IA32_SYSENTER_ESP: u32 = 0x175;
const MSR_IA32_SYSENTER_EIP: u32 = 0x176;
const MSR_IA32_MISC_ENABLE: u32 = 0x1a0;
const MSR_MTRR_DEF_TYPE: u32 = 0x2ff;
const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_CSTAR: u32 = 0xc000_0083;
const MSR_SYSCALL_MASK: u32 = 0xc000_0084;
const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;

const MISC_ENABLE_FAST_STRING: u64 = 1;
const MTRR_ENABLE: u64 = 1 << 11;
const MTRR_TYPE_WRITE_BACK: u64 = 6;

/// (index, value) of each MSR set at boot.
pub fn boot_msr_values() -> [(u32, u64); 11] {
    [
        (MSR_IA32_SYSENTER_CS, 0),
        (MSR_IA32_SYSENTER_ESP, 0),
        (MSR_IA32_SYSENTER_EIP, 0),
        (MSR_STAR, 0),
        (MSR_CSTAR, 0),
        (MSR_KERNEL_GS_BASE, 0),
        (MSR_SYSCALL_MASK, 0),
        (MSR_LSTAR, 0),
        (MSR_IA32_TSC, 0),
        (MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING),
        (MSR_MTRR_DEF_TYPE, MTRR_ENABLE | MTRR_TYPE_WRITE_BACK),
    ]
}

/// The boot MSRs in the form KVM_SET_MSRS takes.
pub fn boot_msrs() -> Result<Msrs, String> {
    let entries: Vec<kvm_msr_entry> = boot_msr_values()
        .iter()
        .map(|&(index, data)| kvm_msr_entry { index, data, ..Default::default() })
        .collect();
    Msrs::from_entries(&entries).map_err(|e| format!("MSR list: {e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mtrrs_default_to_write_back_and_every_msr_is_listed_once() {
        let msrs = boot_msrs().unwrap();
        assert_eq!(msrs.as_slice().len(), boot_msr_values().len());
        let mtrr = msrs.as_slice().iter().find(|e| e.index == MSR_MTRR_DEF_TYPE).unwrap();
        assert_eq!(mtrr.data, 0x806);
        let mut indices: Vec<u32> = msrs.as_slice().iter().map(|e| e.index).collect();
        indices.sort();
        indices.dedup();
        assert_eq!(indices.len(), boot_msr_values().len());
    }
}
