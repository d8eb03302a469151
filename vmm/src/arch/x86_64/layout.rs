//! The guest physical address map: where the VMM puts boot structures, RAM and devices.
//!
//! ```text
//! 0x0000_0500  GDT            0x0000_7000  zero page (boot_params)
//! 0x0000_0540  IDT (empty)    0x0000_8ff0  boot stack top
//! 0x0000_6000  PVH start_info 0x0000_9000  PML4, PDPT, PD (identity map of the first GiB)
//! 0x0002_0000  command line   0x0009_fc00  MP table (EBDA, where Linux scans for it)
//! 0x0010_0000  kernel (bzImage; an ELF vmlinux goes where its headers say)
//! ...          initramfs at the top of low RAM
//! 0xd000_0000  32-bit MMIO gap: virtio-mmio slots, IOAPIC, LAPIC, KVM's TSS
//! 0x1_0000_0000  the rest of RAM when the guest has more than the gap leaves below 4 GiB
//! ```

use vm_memory::GuestAddress;

pub const GDT_START: u64 = 0x500;
pub const IDT_START: u64 = 0x540;
pub const PVH_START_INFO: u64 = 0x6000;
pub const PVH_MODLIST: u64 = 0x6040;
pub const PVH_MEMMAP: u64 = 0x6080;
pub const ZERO_PAGE_START: u64 = 0x7000;
pub const BOOT_STACK_TOP: u64 = 0x8ff0;
pub const PML4_START: u64 = 0x9000;
pub const PDPT_START: u64 = 0xa000;
pub const PD_START: u64 = 0xb000;
pub const CMDLINE_START: u64 = 0x2_0000;
/// x86's COMMAND_LINE_SIZE, the terminating NUL included.
pub const CMDLINE_CAPACITY: usize = 2048;
/// The start of the extended BIOS data area: RAM below it is usable, and Linux looks for the
/// MP floating pointer in its first KiB.
pub const EBDA_START: u64 = 0x9_fc00;
pub const MPTABLE_START: u64 = EBDA_START;
/// The first byte above the legacy hole (VGA, option ROMs, BIOS); kernels load here or above.
pub const HIMEM_START: u64 = 0x10_0000;

/// Device space below 4 GiB: RAM stops here and resumes at [`MMIO_GAP_END`].
pub const MMIO_GAP_START: u64 = 0xd000_0000;
pub const MMIO_GAP_END: u64 = 1 << 32;

/// virtio-mmio device `i` is at `VIRTIO_MMIO_START + i * VIRTIO_MMIO_SIZE`, on IRQ
/// `VIRTIO_FIRST_IRQ + i`.
pub const VIRTIO_MMIO_START: u64 = MMIO_GAP_START;
pub const VIRTIO_MMIO_SIZE: u64 = 0x1000;
pub const VIRTIO_FIRST_IRQ: u32 = 5;
/// The IOAPIC has 24 pins; IRQs 5..=23 are left for virtio devices.
pub const IOAPIC_PINS: u32 = 24;
pub const MAX_VIRTIO_DEVICES: usize = (IOAPIC_PINS - VIRTIO_FIRST_IRQ) as usize;

pub const IOAPIC_START: u64 = 0xfec0_0000;
pub const LAPIC_START: u64 = 0xfee0_0000;
/// KVM needs three pages for the real-mode TSS and one for the EPT identity map (Intel),
/// somewhere the guest does not use as RAM.
pub const KVM_TSS_START: u64 = 0xfffb_d000;
pub const KVM_IDENTITY_MAP_START: u64 = 0xfffb_c000;

/// Legacy port I/O devices.
pub const COM1_PORT: u64 = 0x3f8;
pub const COM1_PORT_LEN: u64 = 8;
pub const COM1_IRQ: u32 = 4;
pub const I8042_PORT: u64 = 0x60;
pub const I8042_PORT_LEN: u64 = 5;

// The boot structures do not overlap each other (5 GDT entries, a 56-byte start_info, 32-byte
// modules, room for 8 memory map entries of 24 bytes).
const _: () = assert!(IDT_START >= GDT_START + 5 * 8);
const _: () = assert!(PVH_MODLIST >= PVH_START_INFO + 56 && PVH_MEMMAP >= PVH_MODLIST + 32);
const _: () = assert!(ZERO_PAGE_START >= PVH_MEMMAP + 8 * 24);
const _: () = assert!(BOOT_STACK_TOP < PML4_START && PD_START + 0x1000 <= CMDLINE_START);
const _: () = assert!(CMDLINE_START + CMDLINE_CAPACITY as u64 <= MPTABLE_START);

/// The guest RAM regions for `mem_bytes` of memory: below the MMIO gap, and the rest from 4 GiB.
pub fn ram_regions(mem_bytes: u64) -> Vec<(GuestAddress, u64)> {
    let low = mem_bytes.min(MMIO_GAP_START);
    let mut regions = vec![(GuestAddress(0), low)];
    if mem_bytes > low {
        regions.push((GuestAddress(MMIO_GAP_END), mem_bytes - low));
    }
    regions
}

/// The end of the RAM below the MMIO gap.
pub fn low_ram_end(mem_bytes: u64) -> u64 {
    mem_bytes.min(MMIO_GAP_START)
}

/// The base address and IRQ of virtio-mmio slot `index`.
pub fn virtio_slot(index: usize) -> (u64, u32) {
    (VIRTIO_MMIO_START + index as u64 * VIRTIO_MMIO_SIZE, VIRTIO_FIRST_IRQ + index as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn small_guests_have_one_region_below_the_gap() {
        assert_eq!(ram_regions(128 * MIB), vec![(GuestAddress(0), 128 * MIB)]);
        assert_eq!(ram_regions(MMIO_GAP_START), vec![(GuestAddress(0), MMIO_GAP_START)]);
        assert_eq!(low_ram_end(128 * MIB), 128 * MIB);
    }

    #[test]
    fn large_guests_skip_the_mmio_gap() {
        let regions = ram_regions(4096 * MIB);
        assert_eq!(
            regions,
            vec![(GuestAddress(0), MMIO_GAP_START), (GuestAddress(1 << 32), 4096 * MIB - MMIO_GAP_START)]
        );
        let total: u64 = regions.iter().map(|r| r.1).sum();
        assert_eq!(total, 4096 * MIB);
        assert_eq!(low_ram_end(4096 * MIB), MMIO_GAP_START);
    }

    #[test]
    fn virtio_slots_are_pages_in_the_gap_on_irqs_5_to_23() {
        assert_eq!(virtio_slot(0), (0xd000_0000, 5));
        assert_eq!(virtio_slot(2), (0xd000_2000, 7));
        let (last_base, last_irq) = virtio_slot(MAX_VIRTIO_DEVICES - 1);
        assert_eq!(last_irq, 23);
        assert!(last_base + VIRTIO_MMIO_SIZE <= IOAPIC_START);
    }
}
