//! What the kernel is told about the machine at entry: the e820 memory map, and either the
//! Linux zero page (`struct boot_params`, 64-bit boot protocol) or the PVH `hvm_start_info`.

use linux_loader::loader::bootparam::{boot_e820_entry, boot_params, setup_header};
use linux_loader::loader::elf::start_info::{hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info};
use vm_memory::GuestAddress;

use super::layout::{EBDA_START, HIMEM_START};

pub const E820_RAM: u32 = 1;

/// The setup header's magic, "HdrS".
const HDRS_MAGIC: u32 = 0x5372_6448;
const BOOT_FLAG_MAGIC: u16 = 0xaa55;
/// type_of_loader 0xff: a boot loader without an assigned id.
const LOADER_UNDEFINED: u8 = 0xff;
/// What a kernel without a setup header (an ELF vmlinux) is aligned to: CONFIG_PHYSICAL_ALIGN.
const DEFAULT_KERNEL_ALIGNMENT: u32 = 0x100_0000;
/// hvm_start_info.magic (XEN_HVM_START_MAGIC_VALUE) and the version with a memory map.
const PVH_MAGIC: u32 = 0x336e_c578;
const PVH_VERSION: u32 = 1;

/// One e820 entry: `size` bytes from `addr`, of `kind` (only RAM is listed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct E820Entry {
    pub addr: u64,
    pub size: u64,
    pub kind: u32,
}

/// The memory map for the guest RAM regions: the first region loses the EBDA and the legacy
/// hole (0x9fc00..1 MiB), the others are RAM as they are.
pub fn e820_map(ram: &[(GuestAddress, u64)]) -> Vec<E820Entry> {
    let mut map = Vec::with_capacity(ram.len() + 1);
    for &(start, size) in ram {
        let (start, end) = (start.0, start.0 + size);
        if start < HIMEM_START {
            map.push(E820Entry { addr: start, size: end.min(EBDA_START) - start, kind: E820_RAM });
            if end > HIMEM_START {
                map.push(E820Entry { addr: HIMEM_START, size: end - HIMEM_START, kind: E820_RAM });
            }
        } else {
            map.push(E820Entry { addr: start, size, kind: E820_RAM });
        }
    }
    map
}

/// Where the boot loader put things, for the zero page and start_info.
#[derive(Debug, Clone, Copy)]
pub struct BootInfo {
    pub cmdline_addr: u64,
    /// Without the terminating NUL.
    pub cmdline_len: u32,
    /// (address, size) of the initramfs.
    pub initramfs: Option<(u64, u32)>,
}

/// The zero page for the 64-bit boot protocol. `header` is the bzImage's setup header (with
/// code32_start already set by the loader); an ELF vmlinux has none and gets a minimal one.
pub fn linux_boot_params(
    header: Option<setup_header>,
    info: &BootInfo,
    e820: &[E820Entry],
) -> Result<boot_params, String> {
    let hdr = header.unwrap_or_else(|| setup_header {
        boot_flag: BOOT_FLAG_MAGIC,
        header: HDRS_MAGIC,
        kernel_alignment: DEFAULT_KERNEL_ALIGNMENT,
        ..Default::default()
    });
    let mut params = boot_params { hdr, ..Default::default() };
    params.hdr.type_of_loader = LOADER_UNDEFINED;
    params.hdr.cmd_line_ptr = u32::try_from(info.cmdline_addr).map_err(|_| "command line above 4 GiB")?;
    params.hdr.cmdline_size = info.cmdline_len;
    if let Some((addr, size)) = info.initramfs {
        params.hdr.ramdisk_image = u32::try_from(addr).map_err(|_| "initramfs above 4 GiB")?;
        params.hdr.ramdisk_size = size;
    }
    if e820.len() > params.e820_table.len() {
        return Err(format!("{} e820 entries, the zero page holds {}", e820.len(), params.e820_table.len()));
    }
    for (slot, entry) in params.e820_table.iter_mut().zip(e820) {
        *slot = boot_e820_entry { addr: entry.addr, size: entry.size, type_: entry.kind };
    }
    params.e820_entries = e820.len() as u8;
    Ok(params)
}

/// The PVH start_info and what it points to: the module list (the initramfs) and the memory
/// map, to be written at `modlist_addr` and `memmap_addr`.
pub struct PvhStartInfo {
    pub start_info: hvm_start_info,
    pub modules: Vec<hvm_modlist_entry>,
    pub memmap: Vec<hvm_memmap_table_entry>,
}

pub fn pvh_start_info(
    info: &BootInfo,
    e820: &[E820Entry],
    modlist_addr: u64,
    memmap_addr: u64,
) -> PvhStartInfo {
    let modules: Vec<_> = info
        .initramfs
        .iter()
        .map(|&(addr, size)| hvm_modlist_entry { paddr: addr, size: u64::from(size), ..Default::default() })
        .collect();
    let memmap: Vec<_> = e820
        .iter()
        .map(|e| hvm_memmap_table_entry { addr: e.addr, size: e.size, type_: e.kind, reserved: 0 })
        .collect();
    let start_info = hvm_start_info {
        magic: PVH_MAGIC,
        version: PVH_VERSION,
        nr_modules: modules.len() as u32,
        modlist_paddr: if modules.is_empty() { 0 } else { modlist_addr },
        cmdline_paddr: info.cmdline_addr,
        memmap_paddr: memmap_addr,
        memmap_entries: memmap.len() as u32,
        ..Default::default()
    };
    PvhStartInfo { start_info, modules, memmap }
}

/// Where the initramfs goes: as high as possible in low RAM and below `addr_max` (the kernel's
/// initrd_addr_max, the last byte it can address), page aligned, above `kernel_end`.
pub fn initramfs_address(low_ram_end: u64, addr_max: u64, kernel_end: u64, size: u64) -> Option<u64> {
    let top = low_ram_end.min(addr_max.saturating_add(1));
    let start = top.checked_sub(size)? & !0xfff;
    (start >= kernel_end).then_some(start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::x86_64::layout::{ram_regions, MMIO_GAP_START};

    const MIB: u64 = 1 << 20;

    #[test]
    fn e820_leaves_out_the_ebda_legacy_hole_and_mmio_gap() {
        assert_eq!(
            e820_map(&ram_regions(256 * MIB)),
            vec![
                E820Entry { addr: 0, size: EBDA_START, kind: E820_RAM },
                E820Entry { addr: HIMEM_START, size: 256 * MIB - HIMEM_START, kind: E820_RAM },
            ]
        );
        let big = e820_map(&ram_regions(6144 * MIB));
        assert_eq!(big.len(), 3);
        assert_eq!(
            big[1],
            E820Entry { addr: HIMEM_START, size: MMIO_GAP_START - HIMEM_START, kind: E820_RAM }
        );
        assert_eq!(big[2], E820Entry { addr: 1 << 32, size: 6144 * MIB - MMIO_GAP_START, kind: E820_RAM });
    }

    #[test]
    fn zero_page_from_a_bzimage_header_keeps_it_and_adds_what_the_loader_knows() {
        let header = setup_header {
            header: HDRS_MAGIC,
            version: 0x020f,
            code32_start: 0x10_0000,
            initrd_addr_max: 0x7fff_ffff,
            cmdline_size: 2047,
            init_size: 0x200_0000,
            ..Default::default()
        };
        let info =
            BootInfo { cmdline_addr: 0x2_0000, cmdline_len: 42, initramfs: Some((0x7f0_0000, 0x1234)) };
        let e820 = e820_map(&ram_regions(128 * MIB));
        let params = linux_boot_params(Some(header), &info, &e820).unwrap();
        assert_eq!({ params.hdr.header }, HDRS_MAGIC);
        assert_eq!({ params.hdr.version }, 0x020f);
        assert_eq!({ params.hdr.code32_start }, 0x10_0000);
        assert_eq!({ params.hdr.init_size }, 0x200_0000);
        assert_eq!(params.hdr.type_of_loader, LOADER_UNDEFINED);
        assert_eq!({ params.hdr.cmd_line_ptr }, 0x2_0000);
        assert_eq!({ params.hdr.cmdline_size }, 42);
        assert_eq!({ params.hdr.ramdisk_image }, 0x7f0_0000);
        assert_eq!({ params.hdr.ramdisk_size }, 0x1234);
        assert_eq!(params.e820_entries, 2);
        assert_eq!({ params.e820_table[1].addr }, HIMEM_START);
        assert_eq!({ params.e820_table[1].size }, 128 * MIB - HIMEM_START);
        assert_eq!({ params.e820_table[1].type_ }, E820_RAM);
    }

    #[test]
    fn zero_page_for_an_elf_kernel_has_a_minimal_header() {
        let info = BootInfo { cmdline_addr: 0x2_0000, cmdline_len: 0, initramfs: None };
        let params = linux_boot_params(None, &info, &[]).unwrap();
        assert_eq!({ params.hdr.header }, HDRS_MAGIC);
        assert_eq!({ params.hdr.boot_flag }, BOOT_FLAG_MAGIC);
        assert_eq!({ params.hdr.ramdisk_image }, 0);
        let too_many = vec![E820Entry { addr: 0, size: 1, kind: E820_RAM }; 129];
        assert!(linux_boot_params(None, &info, &too_many).is_err());
    }

    #[test]
    fn pvh_start_info_lists_the_initramfs_and_memory() {
        let info = BootInfo { cmdline_addr: 0x2_0000, cmdline_len: 5, initramfs: Some((0x7f0_0000, 0x1000)) };
        let e820 = e820_map(&ram_regions(128 * MIB));
        let pvh = pvh_start_info(&info, &e820, 0x6040, 0x6080);
        assert_eq!({ pvh.start_info.magic }, PVH_MAGIC);
        assert_eq!({ pvh.start_info.nr_modules }, 1);
        assert_eq!({ pvh.start_info.modlist_paddr }, 0x6040);
        assert_eq!({ pvh.start_info.memmap_entries }, 2);
        assert_eq!({ pvh.start_info.cmdline_paddr }, 0x2_0000);
        assert_eq!({ pvh.modules[0].paddr }, 0x7f0_0000);
        assert_eq!({ pvh.memmap[1].addr }, HIMEM_START);
        let none = pvh_start_info(&BootInfo { initramfs: None, ..info }, &e820, 0x6040, 0x6080);
        assert_eq!(({ none.start_info.nr_modules }, { none.start_info.modlist_paddr }), (0, 0));
    }

    #[test]
    fn initramfs_goes_high_page_aligned_and_never_over_the_kernel() {
        assert_eq!(initramfs_address(128 * MIB, 0x7fff_ffff, 32 * MIB, 0x1800), Some(128 * MIB - 0x2000));
        // initrd_addr_max below the end of RAM wins.
        assert_eq!(initramfs_address(4096 * MIB, 0x37ff_ffff, 32 * MIB, 0x1000), Some(0x3800_0000 - 0x1000));
        assert_eq!(initramfs_address(64 * MIB, u64::MAX, 32 * MIB, 40 * MIB), None);
        assert_eq!(initramfs_address(64 * MIB, u64::MAX, 0, 65 * MIB), None);
    }
}
