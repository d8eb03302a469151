//! `hull vm-run`: boot a microVM and run one command in a shared directory, for tests and
//! debugging the vm backend.

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::GlobalOpts;
use crate::logging;
use crate::vm::vm_run::{Options, TapArg};
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
    /// Give the guest a NIC (virtio-net, its eth0, eth1, ... in order) on the tap NAME in
    /// vm-run's network namespace, made when missing; MAC is the NIC's (default: a locally
    /// administered one from the tap's name). The guest configures nothing by itself.
    #[arg(long = "tap", value_name = "NAME[,MAC]")]
    pub taps: Vec<String>,
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
        taps: a.taps.iter().map(|t| parse_tap(t)).collect::<anyhow::Result<_>>()?,
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

/// `NAME[,MAC]` of `--tap`.
fn parse_tap(arg: &str) -> anyhow::Result<TapArg> {
    let (name, mac) = match arg.split_once(',') {
        Some((name, mac)) => (name, Some(mac)),
        None => (arg, None),
    };
    let mac = match mac {
        Some(m) => parse_mac(m)
            .ok_or_else(|| anyhow::anyhow!("--tap {arg}: {m:?} is not a MAC (aa:bb:cc:dd:ee:ff)"))?,
        None => mac_from_name(name),
    };
    Ok(TapArg { name: name.to_string(), mac })
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for byte in &mut mac {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// A locally administered unicast MAC that the name decides (the same tap, the same MAC).
fn mac_from_name(name: &str) -> [u8; 6] {
    // FNV-1a: stable across runs and builds, unlike std's hasher.
    let hash =
        name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let b = hash.to_le_bytes();
    [0x02, b[0], b[1], b[2], b[3], b[4]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tap_arguments_are_read_with_or_without_a_mac() {
        let t = parse_tap("tap0,02:00:00:aa:bb:cc").unwrap();
        assert_eq!((t.name.as_str(), t.mac), ("tap0", [2, 0, 0, 0xaa, 0xbb, 0xcc]));
        let t = parse_tap("tap1").unwrap();
        assert_eq!(t.mac[0], 0x02, "locally administered, unicast");
        assert_eq!(t.mac, parse_tap("tap1").unwrap().mac);
        assert_ne!(t.mac, parse_tap("tap2").unwrap().mac);
        for bad in ["tap0,02:00", "tap0,zz:00:00:00:00:00", "tap0,02:00:00:00:00:00:00"] {
            assert!(parse_tap(bad).unwrap_err().to_string().contains("not a MAC"), "{bad}");
        }
    }
}
