//! Creates a VM's live objects in order from a [`VmConfig`]:
//!
//! 1. the PVM check, then KVM and the VM with its in-kernel irqchip and PIT;
//! 2. guest memory (with the 32-bit MMIO gap when it is large), registered with KVM;
//! 3. the legacy devices on the port I/O bus: the 8250 serial (IRQ 4) and the i8042;
//! 4. the virtio devices, one virtio-mmio slot each (0xd000_0000 + i * 4 KiB, IRQ 5 + i), each
//!    appended to the kernel command line;
//! 5. the kernel, command line, initramfs and boot structures (see [`boot`]);
//! 6. the vcpus, configured for that kernel's entry.
//!
//! Nothing runs until [`Vmm::run`](crate::Vmm::run).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use event_manager::{EventManager, MutEventSubscriber, SubscriberOps};
use kvm_bindings::KVM_MAX_CPUID_ENTRIES;
use kvm_ioctls::{Cap, IoEventAddress, Kvm};
use linux_loader::cmdline::Cmdline;
use vm_memory::{GuestAddress, GuestMemory};
use vmm_sys_util::eventfd::EventFd;

use crate::arch::x86_64::boot;
use crate::arch::x86_64::layout::{
    self, CMDLINE_CAPACITY, COM1_IRQ, COM1_PORT, COM1_PORT_LEN, I8042_PORT, I8042_PORT_LEN,
    MAX_VIRTIO_DEVICES, VIRTIO_MMIO_SIZE,
};
use crate::config::{SerialOutput, VmConfig};
use crate::devices::bus::Bus;
use crate::devices::i8042::I8042;
use crate::devices::serial::{IrqLine, SerialDevice};
use crate::devices::virtio::fs::Fs;
use crate::devices::virtio::mmio::{reg, MmioTransport};
use crate::devices::virtio::net::Net;
use crate::devices::virtio::vsock::Vsock;
use crate::devices::virtio::{Interrupt, VirtioDevice};
use crate::error::{Error, Result};
use crate::memory::GuestMemoryMmap;
use crate::vmm::{ExitListener, ExitSignal, Subscriber, Timeline, VmExit, Vmm};
use crate::vstate::vcpu::Vcpu;
use crate::vstate::vm::Vm;

/// The most vcpus: APIC ids 0..=253, and the IOAPIC takes the next id (0xff is broadcast).
pub const MAX_VCPUS: u8 = 254;
/// Less than this cannot hold a kernel, its decompression and an initramfs.
pub const MIN_MEM_MIB: u32 = 16;

pub fn build(mut config: VmConfig) -> Result<Vmm> {
    let vmm_start = Instant::now();
    check_config(&config)?;
    crate::pvm::check(&config.kernel.path, config.kernel_supports_pvm)?;

    let kvm = Kvm::new().map_err(Error::Kvm)?;
    let vm = Vm::new(&kvm)?;
    let memory = guest_memory(config.mem_mib)?;
    vm.register_memory(&memory)?;

    let exit = Arc::new(ExitSignal::new()?);
    let mut event_manager: EventManager<Subscriber> = EventManager::new()
        .map_err(|e| Error::io("creating the event loop", std::io::Error::other(e.to_string())))?;
    event_manager.add_subscriber(Arc::new(Mutex::new(ExitListener(exit.clone()))));

    let serial_on = !matches!(config.serial, SerialOutput::Off);
    let pio_bus = legacy_devices(&vm, std::mem::take(&mut config.serial), &exit)?;
    let mut cmdline = kernel_cmdline(&config.cmdline, serial_on)?;
    let mut virtio = VirtioSlots {
        vm: &vm,
        memory: &memory,
        mmio_bus: Bus::new(),
        event_manager: &mut event_manager,
        cmdline: &mut cmdline,
        attached: 0,
    };
    virtio_devices(&mut config, &mut virtio)?;
    let mmio_bus = virtio.mmio_bus;

    let entry =
        boot::load(&memory, &mut config.kernel.file, config.initramfs.as_deref(), &cmdline, config.vcpus)
            .map_err(|msg| Error::Kernel { path: config.kernel.path.clone(), msg })?;

    let supported = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(|source| Error::KvmOp { what: "KVM_GET_SUPPORTED_CPUID", source })?;
    let tsc_deadline = kvm.check_extension(Cap::TscDeadlineTimer);
    let mut vcpus = Vec::with_capacity(usize::from(config.vcpus));
    for id in 0..config.vcpus {
        let vcpu = Vcpu::new(vm.fd(), id)?;
        vcpu.configure(&supported, config.vcpus, tsc_deadline, (id == 0).then_some(&entry))?;
        vcpus.push(vcpu);
    }

    let timeline = Timeline { vmm_start, built: Some(Instant::now()), kernel_entry: None, exited: None };
    let vcpu_filter = config.vcpu_filter.take().map(Arc::new);
    Ok(Vmm { vcpus, event_manager, pio_bus, mmio_bus, exit, vm, memory, timeline, vcpu_filter })
}

fn check_config(config: &VmConfig) -> Result<()> {
    if config.vcpus == 0 || config.vcpus > MAX_VCPUS {
        return Err(Error::Config(format!("{} vcpus: a VM has 1 to {MAX_VCPUS}", config.vcpus)));
    }
    if config.mem_mib < MIN_MEM_MIB {
        return Err(Error::Config(format!(
            "{} MiB of memory: a VM needs at least {MIN_MEM_MIB}",
            config.mem_mib
        )));
    }
    let devices = usize::from(config.vsock.is_some()) + config.shares.len() + config.nets.len();
    if devices > MAX_VIRTIO_DEVICES {
        return Err(Error::Config(format!("{devices} virtio devices: at most {MAX_VIRTIO_DEVICES} fit")));
    }
    Ok(())
}

fn guest_memory(mem_mib: u32) -> Result<GuestMemoryMmap> {
    let ranges: Vec<(GuestAddress, usize)> = layout::ram_regions(u64::from(mem_mib) << 20)
        .into_iter()
        .map(|(start, len)| (start, len as usize))
        .collect();
    let mem =
        GuestMemoryMmap::from_ranges(&ranges).map_err(|e| Error::Memory(format!("{mem_mib} MiB: {e}")))?;
    // A process the VMM forks (hull's OOM relay) must not share the guest's RAM: private
    // pages shared copy-on-write would be copied on the guest's next write to each of them,
    // doubling what the VM costs, and the fork would copy their page tables.
    for region in mem.iter() {
        // SAFETY: the range is exactly one mapping this GuestMemoryMmap made and owns;
        // MADV_DONTFORK changes only what a fork inherits, not its contents or protection.
        let ret = unsafe { libc::madvise(region.as_ptr().cast(), region.size(), libc::MADV_DONTFORK) };
        if ret != 0 {
            return Err(Error::Memory(format!(
                "madvise(MADV_DONTFORK): {}",
                std::io::Error::last_os_error()
            )));
        }
    }
    Ok(mem)
}

/// The port I/O bus with the serial and the i8042.
fn legacy_devices(vm: &Vm, serial_output: SerialOutput, exit: &Arc<ExitSignal>) -> Result<Bus> {
    let irqfd = EventFd::new(libc::EFD_NONBLOCK).map_err(|e| Error::io("creating the serial irqfd", e))?;
    vm.fd()
        .register_irqfd(&irqfd, COM1_IRQ)
        .map_err(|source| Error::KvmOp { what: "KVM_IRQFD (serial)", source })?;
    let serial = SerialDevice::new(IrqLine::new(irqfd), serial_output);
    let reset_exit = exit.clone();
    let i8042 = I8042::new(Box::new(move || reset_exit.report(VmExit::Reset)));

    let mut bus = Bus::new();
    let overlap = |e| Error::Device { what: "legacy".into(), msg: format!("{e}") };
    bus.insert(Arc::new(Mutex::new(serial)), COM1_PORT, COM1_PORT_LEN).map_err(overlap)?;
    bus.insert(Arc::new(Mutex::new(i8042)), I8042_PORT, I8042_PORT_LEN).map_err(overlap)?;
    Ok(bus)
}

/// The caller's command line plus `console=ttyS0` when the serial is on. Devices are appended
/// as they are attached.
pub fn kernel_cmdline(base: &str, serial_on: bool) -> Result<Cmdline> {
    let invalid = |e: linux_loader::cmdline::Error| Error::Config(format!("kernel command line: {e}"));
    let mut cmdline = if base.trim().is_empty() {
        Cmdline::new(CMDLINE_CAPACITY).map_err(invalid)?
    } else {
        Cmdline::try_from(base, CMDLINE_CAPACITY).map_err(invalid)?
    };
    if serial_on {
        cmdline.insert_str("console=ttyS0").map_err(invalid)?;
    }
    Ok(cmdline)
}

/// Where virtio devices go while the VM is built: device i takes virtio-mmio slot i.
struct VirtioSlots<'a> {
    vm: &'a Vm,
    memory: &'a GuestMemoryMmap,
    mmio_bus: Bus,
    event_manager: &'a mut EventManager<Subscriber>,
    cmdline: &'a mut Cmdline,
    attached: usize,
}

/// Creates the configured virtio devices: the vsock, then one virtio-fs per share, then one
/// virtio-net per NIC.
fn virtio_devices(config: &mut VmConfig, slots: &mut VirtioSlots) -> Result<()> {
    if let Some(vsock) = &config.vsock {
        let device = Vsock::new(vsock.guest_cid, &vsock.uds_path).map_err(|e| Error::Device {
            what: format!("vsock ({})", vsock.uds_path.display()),
            msg: e.to_string(),
        })?;
        slots.attach("vsock", Arc::new(Mutex::new(device)))?;
    }
    for share in &config.shares {
        let device = Fs::new(&share.tag, &share.path, share.read_only).map_err(|e| Error::Device {
            what: format!("virtio-fs {} ({})", share.tag, share.path.display()),
            msg: e.to_string(),
        })?;
        slots.attach(&format!("virtio-fs {}", share.tag), Arc::new(Mutex::new(device)))?;
    }
    for nic in std::mem::take(&mut config.nets) {
        let what = format!("virtio-net on tap {}", nic.tap.name());
        let device = Net::new(nic.mac, nic.mtu, Box::new(nic.tap))
            .map_err(|e| Error::Device { what: what.clone(), msg: e.to_string() })?;
        slots.attach(&what, Arc::new(Mutex::new(device)))?;
    }
    Ok(())
}

impl VirtioSlots<'_> {
    /// Puts `device` in the next slot: its irqfd and queue ioeventfds registered with KVM, its
    /// transport on the MMIO bus, the device itself in the event loop, and its entry on the
    /// kernel command line.
    fn attach<D>(&mut self, name: &str, device: Arc<Mutex<D>>) -> Result<()>
    where
        D: VirtioDevice + MutEventSubscriber + Send + 'static,
    {
        let (base, irq) = layout::virtio_slot(self.attached);
        self.attached += 1;
        let kvm_err = |what: &str| {
            let what = format!("{what} ({name})");
            move |source: kvm_ioctls::Error| Error::Device { what, msg: source.to_string() }
        };
        let irqfd = EventFd::new(libc::EFD_NONBLOCK).map_err(|e| Error::io(format!("irqfd ({name})"), e))?;
        self.vm.fd().register_irqfd(&irqfd, irq).map_err(kvm_err("KVM_IRQFD"))?;
        {
            let dev = device.lock().unwrap_or_else(|e| e.into_inner());
            for (queue, event) in dev.queue_events().iter().enumerate() {
                let notify = IoEventAddress::Mmio(base + reg::QUEUE_NOTIFY);
                self.vm
                    .fd()
                    .register_ioevent(event, &notify, queue as u32)
                    .map_err(kvm_err("KVM_IOEVENTFD"))?;
            }
        }
        let transport =
            MmioTransport::new(device.clone(), Arc::new(Interrupt::new(irqfd)), self.memory.clone());
        self.mmio_bus
            .insert(Arc::new(Mutex::new(transport)), base, VIRTIO_MMIO_SIZE)
            .map_err(|e| Error::Device { what: name.to_string(), msg: e.to_string() })?;
        self.event_manager.add_subscriber(device);
        self.cmdline
            .add_virtio_mmio_device(VIRTIO_MMIO_SIZE, GuestAddress(base), irq, None)
            .map_err(|e| Error::Config(format!("kernel command line: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KernelImage;
    use std::fs::File;

    fn cstr(c: &Cmdline) -> String {
        c.as_cstring().unwrap().into_string().unwrap()
    }

    #[test]
    fn cmdline_gets_the_console_and_device_entries_before_init_args() {
        assert_eq!(cstr(&kernel_cmdline("", false).unwrap()), "");
        assert_eq!(cstr(&kernel_cmdline("  ", true).unwrap()), "console=ttyS0");
        let mut c = kernel_cmdline("quiet panic=-1 -- --agent", true).unwrap();
        c.add_virtio_mmio_device(VIRTIO_MMIO_SIZE, GuestAddress(layout::virtio_slot(1).0), 6, None).unwrap();
        assert_eq!(cstr(&c), "quiet panic=-1 console=ttyS0 virtio_mmio.device=4K@0xd0001000:6 -- --agent");
        let long = "x".repeat(CMDLINE_CAPACITY);
        assert!(kernel_cmdline(&long, false).unwrap_err().to_string().contains("command line"));
    }

    #[test]
    fn bad_configs_are_refused_before_touching_kvm() {
        let kernel = KernelImage { file: File::open("/dev/null").unwrap(), path: "/dev/null".into() };
        let mut config = VmConfig::new(kernel);
        assert!(check_config(&config).is_ok());
        config.vcpus = 0;
        assert!(check_config(&config).unwrap_err().to_string().contains("0 vcpus"));
        config.vcpus = 255;
        assert!(check_config(&config).is_err());
        config.vcpus = 2;
        config.mem_mib = 8;
        assert!(check_config(&config).unwrap_err().to_string().contains("8 MiB"));
        config.mem_mib = 128;
        config.shares = (0..20)
            .map(|i| crate::config::FsShare { tag: format!("t{i}"), path: "/".into(), read_only: true })
            .collect();
        assert!(check_config(&config).unwrap_err().to_string().contains("20 virtio devices"));
    }

    #[test]
    fn guest_memory_has_the_gap() {
        let mem = guest_memory(64).unwrap();
        use vm_memory::GuestMemory;
        assert_eq!(mem.num_regions(), 1);
        assert_eq!(mem.last_addr(), GuestAddress((64 << 20) - 1));
    }
}
