//! CPUID for each vcpu, from what KVM supports (KVM_GET_SUPPORTED_CPUID): the vcpu's APIC id and
//! the topology (one socket, one core per vcpu, no SMT) where Linux reads them, the hypervisor
//! bit, and KVM's signature leaf so the guest uses kvm-clock and the paravirt features.

use kvm_bindings::{kvm_cpuid_entry2, CpuId};

const LEAF_FEATURES: u32 = 0x1;
const LEAF_CACHE_PARAMS: u32 = 0x4;
const LEAF_TOPOLOGY: u32 = 0xb;
const LEAF_TOPOLOGY_V2: u32 = 0x1f;
const LEAF_HYPERVISOR: u32 = 0x4000_0000;
const LEAF_EXT_FEATURES: u32 = 0x8000_0001;
const LEAF_EXT_ADDRESS_SIZES: u32 = 0x8000_0008;

const ECX_TSC_DEADLINE: u32 = 1 << 24;
const ECX_HYPERVISOR: u32 = 1 << 31;
const EDX_HTT: u32 = 1 << 28;
/// AMD's extended topology leaves (0x8000_001e): not filled in, so not offered.
const EXT_ECX_TOPOEXT: u32 = 1 << 22;

/// Topology level types in leaf 0xb/0x1f ECX[15:8].
const LEVEL_SMT: u32 = 1;
const LEVEL_CORE: u32 = 2;

/// "KVMKVMKVM\0\0\0" in EBX, ECX, EDX.
const KVM_SIGNATURE: [u32; 3] = [0x4b4d_564b, 0x564b_4d56, 0x0000_004d];

/// Adjusts KVM's supported CPUID for vcpu `id` of `vcpus`.
pub fn configure(cpuid: &mut CpuId, id: u8, vcpus: u8, tsc_deadline: bool) {
    for entry in cpuid.as_mut_slice() {
        configure_entry(entry, id, vcpus, tsc_deadline);
    }
}

fn configure_entry(entry: &mut kvm_cpuid_entry2, id: u8, vcpus: u8, tsc_deadline: bool) {
    let (apic_id, count) = (u32::from(id), u32::from(vcpus));
    match entry.function {
        LEAF_FEATURES => {
            // EBX[31:24] initial APIC id, [23:16] logical processors in the package.
            entry.ebx = (entry.ebx & 0xffff) | (apic_id << 24) | (count << 16);
            entry.ecx |= ECX_HYPERVISOR;
            if tsc_deadline {
                entry.ecx |= ECX_TSC_DEADLINE;
            }
            if vcpus > 1 {
                entry.edx |= EDX_HTT;
            } else {
                entry.edx &= !EDX_HTT;
            }
        }
        LEAF_CACHE_PARAMS => {
            // EAX[31:26] cores in the package - 1; [25:14] vcpus sharing this cache - 1: the
            // L1 and L2 are per core, the L3 (and anything beyond) shared by all.
            let level = (entry.eax >> 5) & 0x7;
            let sharing = if level >= 3 { count.saturating_sub(1) } else { 0 };
            entry.eax = (entry.eax & 0x3fff) | (count.saturating_sub(1) << 26) | (sharing << 14);
        }
        LEAF_TOPOLOGY | LEAF_TOPOLOGY_V2 => {
            // EAX: bits of the APIC id below the next level; EBX: processors at this level.
            let (shift, processors, level) = match entry.index {
                0 => (0, 1, LEVEL_SMT),
                1 => (bits_for(count), count, LEVEL_CORE),
                _ => (0, 0, 0),
            };
            entry.eax = shift;
            entry.ebx = processors;
            entry.ecx = (level << 8) | (entry.index & 0xff);
            entry.edx = apic_id;
        }
        LEAF_HYPERVISOR => {
            [entry.ebx, entry.ecx, entry.edx] = KVM_SIGNATURE;
        }
        LEAF_EXT_FEATURES => entry.ecx &= !EXT_ECX_TOPOEXT,
        LEAF_EXT_ADDRESS_SIZES => {
            // AMD: ECX[7:0] cores - 1, [15:12] APIC id bits for the core.
            entry.ecx = (entry.ecx & !0xf0ff) | (bits_for(count) << 12) | count.saturating_sub(1);
        }
        _ => {}
    }
}

/// How many low bits of an APIC id number `count` processors.
fn bits_for(count: u32) -> u32 {
    count.max(1).next_power_of_two().trailing_zeros()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(function: u32, index: u32) -> kvm_cpuid_entry2 {
        kvm_cpuid_entry2 { function, index, eax: 0, ebx: 0x0000_0800, ecx: 0, edx: 0, ..Default::default() }
    }

    #[test]
    fn leaf_1_carries_the_apic_id_and_the_hypervisor_bit() {
        let mut e = entry(LEAF_FEATURES, 0);
        configure_entry(&mut e, 3, 4, true);
        assert_eq!(e.ebx >> 24, 3);
        assert_eq!((e.ebx >> 16) & 0xff, 4);
        assert_eq!(e.ebx & 0xffff, 0x800, "CLFLUSH size kept");
        assert_ne!(e.ecx & ECX_HYPERVISOR, 0);
        assert_ne!(e.ecx & ECX_TSC_DEADLINE, 0);
        assert_ne!(e.edx & EDX_HTT, 0);
        let mut one = entry(LEAF_FEATURES, 0);
        one.edx = EDX_HTT;
        configure_entry(&mut one, 0, 1, false);
        assert_eq!(one.edx & EDX_HTT, 0);
        assert_eq!(one.ecx & ECX_TSC_DEADLINE, 0);
    }

    #[test]
    fn topology_leaf_says_one_core_per_vcpu() {
        let mut smt = entry(LEAF_TOPOLOGY, 0);
        let mut core = entry(LEAF_TOPOLOGY, 1);
        let mut end = entry(LEAF_TOPOLOGY, 2);
        for e in [&mut smt, &mut core, &mut end] {
            configure_entry(e, 2, 3, false);
        }
        assert_eq!((smt.eax, smt.ebx, smt.ecx, smt.edx), (0, 1, 0x100, 2));
        assert_eq!((core.eax, core.ebx, core.ecx, core.edx), (2, 3, 0x201, 2));
        assert_eq!((end.eax, end.ebx, end.ecx & 0xff00), (0, 0, 0));
    }

    #[test]
    fn kvm_signature_and_amd_core_count() {
        let mut hv = entry(LEAF_HYPERVISOR, 0);
        configure_entry(&mut hv, 0, 1, false);
        let sig: Vec<u8> = [hv.ebx, hv.ecx, hv.edx].iter().flat_map(|r| r.to_le_bytes()).collect();
        assert_eq!(&sig, b"KVMKVMKVM\0\0\0");
        let mut amd = entry(LEAF_EXT_ADDRESS_SIZES, 0);
        configure_entry(&mut amd, 0, 2, false);
        assert_eq!((amd.ecx & 0xff, (amd.ecx >> 12) & 0xf), (1, 1));
        let mut cache = entry(LEAF_CACHE_PARAMS, 0);
        cache.eax = (3 << 5) | 0x3;
        configure_entry(&mut cache, 0, 2, false);
        assert_eq!((cache.eax >> 26, (cache.eax >> 14) & 0xfff, cache.eax & 0x3fff), (1, 1, (3 << 5) | 3));
    }

    #[test]
    fn apic_id_bits() {
        assert_eq!([bits_for(1), bits_for(2), bits_for(3), bits_for(4), bits_for(5)], [0, 1, 2, 2, 3]);
    }
}
