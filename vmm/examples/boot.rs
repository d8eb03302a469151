//! Boots a kernel in the VMM and prints why it stopped and the boot timeline. For debugging:
//!
//!     boot --kernel K [--initrd I] [--cmdline "..."] [--mem MIB] [--cpus N] [--serial]
//!          [--share TAG=DIR]... [--vsock CID:UDS_PATH] [--stop-after SECONDS]
//!
//! `--serial` sends the guest's console (ttyS0) to stdout; `--share` adds a virtio-fs device
//! (`mount -t virtiofs TAG /mnt` in the guest), `--vsock` a virtio-vsock device; `--stop-after`
//! stops the VM from another thread through a `VmmHandle`.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use vmm::{FsShare, KernelImage, SerialOutput, VmConfig, Vmm, VsockConfig};

struct Args {
    kernel: PathBuf,
    initrd: Option<PathBuf>,
    cmdline: String,
    mem_mib: u32,
    cpus: u8,
    serial: bool,
    shares: Vec<FsShare>,
    vsock: Option<VsockConfig>,
    stop_after: Option<f64>,
}

const USAGE: &str =
    "usage: boot --kernel K [--initrd I] [--cmdline \"...\"] [--mem MIB] [--cpus N] [--serial] \
                     [--share TAG=DIR]... [--vsock CID:UDS_PATH] [--stop-after SECONDS]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        kernel: PathBuf::new(),
        initrd: None,
        cmdline: String::new(),
        mem_mib: 128,
        cpus: 1,
        serial: false,
        shares: Vec::new(),
        vsock: None,
        stop_after: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--kernel" => args.kernel = value()?.into(),
            "--initrd" => args.initrd = Some(value()?.into()),
            "--cmdline" => args.cmdline = value()?,
            "--mem" => args.mem_mib = value()?.parse().map_err(|e| format!("--mem: {e}"))?,
            "--cpus" => args.cpus = value()?.parse().map_err(|e| format!("--cpus: {e}"))?,
            "--stop-after" => {
                args.stop_after = Some(value()?.parse().map_err(|e| format!("--stop-after: {e}"))?)
            }
            "--share" => {
                let v = value()?;
                let (tag, dir) = v.split_once('=').ok_or("--share takes TAG=DIR")?;
                args.shares.push(FsShare { tag: tag.into(), path: dir.into(), read_only: false });
            }
            "--vsock" => {
                let v = value()?;
                let (cid, path) = v.split_once(':').ok_or("--vsock takes CID:UDS_PATH")?;
                let guest_cid = cid.parse().map_err(|e| format!("--vsock: {e}"))?;
                args.vsock = Some(VsockConfig { guest_cid, uds_path: path.into() });
            }
            "--serial" => args.serial = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if args.kernel.as_os_str().is_empty() {
        return Err(USAGE.into());
    }
    Ok(args)
}

/// Open fds and threads of this process, to show that `run` leaves none behind.
fn fds_and_threads() -> (usize, usize) {
    let count = |dir: &str| std::fs::read_dir(dir).map_or(0, |d| d.count());
    (count("/proc/self/fd"), count("/proc/self/task"))
}

fn run(args: Args) -> Result<(), String> {
    let before = fds_and_threads();
    let file = File::open(&args.kernel).map_err(|e| format!("{}: {e}", args.kernel.display()))?;
    let mut config = VmConfig::new(KernelImage { file, path: args.kernel.clone() });
    config.vcpus = args.cpus;
    config.mem_mib = args.mem_mib;
    config.cmdline = args.cmdline;
    config.shares = args.shares;
    config.vsock = args.vsock;
    if let Some(initrd) = &args.initrd {
        config.initramfs = Some(std::fs::read(initrd).map_err(|e| format!("{}: {e}", initrd.display()))?);
    }
    if args.serial {
        let stdout = std::io::stdout().as_fd().try_clone_to_owned().map_err(|e| format!("stdout: {e}"))?;
        config.serial = SerialOutput::File(File::from(stdout));
    }

    let vmm = Vmm::build(config).map_err(|e| e.to_string())?;
    if let Some(secs) = args.stop_after {
        let handle = vmm.handle();
        // Detached: it outlives `run` only if the VM ends first, and then stop() does nothing.
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs_f64(secs));
            handle.stop();
        });
    }
    let (exit, t) = vmm.run().map_err(|e| e.to_string())?;
    let since = |at: Option<Instant>| {
        at.map_or("-".to_string(), |i| format!("{:.3}s", (i - t.vmm_start).as_secs_f64()))
    };
    println!("VmExit: {exit:?}");
    println!(
        "timeline: built {} kernel_entry {} exited {}",
        since(t.built),
        since(t.kernel_entry),
        since(t.exited)
    );
    let after = fds_and_threads();
    // A --stop-after thread still sleeping is the one thread that may remain.
    println!(
        "fds before build {} after run {}; threads before {} after {}",
        before.0, after.0, before.1, after.1
    );
    Ok(())
}

fn main() -> ExitCode {
    match parse_args().and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("boot: {e}");
            ExitCode::FAILURE
        }
    }
}
