//! The Intel MultiProcessor table (MP spec 1.4): how a kernel without ACPI finds the vcpus'
//! local APICs, the IOAPIC, and which IOAPIC pin each ISA IRQ is wired to.
//!
//! Layout at [`MPTABLE_START`](super::layout::MPTABLE_START): the 16-byte floating pointer, then
//! the configuration table (a header and its entries), each with a byte checksum.

use super::layout::{IOAPIC_PINS, IOAPIC_START, LAPIC_START};

const FLOATING_POINTER_LEN: usize = 16;
const HEADER_LEN: usize = 44;
const SPEC_REV: u8 = 4;
const LAPIC_VERSION: u8 = 0x14;
const IOAPIC_VERSION: u8 = 0x11;
/// A family 6 CPU with an FPU and an APIC: what the kernel expects to read in processor entries.
const CPU_SIGNATURE: u32 = 0x600;
const CPU_FEATURES: u32 = (1 << 9) | 1;

const ENTRY_PROCESSOR: u8 = 0;
const ENTRY_BUS: u8 = 1;
const ENTRY_IOAPIC: u8 = 2;
const ENTRY_IO_INTERRUPT: u8 = 3;
const ENTRY_LOCAL_INTERRUPT: u8 = 4;
const CPU_ENABLED: u8 = 1;
const CPU_BOOTSTRAP: u8 = 2;
const IOAPIC_ENABLED: u8 = 1;
const INT_VECTORED: u8 = 0;
const INT_NMI: u8 = 1;
const INT_EXTINT: u8 = 3;
const ISA_BUS_ID: u8 = 0;
const ALL_LAPICS: u8 = 0xff;

/// The MP table for `vcpus` CPUs (local APIC ids 0..vcpus, the first one boots), to be written at
/// guest address `at`. The IOAPIC takes the id after the last CPU.
pub fn mptable(vcpus: u8, at: u64) -> Vec<u8> {
    let ioapic_id = vcpus;
    let mut entries = Vec::new();
    for id in 0..vcpus {
        let flags = CPU_ENABLED | if id == 0 { CPU_BOOTSTRAP } else { 0 };
        entries.extend_from_slice(&[ENTRY_PROCESSOR, id, LAPIC_VERSION, flags]);
        entries.extend_from_slice(&CPU_SIGNATURE.to_le_bytes());
        entries.extend_from_slice(&CPU_FEATURES.to_le_bytes());
        entries.extend_from_slice(&[0; 8]);
    }
    entries.extend_from_slice(&[ENTRY_BUS, ISA_BUS_ID]);
    entries.extend_from_slice(b"ISA   ");
    entries.extend_from_slice(&[ENTRY_IOAPIC, ioapic_id, IOAPIC_VERSION, IOAPIC_ENABLED]);
    entries.extend_from_slice(&(IOAPIC_START as u32).to_le_bytes());
    // IRQ n on IOAPIC pin n, edge triggered, active high (the bus default, "conforms"): as KVM's
    // default GSI routing has it. The virtio devices' IRQs 5.. are among them.
    for irq in 0..IOAPIC_PINS as u8 {
        entries.extend_from_slice(&[ENTRY_IO_INTERRUPT, INT_VECTORED, 0, 0, ISA_BUS_ID, irq, ioapic_id, irq]);
    }
    // The legacy PIC on the boot CPU's LINT0, NMIs on every CPU's LINT1.
    entries.extend_from_slice(&[ENTRY_LOCAL_INTERRUPT, INT_EXTINT, 0, 0, ISA_BUS_ID, 0, 0, 0]);
    entries.extend_from_slice(&[ENTRY_LOCAL_INTERRUPT, INT_NMI, 0, 0, ISA_BUS_ID, 0, ALL_LAPICS, 1]);
    let entry_count = u16::from(vcpus) + 3 + IOAPIC_PINS as u16 + 2;

    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(b"PCMP");
    header.extend_from_slice(&((HEADER_LEN + entries.len()) as u16).to_le_bytes());
    header.extend_from_slice(&[SPEC_REV, 0]); // checksum below
    header.extend_from_slice(b"HULL    ");
    header.extend_from_slice(b"MICROVM     ");
    header.extend_from_slice(&[0; 6]); // no OEM table
    header.extend_from_slice(&entry_count.to_le_bytes());
    header.extend_from_slice(&(LAPIC_START as u32).to_le_bytes());
    header.extend_from_slice(&[0; 4]); // no extended table
    let mut config = header;
    config.extend_from_slice(&entries);
    config[7] = checksum(&config);

    let config_addr = (at + FLOATING_POINTER_LEN as u64) as u32;
    let mut table = Vec::with_capacity(FLOATING_POINTER_LEN + config.len());
    table.extend_from_slice(b"_MP_");
    table.extend_from_slice(&config_addr.to_le_bytes());
    table.extend_from_slice(&[1, SPEC_REV, 0, 0, 0, 0, 0, 0]); // 1 paragraph long; checksum below
    table[10] = checksum(&table);
    table.extend_from_slice(&config);
    table
}

/// The byte that makes `bytes` sum to zero.
fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |sum, b| sum.wrapping_sub(*b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(bytes: &[u8]) -> u8 {
        bytes.iter().fold(0u8, |s, b| s.wrapping_add(*b))
    }

    fn u16_at(b: &[u8], at: usize) -> u16 {
        u16::from_le_bytes([b[at], b[at + 1]])
    }

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn floating_pointer_and_config_table_check_out() {
        let table = mptable(2, 0x9fc00);
        let fp = &table[..16];
        assert_eq!(&fp[..4], b"_MP_");
        assert_eq!(u32_at(fp, 4), 0x9fc10);
        assert_eq!((fp[8], fp[9]), (1, 4));
        assert_eq!(sum(fp), 0);

        let config = &table[16..];
        assert_eq!(&config[..4], b"PCMP");
        assert_eq!(u16_at(config, 4) as usize, config.len());
        assert_eq!(sum(config), 0);
        assert_eq!(u32_at(config, 36), 0xfee0_0000);
        assert_eq!(u16_at(config, 34), 2 + 3 + 24 + 2);
        assert_eq!(config.len(), 44 + 2 * 20 + 8 + 8 + 24 * 8 + 2 * 8);
    }

    #[test]
    fn entries_describe_cpus_ioapic_and_isa_irqs() {
        let vcpus = 3;
        let table = mptable(vcpus, 0x9fc00);
        let entries = &table[16 + 44..];
        for id in 0..vcpus as usize {
            let cpu = &entries[id * 20..id * 20 + 20];
            assert_eq!((cpu[0], cpu[1]), (ENTRY_PROCESSOR, id as u8));
            assert_eq!(cpu[3], if id == 0 { 3 } else { 1 }, "cpu {id} flags");
        }
        let rest = &entries[vcpus as usize * 20..];
        assert_eq!(&rest[..8], b"\x01\x00ISA   ");
        assert_eq!(&rest[8..12], &[ENTRY_IOAPIC, vcpus, IOAPIC_VERSION, 1]);
        assert_eq!(u32_at(rest, 12), 0xfec0_0000);
        for irq in 0..24u8 {
            let e = &rest[16 + irq as usize * 8..][..8];
            assert_eq!(e, &[ENTRY_IO_INTERRUPT, INT_VECTORED, 0, 0, 0, irq, vcpus, irq]);
        }
        let local = &rest[16 + 24 * 8..];
        assert_eq!(local.len(), 16);
        assert_eq!((local[0], local[1], local[7]), (ENTRY_LOCAL_INTERRUPT, INT_EXTINT, 0));
        assert_eq!((local[8], local[9], local[14], local[15]), (ENTRY_LOCAL_INTERRUPT, INT_NMI, 0xff, 1));
    }

    #[test]
    fn a_large_table_still_checks_out() {
        let table = mptable(254, 0x9fc00);
        assert_eq!(sum(&table[..16]), 0);
        assert_eq!(sum(&table[16..]), 0);
        assert!(0x9fc00 + table.len() < 0x10_0000, "stays in the legacy hole");
    }
}
