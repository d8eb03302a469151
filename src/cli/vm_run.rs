//! `hull vm-run`: boot a microVM and run one command in a shared directory, for tests and
//! debugging the vm backend.

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::GlobalOpts;
use crate::logging;
use crate::vm::vm_run::Options;
use crate::vm::EXIT_VM_FAILED;

#[derive(clap::Args, Debug)]
#[command(after_help = "\
The guest kernel is --kernel, else $HULL_KERNEL, else `kernel` under [vm] in /etc/hull/config.toml \
($HULL_CONFIG names another file), else /usr/local/share/hull/vmlinuz (`just kernel` builds and installs it). \
HULL_KERNEL_PVM=1 (or `kernel_pvm = true`) marks it as built for PVM hosts.

The command runs as root with DIR as its root directory; the guest's /proc, /sys and /dev are bound onto \
DIR's directories of those names where DIR has them. Writes land in DIR on the host.

Exit status: the command's (128+N when a signal N killed it); 125 when vm-run itself fails: the kernel is \
missing or cannot run on this host, the VM cannot be built, the guest agent does not connect within \
--boot-timeout, or the guest stops before reporting the command's exit status (a kernel panic; --serial \
shows the console); 128+N when signal N interrupts vm-run before the command starts, or arrives a \
second time while it runs (the first is forwarded to the command; the second stops the VM).")]
pub struct Args {
    /// The guest kernel (bzImage or ELF vmlinux).
    #[arg(long)]
    pub kernel: Option<PathBuf>,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(32..=65536))]
    pub mem: u32,
    /// Number of vcpus.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=64))]
    pub cpus: u8,
    /// Host directory shared with the guest (virtio-fs, read-write): the command's root.
    #[arg(long, value_name = "DIR")]
    pub share: PathBuf,
    /// Working directory of the command, inside the share.
    #[arg(long, default_value = "/")]
    pub cwd: String,
    /// Set an environment variable for the command (repeatable).
    #[arg(long = "env", short = 'e', value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// Show the guest's serial console on stderr (kernel messages; slower boot).
    #[arg(long)]
    pub serial: bool,
    /// More kernel command line arguments.
    #[arg(long = "cmdline-extra", value_name = "ARGS", allow_hyphen_values = true)]
    pub cmdline_extra: Option<String>,
    /// Also write the initramfs made for this run to PATH (uncompressed newc cpio), e.g. to
    /// boot the same guest under another VMM (integration/bench/vm-bench.sh does). The VM
    /// still boots.
    #[arg(long = "dump-initramfs", value_name = "PATH", hide = true)]
    pub dump_initramfs: Option<PathBuf>,
    /// Give up when the guest agent has not connected after this many seconds.
    #[arg(long = "boot-timeout", value_name = "SECONDS", default_value_t = 60)]
    pub boot_timeout: u64,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

pub fn run(g: &GlobalOpts, a: Args) -> anyhow::Result<u8> {
    let opts = Options {
        kernel: a.kernel,
        mem_mib: a.mem,
        cpus: a.cpus,
        share: a.share,
        cwd: a.cwd,
        env: a.env,
        serial: a.serial,
        cmdline_extra: a.cmdline_extra,
        boot_timeout: Duration::from_secs(a.boot_timeout.max(1)),
        command: a.command,
        debug: g.debug,
        dump_initramfs: a.dump_initramfs,
    };
    match crate::vm::vm_run::run(opts) {
        Ok(code) => Ok(code),
        Err(err) => {
            // 125, not 1: the command's own exit status 1 must stay distinguishable.
            logging::error(&format!("vm-run: {err:#}"));
            Ok(EXIT_VM_FAILED)
        }
    }
}
