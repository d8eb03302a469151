//! The boot CPU's state at kernel entry, for each boot protocol:
//!
//! - Linux 64-bit boot protocol: long mode, paging on with the first GiB identity mapped, flat
//!   segments with __BOOT_CS = 0x10 and __BOOT_DS = 0x18, %rsi = the zero page.
//! - PVH: 32-bit protected mode, paging off, flat 32-bit segments, %ebx = the start_info.
//!
//! Plus what every vcpu needs: a sane FPU and the local APIC's LINT0/LINT1 wired as a PC's are.

use kvm_bindings::{kvm_fpu, kvm_lapic_state, kvm_regs, kvm_segment, kvm_sregs};
use vm_memory::{Bytes, GuestAddress, GuestMemoryError};

use super::layout::{BOOT_STACK_TOP, GDT_START, IDT_START, PDPT_START, PD_START, PML4_START};
use crate::memory::GuestMemoryMmap;

/// How the kernel is entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootProtocol {
    /// 64-bit entry; %rsi points to `boot_params`.
    Linux64,
    /// PVH 32-bit entry; %ebx points to `hvm_start_info`.
    Pvh,
}

/// GDT slots: two null descriptors so that code and data sit at the selectors the Linux boot
/// protocol names (0x10, 0x18), then the TSS that VMX/SVM entry wants in TR.
const GDT_CODE: usize = 2;
const GDT_DATA: usize = 3;
const GDT_TSS: usize = 4;
const GDT_ENTRIES: usize = 5;

/// Descriptor flags (bits 52..55 and the access byte): granularity 4K, then for code "L" (64-bit)
/// or "D" (32-bit); present, ring 0, code execute/read or data read/write; a busy 32-bit TSS.
const CODE64_FLAGS: u16 = 0xa09b;
const CODE32_FLAGS: u16 = 0xc09b;
const DATA_FLAGS: u16 = 0xc093;
const TSS_FLAGS: u16 = 0x008b;
const TSS_LIMIT: u32 = 0x67;

const CR0_PE: u64 = 1;
const CR0_ET: u64 = 1 << 4;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
/// Bit 1 of RFLAGS is always set; interrupts start disabled.
const RFLAGS_RESERVED: u64 = 2;

/// Page table entry bits: present, writable, and (in a page directory) a 2 MiB page.
const PTE_PRESENT_RW: u64 = 0x3;
const PDE_LARGE_PAGE: u64 = 0x80;

/// x87 control word after FNINIT, and MXCSR with every exception masked.
const FPU_CONTROL_WORD: u16 = 0x37f;
const MXCSR_DEFAULT: u32 = 0x1f80;

/// Local APIC LVT registers and their delivery modes.
const APIC_LVT_LINT0: usize = 0x350;
const APIC_LVT_LINT1: usize = 0x360;
const APIC_MODE_NMI: u32 = 0x4;
const APIC_MODE_EXTINT: u32 = 0x7;

/// A segment descriptor.
fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    let (flags, base, limit) = (u64::from(flags), u64::from(base), u64::from(limit));
    ((base & 0xff00_0000) << 32)
        | ((flags & 0xf0ff) << 40)
        | ((limit & 0x000f_0000) << 32)
        | ((base & 0x00ff_ffff) << 16)
        | (limit & 0xffff)
}

/// The GDT for `protocol`.
pub fn gdt(protocol: BootProtocol) -> [u64; GDT_ENTRIES] {
    let code = match protocol {
        BootProtocol::Linux64 => CODE64_FLAGS,
        BootProtocol::Pvh => CODE32_FLAGS,
    };
    let mut table = [0; GDT_ENTRIES];
    table[GDT_CODE] = gdt_entry(code, 0, 0xfffff);
    table[GDT_DATA] = gdt_entry(DATA_FLAGS, 0, 0xfffff);
    table[GDT_TSS] = gdt_entry(TSS_FLAGS, 0, TSS_LIMIT);
    table
}

/// The hidden part of a segment register loaded from GDT slot `index`.
fn segment(table: &[u64], index: usize) -> kvm_segment {
    let e = table[index];
    let bit = |n: u32| ((e >> n) & 1) as u8;
    let raw_limit = ((e >> 32) & 0x000f_0000) as u32 | (e & 0xffff) as u32;
    let granular = bit(55) == 1;
    kvm_segment {
        base: ((e >> 32) & 0xff00_0000) | ((e >> 16) & 0x00ff_ffff),
        limit: if granular { (raw_limit << 12) | 0xfff } else { raw_limit },
        selector: (index * 8) as u16,
        type_: ((e >> 40) & 0xf) as u8,
        present: bit(47),
        dpl: ((e >> 45) & 0x3) as u8,
        db: bit(54),
        s: bit(44),
        l: bit(53),
        g: bit(55),
        avl: bit(52),
        unusable: 1 - bit(47),
        padding: 0,
    }
}

/// Writes the GDT and an empty IDT (no exception can be handled before the kernel loads its own;
/// one then ends in a triple fault, which the VMM reports).
pub fn write_gdt_idt(mem: &GuestMemoryMmap, protocol: BootProtocol) -> Result<(), GuestMemoryError> {
    for (i, entry) in gdt(protocol).iter().enumerate() {
        mem.write_obj(*entry, GuestAddress(GDT_START + i as u64 * 8))?;
    }
    mem.write_obj(0u64, GuestAddress(IDT_START))
}

/// Writes page tables that identity map the first GiB with 2 MiB pages: enough for the kernel,
/// the zero page and the command line, which is what the 64-bit entry needs.
pub fn write_page_tables(mem: &GuestMemoryMmap) -> Result<(), GuestMemoryError> {
    mem.write_obj(PDPT_START | PTE_PRESENT_RW, GuestAddress(PML4_START))?;
    mem.write_obj(PD_START | PTE_PRESENT_RW, GuestAddress(PDPT_START))?;
    for i in 0..512u64 {
        mem.write_obj((i << 21) | PTE_PRESENT_RW | PDE_LARGE_PAGE, GuestAddress(PD_START + i * 8))?;
    }
    Ok(())
}

/// The special registers at entry, from the vcpu's current ones.
pub fn boot_sregs(mut sregs: kvm_sregs, protocol: BootProtocol) -> kvm_sregs {
    let table = gdt(protocol);
    let data = segment(&table, GDT_DATA);
    sregs.cs = segment(&table, GDT_CODE);
    (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss) = (data, data, data, data, data);
    sregs.tr = segment(&table, GDT_TSS);
    sregs.gdt.base = GDT_START;
    sregs.gdt.limit = (table.len() * 8 - 1) as u16;
    sregs.idt.base = IDT_START;
    sregs.idt.limit = 7;
    match protocol {
        BootProtocol::Linux64 => {
            sregs.cr0 = CR0_PE | CR0_ET | CR0_PG;
            sregs.cr3 = PML4_START;
            sregs.cr4 = CR4_PAE;
            sregs.efer = EFER_LME | EFER_LMA;
        }
        BootProtocol::Pvh => {
            sregs.cr0 = CR0_PE | CR0_ET;
            sregs.cr3 = 0;
            sregs.cr4 = 0;
            sregs.efer = 0;
        }
    }
    sregs
}

/// The general registers at entry: `entry` in RIP, `boot_info` (the zero page or the start_info)
/// where the protocol wants it.
pub fn boot_regs(protocol: BootProtocol, entry: u64, boot_info: u64) -> kvm_regs {
    let mut regs = kvm_regs { rflags: RFLAGS_RESERVED, rip: entry, ..Default::default() };
    match protocol {
        BootProtocol::Linux64 => {
            regs.rsp = BOOT_STACK_TOP;
            regs.rbp = BOOT_STACK_TOP;
            regs.rsi = boot_info;
        }
        BootProtocol::Pvh => regs.rbx = boot_info,
    }
    regs
}

pub fn boot_fpu() -> kvm_fpu {
    kvm_fpu { fcw: FPU_CONTROL_WORD, mxcsr: MXCSR_DEFAULT, ..Default::default() }
}

fn lapic_reg(lapic: &kvm_lapic_state, offset: usize) -> u32 {
    let b = &lapic.regs[offset..offset + 4];
    u32::from_le_bytes([b[0] as u8, b[1] as u8, b[2] as u8, b[3] as u8])
}

fn set_lapic_reg(lapic: &mut kvm_lapic_state, offset: usize, value: u32) {
    for (dst, src) in lapic.regs[offset..offset + 4].iter_mut().zip(value.to_le_bytes()) {
        *dst = src as _;
    }
}

/// LINT0 delivers the legacy PIC's interrupts (ExtINT), LINT1 NMIs, as on a PC.
pub fn set_lint_delivery(lapic: &mut kvm_lapic_state) {
    for (reg, mode) in [(APIC_LVT_LINT0, APIC_MODE_EXTINT), (APIC_LVT_LINT1, APIC_MODE_NMI)] {
        let lvt = lapic_reg(lapic, reg);
        set_lapic_reg(lapic, reg, (lvt & !0x700) | (mode << 8));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::GuestMemory;

    #[test]
    fn gdt_entries_encode_flat_segments() {
        let table = gdt(BootProtocol::Linux64);
        assert_eq!(table[0], 0);
        assert_eq!(table[GDT_CODE], 0x00af_9b00_0000_ffff);
        assert_eq!(table[GDT_DATA], 0x00cf_9300_0000_ffff);
        assert_eq!(table[GDT_TSS], 0x0000_8b00_0000_0067);
        assert_eq!(gdt(BootProtocol::Pvh)[GDT_CODE], 0x00cf_9b00_0000_ffff);
        assert_eq!(gdt_entry(0x0093, 0x1234_5678, 0xabcde), 0x120a_9334_5678_bcde);
    }

    #[test]
    fn segments_decode_what_the_gdt_holds() {
        let table = gdt(BootProtocol::Linux64);
        let cs = segment(&table, GDT_CODE);
        assert_eq!((cs.selector, cs.base, cs.limit), (0x10, 0, 0xffff_ffff));
        assert_eq!((cs.type_, cs.present, cs.s, cs.l, cs.db, cs.g, cs.unusable), (0xb, 1, 1, 1, 0, 1, 0));
        let ds = segment(&table, GDT_DATA);
        assert_eq!((ds.selector, ds.type_, ds.db, ds.l), (0x18, 3, 1, 0));
        let tr = segment(&table, GDT_TSS);
        assert_eq!((tr.selector, tr.limit, tr.type_, tr.s, tr.g), (0x20, 0x67, 0xb, 0, 0));
        let pvh_cs = segment(&gdt(BootProtocol::Pvh), GDT_CODE);
        assert_eq!((pvh_cs.l, pvh_cs.db, pvh_cs.limit), (0, 1, 0xffff_ffff));
        assert_eq!(segment(&table, 0).unusable, 1);
    }

    #[test]
    fn sregs_for_long_mode_and_for_pvh() {
        let long = boot_sregs(kvm_sregs::default(), BootProtocol::Linux64);
        assert_eq!((long.cr0, long.cr3, long.cr4, long.efer), (0x8000_0011, PML4_START, 0x20, 0x500));
        assert_eq!((long.cs.selector, long.ss.selector, long.tr.selector), (0x10, 0x18, 0x20));
        assert_eq!((long.gdt.base, long.gdt.limit, long.idt.base), (GDT_START, 39, IDT_START));
        let pvh = boot_sregs(kvm_sregs::default(), BootProtocol::Pvh);
        assert_eq!((pvh.cr0, pvh.cr4, pvh.efer), (0x11, 0, 0));
        assert_eq!(pvh.cs.db, 1);
    }

    #[test]
    fn regs_put_the_boot_info_where_each_protocol_wants_it() {
        let linux = boot_regs(BootProtocol::Linux64, 0x10_0200, 0x7000);
        assert_eq!((linux.rip, linux.rsi, linux.rsp, linux.rflags), (0x10_0200, 0x7000, BOOT_STACK_TOP, 2));
        let pvh = boot_regs(BootProtocol::Pvh, 0x100_0000, 0x6000);
        assert_eq!((pvh.rip, pvh.rbx, pvh.rsi), (0x100_0000, 0x6000, 0));
    }

    #[test]
    fn page_tables_identity_map_the_first_gib() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        write_page_tables(&mem).unwrap();
        write_gdt_idt(&mem, BootProtocol::Linux64).unwrap();
        assert_eq!(mem.read_obj::<u64>(GuestAddress(PML4_START)).unwrap(), PDPT_START | 3);
        assert_eq!(mem.read_obj::<u64>(GuestAddress(PDPT_START)).unwrap(), PD_START | 3);
        assert_eq!(mem.read_obj::<u64>(GuestAddress(PD_START)).unwrap(), 0x83);
        assert_eq!(mem.read_obj::<u64>(GuestAddress(PD_START + 511 * 8)).unwrap(), (511 << 21) | 0x83);
        assert_eq!(mem.read_obj::<u64>(GuestAddress(GDT_START + 16)).unwrap(), gdt(BootProtocol::Linux64)[2]);
        assert!(mem.last_addr().0 >= PD_START + 4095);
    }

    #[test]
    fn lint0_is_extint_and_lint1_is_nmi() {
        let mut lapic = kvm_lapic_state::default();
        set_lapic_reg(&mut lapic, APIC_LVT_LINT0, 0x0001_0700);
        set_lint_delivery(&mut lapic);
        assert_eq!(lapic_reg(&lapic, APIC_LVT_LINT0), 0x0001_0700);
        assert_eq!(lapic_reg(&lapic, APIC_LVT_LINT1), 0x400);
    }
}
