//! Loads the kernel, the initramfs and the command line into guest memory and writes what the
//! kernel reads at entry: the MP table, the GDT (and page tables for a 64-bit entry) and the
//! zero page or the PVH start_info.
//!
//! A bzImage enters at its 64-bit entry point (the protected-mode kernel + 0x200) with the zero
//! page built from its own setup header. An ELF vmlinux enters through PVH when it carries the
//! XEN_ELFNOTE_PHYS32_ENTRY note, else at its ELF entry with a minimal zero page.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use linux_loader::cmdline::Cmdline;
use linux_loader::loader::bootparam::setup_header;
use linux_loader::loader::elf::PvhBootCapability;
use linux_loader::loader::{load_cmdline, BzImage, Elf, KernelLoader, KernelLoaderResult};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemory, GuestMemoryRegion};

use super::boot_params::{e820_map, initramfs_address, linux_boot_params, pvh_start_info, BootInfo};
use super::layout::{
    low_ram_end, CMDLINE_START, HIMEM_START, MPTABLE_START, PVH_MEMMAP, PVH_MODLIST, PVH_START_INFO,
    ZERO_PAGE_START,
};
use super::mptable::mptable;
use super::regs::{write_gdt_idt, write_page_tables, BootProtocol};
use crate::memory::GuestMemoryMmap;

/// The 64-bit entry point's offset in the protected-mode kernel of a bzImage.
const BZIMAGE_64BIT_ENTRY_OFFSET: u64 = 0x200;
/// initrd_addr_max for boot protocols before 2.03, which do not state it.
const DEFAULT_INITRD_ADDR_MAX: u64 = 0x37ff_ffff;

/// How the boot vcpu enters the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelEntry {
    pub protocol: BootProtocol,
    pub entry: GuestAddress,
    /// The zero page or the start_info.
    pub boot_info: GuestAddress,
}

/// What the loader found in the image.
struct LoadedKernel {
    protocol: BootProtocol,
    entry: GuestAddress,
    header: Option<setup_header>,
    /// The first byte the kernel does not need, decompressed and running.
    end: u64,
    initrd_addr_max: u64,
}

/// Loads everything and returns the entry. Errors are messages; the caller names the kernel.
pub fn load(
    mem: &GuestMemoryMmap,
    kernel: &mut File,
    initramfs: Option<&[u8]>,
    cmdline: &Cmdline,
    vcpus: u8,
) -> Result<KernelEntry, String> {
    let loaded = load_kernel(mem, kernel)?;

    load_cmdline(mem, GuestAddress(CMDLINE_START), cmdline).map_err(|e| format!("command line: {e}"))?;
    let cmdline_len = cmdline.as_cstring().map_err(|e| format!("command line: {e}"))?.as_bytes().len();

    let ram: Vec<(GuestAddress, u64)> = mem.iter().map(|r| (r.start_addr(), r.len())).collect();
    let mem_bytes = ram.iter().map(|r| r.1).sum();
    let initramfs = match initramfs {
        None => None,
        Some(image) => {
            let size = image.len() as u64;
            let addr = initramfs_address(low_ram_end(mem_bytes), loaded.initrd_addr_max, loaded.end, size)
                .ok_or_else(|| {
                    format!("the initramfs ({size} bytes) does not fit in guest RAM between the kernel and its limit")
                })?;
            mem.write_slice(image, GuestAddress(addr)).map_err(|e| format!("writing the initramfs: {e}"))?;
            Some((addr, u32::try_from(size).map_err(|_| "the initramfs is over 4 GiB")?))
        }
    };

    let info = BootInfo { cmdline_addr: CMDLINE_START, cmdline_len: cmdline_len as u32, initramfs };
    let e820 = e820_map(&ram);
    let write_err = |what: &str, e: vm_memory::GuestMemoryError| format!("writing the {what}: {e}");
    mem.write_slice(&mptable(vcpus, MPTABLE_START), GuestAddress(MPTABLE_START))
        .map_err(|e| write_err("MP table", e))?;
    write_gdt_idt(mem, loaded.protocol).map_err(|e| write_err("GDT", e))?;
    let boot_info = match loaded.protocol {
        BootProtocol::Linux64 => {
            write_page_tables(mem).map_err(|e| write_err("page tables", e))?;
            let params = linux_boot_params(loaded.header, &info, &e820)?;
            mem.write_obj(params, GuestAddress(ZERO_PAGE_START)).map_err(|e| write_err("zero page", e))?;
            ZERO_PAGE_START
        }
        BootProtocol::Pvh => {
            let pvh = pvh_start_info(&info, &e820, PVH_MODLIST, PVH_MEMMAP);
            mem.write_obj(pvh.start_info, GuestAddress(PVH_START_INFO))
                .map_err(|e| write_err("start_info", e))?;
            for (i, module) in pvh.modules.iter().enumerate() {
                let at = PVH_MODLIST + (i * std::mem::size_of_val(module)) as u64;
                mem.write_obj(*module, GuestAddress(at)).map_err(|e| write_err("PVH module list", e))?;
            }
            for (i, entry) in pvh.memmap.iter().enumerate() {
                let at = PVH_MEMMAP + (i * std::mem::size_of_val(entry)) as u64;
                mem.write_obj(*entry, GuestAddress(at)).map_err(|e| write_err("PVH memory map", e))?;
            }
            PVH_START_INFO
        }
    };
    Ok(KernelEntry { protocol: loaded.protocol, entry: loaded.entry, boot_info: GuestAddress(boot_info) })
}

fn load_kernel(mem: &GuestMemoryMmap, kernel: &mut File) -> Result<LoadedKernel, String> {
    let mut magic = [0u8; 4];
    kernel
        .seek(SeekFrom::Start(0))
        .and_then(|_| kernel.read_exact(&mut magic))
        .map_err(|e| format!("reading: {e}"))?;
    let himem = Some(GuestAddress(HIMEM_START));
    if magic == *b"\x7fELF" {
        let result = Elf::load(mem, None, kernel, himem).map_err(|e| format!("ELF: {e}"))?;
        let (protocol, entry) = match result.pvh_boot_cap {
            PvhBootCapability::PvhEntryPresent(addr) => (BootProtocol::Pvh, addr),
            _ => (BootProtocol::Linux64, result.kernel_load),
        };
        Ok(LoadedKernel { protocol, entry, header: None, end: result.kernel_end, initrd_addr_max: u64::MAX })
    } else {
        let result = BzImage::load(mem, None, kernel, himem).map_err(|e| format!("bzImage: {e}"))?;
        bzimage_kernel(&result)
    }
}

fn bzimage_kernel(result: &KernelLoaderResult) -> Result<LoadedKernel, String> {
    let header = result.setup_header.ok_or("bzImage without a setup header")?;
    let load = result.kernel_load.raw_value();
    // The kernel decompresses in place: it needs init_size bytes from where it was loaded.
    let end = result.kernel_end.max(load + u64::from(header.init_size));
    let initrd_addr_max = match header.initrd_addr_max {
        0 => DEFAULT_INITRD_ADDR_MAX,
        max => u64::from(max),
    };
    Ok(LoadedKernel {
        protocol: BootProtocol::Linux64,
        entry: GuestAddress(load + BZIMAGE_64BIT_ENTRY_OFFSET),
        header: Some(header),
        end,
        initrd_addr_max,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bzimage_enters_at_its_64_bit_entry_and_reserves_its_init_size() {
        let header = setup_header {
            code32_start: 0x10_0000,
            init_size: 0x80_0000,
            initrd_addr_max: 0,
            ..Default::default()
        };
        let result = KernelLoaderResult {
            kernel_load: GuestAddress(0x10_0000),
            kernel_end: 0x30_0000,
            setup_header: Some(header),
            ..Default::default()
        };
        let k = bzimage_kernel(&result).unwrap();
        assert_eq!(k.entry, GuestAddress(0x10_0200));
        assert_eq!(k.end, 0x90_0000);
        assert_eq!(k.initrd_addr_max, DEFAULT_INITRD_ADDR_MAX);
        assert_eq!(k.protocol, BootProtocol::Linux64);
    }

    #[test]
    fn a_file_that_is_no_kernel_is_refused() {
        let path = std::env::temp_dir().join(format!("hull-vmm-notakernel-{}", std::process::id()));
        std::fs::write(&path, vec![0u8; 8192]).unwrap();
        let mut file = File::open(&path).unwrap();
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 16 << 20)]).unwrap();
        let err = load_kernel(&mem, &mut file).err().unwrap();
        assert!(err.starts_with("bzImage:"), "{err}");
        std::fs::remove_file(&path).unwrap();
    }
}
