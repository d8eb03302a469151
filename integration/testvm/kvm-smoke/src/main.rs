//! KVM smoke test: create a VM with one memory region holding a few real-mode instructions,
//! run its vcpu, and check that it exits on `out` to the serial port 0x3f8 with the byte 'K'
//! and then on `hlt`. Meant to run inside the test machine (integration/testvm), whose
//! /dev/kvm is an ordinary (emulated AMD-V) KVM; on a PVM host a real-mode guest may hang,
//! hence the watchdog.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::{Cap, Kvm, VcpuExit};

const GUEST_ADDR: u64 = 0x1000;
const MEM_SIZE: usize = 0x4000;
const TIMEOUT: Duration = Duration::from_secs(60);

/// mov dx, 0x3f8; mov al, 'K'; out dx, al; hlt
const CODE: [u8; 7] = [0xba, 0xf8, 0x03, 0xb0, b'K', 0xee, 0xf4];

fn main() -> ExitCode {
    std::thread::spawn(|| {
        std::thread::sleep(TIMEOUT);
        eprintln!("kvm-smoke: FAIL: the vcpu did not finish within {TIMEOUT:?} (a PVM host?)");
        std::process::exit(3);
    });
    match run() {
        Ok(()) => {
            println!("kvm-smoke: ok");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kvm-smoke: FAIL: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let start = Instant::now();
    let kvm = Kvm::new().map_err(|e| format!("open /dev/kvm: {e}"))?;
    println!(
        "kvm-smoke: KVM API version {}, max vcpus {}, irqchip {}, user memory {}",
        kvm.get_api_version(),
        kvm.get_max_vcpus(),
        kvm.check_extension(Cap::Irqchip),
        kvm.check_extension(Cap::UserMemory),
    );
    let vm = kvm.create_vm().map_err(|e| format!("KVM_CREATE_VM: {e}"))?;

    // SAFETY: an anonymous private mapping, checked below, unmapped only at exit.
    let mem = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            MEM_SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_ANONYMOUS | libc::MAP_PRIVATE | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if mem == libc::MAP_FAILED {
        return Err(format!("mmap: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: mem is MEM_SIZE writable bytes, CODE is shorter.
    unsafe { std::ptr::copy_nonoverlapping(CODE.as_ptr(), mem as *mut u8, CODE.len()) };

    let region = kvm_userspace_memory_region {
        slot: 0,
        guest_phys_addr: GUEST_ADDR,
        memory_size: MEM_SIZE as u64,
        userspace_addr: mem as u64,
        flags: 0,
    };
    // SAFETY: the region maps memory this process owns for the life of the VM.
    unsafe { vm.set_user_memory_region(region) }
        .map_err(|e| format!("KVM_SET_USER_MEMORY_REGION: {e}"))?;

    let mut vcpu = vm.create_vcpu(0).map_err(|e| format!("KVM_CREATE_VCPU: {e}"))?;
    let mut sregs = vcpu.get_sregs().map_err(|e| format!("KVM_GET_SREGS: {e}"))?;
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    vcpu.set_sregs(&sregs).map_err(|e| format!("KVM_SET_SREGS: {e}"))?;
    let mut regs = vcpu.get_regs().map_err(|e| format!("KVM_GET_REGS: {e}"))?;
    regs.rip = GUEST_ADDR;
    regs.rflags = 2;
    vcpu.set_regs(&regs).map_err(|e| format!("KVM_SET_REGS: {e}"))?;

    let mut out = Vec::new();
    loop {
        match vcpu.run().map_err(|e| format!("KVM_RUN: {e}"))? {
            VcpuExit::IoOut(port, data) => {
                if port != 0x3f8 {
                    return Err(format!("I/O exit to port {port:#x}, expected 0x3f8"));
                }
                out.extend_from_slice(data);
            }
            VcpuExit::Hlt => break,
            other => return Err(format!("unexpected exit {other:?}")),
        }
    }
    if out != b"K" {
        return Err(format!("the guest wrote {out:?} to port 0x3f8, expected \"K\""));
    }
    println!(
        "kvm-smoke: the vcpu wrote 'K' to port 0x3f8 and halted ({} ms)",
        start.elapsed().as_millis()
    );
    Ok(())
}
