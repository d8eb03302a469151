//! A vcpu: its boot state, and the thread that runs it.
//!
//! The thread loops on KVM_RUN and serves port and MMIO exits from the buses. Everything else
//! that ends the loop is an exit of the VM, reported through the [`ExitSignal`]. To stop a vcpu
//! from another thread, [`VcpuThread::kick`] sets `immediate_exit` in its `kvm_run` and sends it
//! [`kick_signal`]: KVM_RUN, whether already running or about to be entered, returns EINTR, and
//! the loop sees the stop flag.

use std::mem::ManuallyDrop;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use kvm_bindings::{CpuId, KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN};
use kvm_ioctls::{VcpuExit, VcpuFd, VmFd};
use libc::{c_int, c_void, siginfo_t};
use vmm_sys_util::signal::{register_signal_handler, unblock_signal, Killable, SIGRTMIN};

use crate::arch::x86_64::boot::KernelEntry;
use crate::arch::x86_64::{cpuid, msrs, regs};
use crate::devices::bus::Bus;
use crate::error::{Error, Result};
use crate::vmm::{ExitSignal, VmExit};

pub struct Vcpu {
    id: u8,
    fd: VcpuFd,
}

fn kvm_op(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> Error {
    move |source| Error::KvmOp { what, source }
}

impl Vcpu {
    pub fn new(vm: &VmFd, id: u8) -> Result<Vcpu> {
        let fd = vm.create_vcpu(u64::from(id)).map_err(kvm_op("KVM_CREATE_VCPU"))?;
        Ok(Vcpu { id, fd })
    }

    /// Sets CPUID, MSRs, FPU and local APIC for vcpu `id` of `vcpus`; the boot vcpu also gets
    /// the registers for `entry`. The others wait for the boot vcpu's INIT/SIPI in the kernel.
    pub fn configure(
        &self,
        supported: &CpuId,
        vcpus: u8,
        tsc_deadline: bool,
        entry: Option<&KernelEntry>,
    ) -> Result<()> {
        let mut cpuid = supported.clone();
        cpuid::configure(&mut cpuid, self.id, vcpus, tsc_deadline);
        self.fd.set_cpuid2(&cpuid).map_err(kvm_op("KVM_SET_CPUID2"))?;

        let msrs = msrs::boot_msrs().map_err(Error::Config)?;
        let set = self.fd.set_msrs(&msrs).map_err(kvm_op("KVM_SET_MSRS"))?;
        if set != msrs.as_slice().len() {
            let failed = msrs.as_slice().get(set).map_or(0, |e| e.index);
            return Err(Error::Config(format!("KVM_SET_MSRS: KVM refused MSR {failed:#x}")));
        }

        self.fd.set_fpu(&regs::boot_fpu()).map_err(kvm_op("KVM_SET_FPU"))?;
        let mut lapic = self.fd.get_lapic().map_err(kvm_op("KVM_GET_LAPIC"))?;
        regs::set_lint_delivery(&mut lapic);
        self.fd.set_lapic(&lapic).map_err(kvm_op("KVM_SET_LAPIC"))?;

        if let Some(entry) = entry {
            let sregs = self.fd.get_sregs().map_err(kvm_op("KVM_GET_SREGS"))?;
            self.fd.set_sregs(&regs::boot_sregs(sregs, entry.protocol)).map_err(kvm_op("KVM_SET_SREGS"))?;
            let regs = regs::boot_regs(entry.protocol, entry.entry.0, entry.boot_info.0);
            self.fd.set_regs(&regs).map_err(kvm_op("KVM_SET_REGS"))?;
        }
        Ok(())
    }

    /// Starts the thread `vcpu<id>` running the guest.
    pub(crate) fn spawn(self, ctx: VcpuContext) -> std::io::Result<VcpuThread> {
        let Vcpu { id, mut fd } = self;
        let immediate_exit = std::ptr::addr_of_mut!(fd.get_kvm_run().immediate_exit);
        let handle = thread::Builder::new().name(format!("vcpu{id}")).spawn(move || {
            // Not dropped if the loop panics: the kvm_run mapping must outlive `immediate_exit`
            // uses by the stopping thread, which end when it joins this thread.
            let mut fd = ManuallyDrop::new(fd);
            // Before anything the guest can drive: the first KVM_RUN.
            if let Some(filter) = &ctx.filter {
                if let Err(e) = crate::seccomp::apply_filter(filter) {
                    ctx.exit
                        .report(VmExit::VcpuError(format!("vcpu {id}: installing its seccomp filter: {e}")));
                    return ManuallyDrop::into_inner(fd);
                }
            }
            // The caller's thread may block the kick signal; this one must receive it.
            let _ = unblock_signal(kick_signal());
            if let Some(exit) = run_loop(&mut fd, id, &ctx) {
                ctx.exit.report(exit);
            }
            ManuallyDrop::into_inner(fd)
        })?;
        Ok(VcpuThread { handle, immediate_exit })
    }
}

/// What a vcpu thread shares with the rest of the VMM.
#[derive(Clone)]
pub(crate) struct VcpuContext {
    pub(crate) pio: Bus,
    pub(crate) mmio: Bus,
    pub(crate) exit: Arc<ExitSignal>,
    pub(crate) stop: Arc<AtomicBool>,
    /// Set just before the first KVM_RUN (the boot vcpu's only).
    pub(crate) first_entry: Option<Arc<OnceLock<Instant>>>,
    /// The vcpu thread's seccomp filter, if any.
    pub(crate) filter: Option<Arc<seccompiler::BpfProgram>>,
}

/// Where a vcpu was when its guest triple-faulted: what there is to go on when the console
/// said nothing (the rip against the guest kernel's System.map).
fn where_it_stopped(fd: &VcpuFd, id: u8) -> String {
    match (fd.get_regs(), fd.get_sregs()) {
        (Ok(r), Ok(s)) => format!(
            "vcpu {id} at rip {:#x}, rsp {:#x}, rflags {:#x}, cr0 {:#x}, cr2 {:#x}, cr3 {:#x}, cr4 {:#x}, efer {:#x}",
            r.rip, r.rsp, r.rflags, s.cr0, s.cr2, s.cr3, s.cr4, s.efer
        ),
        (Err(e), _) | (_, Err(e)) => format!("vcpu {id} (its registers: {e})"),
    }
}

/// Runs the vcpu until the VM exits (the exit to report) or it is told to stop (None).
fn run_loop(fd: &mut VcpuFd, id: u8, ctx: &VcpuContext) -> Option<VmExit> {
    if let Some(first) = &ctx.first_entry {
        first.get_or_init(Instant::now);
    }
    let error = |what: String| Some(VmExit::VcpuError(format!("vcpu {id}: {what}")));
    loop {
        match fd.run() {
            Ok(VcpuExit::IoIn(port, data)) => _ = ctx.pio.read(u64::from(port), data),
            Ok(VcpuExit::IoOut(port, data)) => _ = ctx.pio.write(u64::from(port), data),
            Ok(VcpuExit::MmioRead(addr, data)) => _ = ctx.mmio.read(addr, data),
            Ok(VcpuExit::MmioWrite(addr, data)) => _ = ctx.mmio.write(addr, data),
            Ok(VcpuExit::Shutdown) => return Some(VmExit::TripleFault(where_it_stopped(fd, id))),
            Ok(VcpuExit::SystemEvent(KVM_SYSTEM_EVENT_SHUTDOWN | KVM_SYSTEM_EVENT_RESET, _)) => {
                return Some(VmExit::Reset)
            }
            Ok(VcpuExit::FailEntry(reason, cpu)) => {
                return error(format!(
                    "KVM_EXIT_FAIL_ENTRY, hardware entry failure reason {reason:#x} on host cpu {cpu}"
                ))
            }
            Ok(VcpuExit::InternalError) => {
                // SAFETY: the exit reason is KVM_EXIT_INTERNAL_ERROR, so `internal` is the union
                // member the kernel filled in.
                let internal = unsafe { fd.get_kvm_run().__bindgen_anon_1.internal };
                let n = (internal.ndata as usize).min(internal.data.len());
                return error(format!(
                    "KVM_EXIT_INTERNAL_ERROR, suberror {} data {:x?}",
                    internal.suberror,
                    &internal.data[..n]
                ));
            }
            Ok(VcpuExit::Intr) => {
                if ctx.stop.load(Ordering::SeqCst) {
                    return None;
                }
            }
            // Not possible with the in-kernel irqchip (a halted vcpu waits in the kernel).
            Ok(VcpuExit::Hlt) => return error("KVM_EXIT_HLT without an in-kernel irqchip".into()),
            Ok(other) => return error(format!("unexpected exit {other:?}")),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                if ctx.stop.load(Ordering::SeqCst) {
                    return None;
                }
            }
            Err(e) => return error(format!("KVM_RUN: {e}")),
        }
    }
}

/// The signal that kicks a vcpu thread out of KVM_RUN.
pub fn kick_signal() -> c_int {
    SIGRTMIN()
}

extern "C" fn ignore_signal(_: c_int, _: *mut siginfo_t, _: *mut c_void) {}

/// Installs a handler that does nothing for [`kick_signal`]: delivering it is enough to make
/// KVM_RUN return, and without a handler it would kill the process.
pub fn install_kick_handler() -> Result<()> {
    register_signal_handler(kick_signal(), ignore_signal)
        .map_err(|e| Error::io("installing the vcpu kick signal handler", e.into()))
}

/// A running vcpu thread.
pub(crate) struct VcpuThread {
    handle: JoinHandle<VcpuFd>,
    /// `immediate_exit` in the vcpu's `kvm_run` mapping.
    immediate_exit: *mut u8,
}

impl VcpuThread {
    /// Makes KVM_RUN return now or at its next call. Set the stop flag first.
    pub(crate) fn kick(&self) {
        // SAFETY: the pointer is into the kvm_run mapping of the vcpu's fd. The thread returns the
        // fd rather than dropping it (and leaks it if it panics), so the mapping stays until
        // `join` drops the fd. KVM reads the byte at each KVM_RUN entry.
        unsafe { std::ptr::write_volatile(self.immediate_exit, 1) };
        fence(Ordering::SeqCst);
        // Fails only when the thread already ended, which is fine.
        let _ = self.handle.kill(kick_signal());
    }

    /// Waits for the thread and closes the vcpu fd.
    pub(crate) fn join(self) -> std::result::Result<(), String> {
        let name = self.handle.thread().name().unwrap_or("vcpu").to_string();
        match self.handle.join() {
            Ok(fd) => {
                drop(fd);
                Ok(())
            }
            Err(_) => Err(format!("{name} panicked")),
        }
    }
}
