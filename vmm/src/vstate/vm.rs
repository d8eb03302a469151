//! The KVM VM: its fd, the in-kernel interrupt controllers and timer, and guest memory slots.

use kvm_bindings::{kvm_pit_config, kvm_userspace_memory_region, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::{Cap, Kvm, VmFd};
use vm_memory::{Address, GuestMemory, GuestMemoryRegion};

use crate::arch::x86_64::layout::{KVM_IDENTITY_MAP_START, KVM_TSS_START};
use crate::error::{Error, Result};
use crate::memory::GuestMemoryMmap;

pub struct Vm {
    fd: VmFd,
}

fn kvm_op(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> Error {
    move |source| Error::KvmOp { what, source }
}

impl Vm {
    /// A VM with the in-kernel PIC, IOAPIC, local APICs and PIT: interrupts and timers never
    /// leave the kernel.
    pub fn new(kvm: &Kvm) -> Result<Vm> {
        let fd = kvm.create_vm().map_err(kvm_op("KVM_CREATE_VM"))?;
        fd.set_tss_address(KVM_TSS_START as usize).map_err(kvm_op("KVM_SET_TSS_ADDR"))?;
        if kvm.check_extension(Cap::SetIdentityMapAddr) {
            fd.set_identity_map_address(KVM_IDENTITY_MAP_START)
                .map_err(kvm_op("KVM_SET_IDENTITY_MAP_ADDR"))?;
        }
        fd.create_irq_chip().map_err(kvm_op("KVM_CREATE_IRQCHIP"))?;
        // The dummy speaker port keeps port 0x61 (which Linux reads for timer calibration) in
        // the kernel too.
        let pit = kvm_pit_config { flags: KVM_PIT_SPEAKER_DUMMY, ..Default::default() };
        fd.create_pit2(pit).map_err(kvm_op("KVM_CREATE_PIT2"))?;
        Ok(Vm { fd })
    }

    pub fn fd(&self) -> &VmFd {
        &self.fd
    }

    /// One KVM memory slot per guest memory region.
    pub fn register_memory(&self, mem: &GuestMemoryMmap) -> Result<()> {
        for (slot, region) in mem.iter().enumerate() {
            let host = region.get_host_address(vm_memory::MemoryRegionAddress(0)).map_err(|e| {
                Error::Memory(format!("region at {:#x}: {e}", region.start_addr().raw_value()))
            })?;
            let kvm_region = kvm_userspace_memory_region {
                slot: slot as u32,
                guest_phys_addr: region.start_addr().raw_value(),
                memory_size: region.len(),
                userspace_addr: host as u64,
                flags: 0,
            };
            // SAFETY: the region is a live mapping of `memory_size` bytes owned by `mem`. KVM
            // touches it only while a vcpu runs, and the Vmm keeps `mem` mapped until every vcpu
            // thread has been joined and this VM fd closed.
            unsafe { self.fd.set_user_memory_region(kvm_region) }
                .map_err(kvm_op("KVM_SET_USER_MEMORY_REGION"))?;
        }
        Ok(())
    }
}
