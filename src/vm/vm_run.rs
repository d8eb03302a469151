//! `hull vm-run`, the host side: boot a microVM with hull as its init, run one command in a
//! shared directory, relay its stdio and signals, and exit with its status.
//!
//! Order matters for failing fast and leaving nothing behind: everything that can be checked
//! without booting (the share, the kernel, a PVM host, the initramfs) is checked before the
//! private directory and the vsock listener exist; the listener is up before the VM boots, so
//! the agent's connection needs no retry; the VMM runs on this thread (Vmm::run blocks) and
//! the conversation with the agent on another ([`super::session`]).

use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::session::{Report, Session};
use super::timeline::Marks;
use super::{cmdline, config, initramfs, kernel, AGENT_PORT, GUEST_CID, SHARE_MOUNT_POINT, SHARE_TAG};
use crate::agent::protocol::RunRequest;
use crate::agent::AgentConfig;
use crate::logging;

/// The environment the command starts with; `--env` adds to it and overrides it.
const BASE_ENV: [&str; 2] =
    ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"];
/// The signals vm-run passes on to the command.
const FORWARDED: [Signal; 4] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGQUIT];

#[derive(Debug, Clone)]
pub struct Options {
    pub kernel: Option<PathBuf>,
    pub mem_mib: u32,
    pub cpus: u8,
    pub share: PathBuf,
    pub cwd: String,
    pub env: Vec<String>,
    pub serial: bool,
    pub cmdline_extra: Option<String>,
    pub boot_timeout: Duration,
    pub command: Vec<String>,
    pub debug: bool,
    /// Write the initramfs here too (`--dump-initramfs`, for benchmarks against other VMMs).
    pub dump_initramfs: Option<PathBuf>,
    /// NICs on taps (`--tap`).
    pub taps: Vec<TapArg>,
}

/// A `--tap`: the tap's name and the guest NIC's MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapArg {
    pub name: String,
    pub mac: [u8; 6],
}

/// Runs the command in a VM; Ok is the command's exit status (or 128 + a signal that
/// interrupted vm-run before the command started), Err is vm-run's own failure.
pub fn run(opts: Options) -> anyhow::Result<u8> {
    let mut marks = Marks { started: Some(Instant::now()), ..Default::default() };
    let share = check_share(&opts.share)?;
    let request = run_request(&opts)?;

    let config = config::load()?;
    let choice = kernel::choose(opts.kernel.as_deref(), |k| std::env::var(k).ok(), &config)?;
    let kernel_image = kernel::open(&choice)?;
    // A stock kernel on a PVM host hangs without a word: refuse before anything is made.
    vmm::pvm::check(&choice.path, choice.pvm)?;
    logging::debug(&format!(
        "guest kernel {} ({}), pvm: {}",
        choice.path.display(),
        choice.source,
        choice.pvm
    ));

    let agent = AgentConfig {
        port: AGENT_PORT,
        share_tag: SHARE_TAG.to_string(),
        mount_point: SHARE_MOUNT_POINT.to_string(),
        debug: opts.debug,
        binds: Vec::new(),
        exec_port: None,
        container: None,
        hook_state: None,
        network: None,
        preserved: Vec::new(),
    };
    let initramfs = initramfs::build(&agent).context("making the guest's initramfs")?;
    marks.initramfs_built = Some(Instant::now());
    marks.initramfs_bytes = initramfs.image.len();
    logging::debug(&format!("initramfs: {} bytes from {:?}", initramfs.image.len(), initramfs.files));
    if let Some(path) = &opts.dump_initramfs {
        std::fs::write(path, &initramfs.image)
            .with_context(|| format!("--dump-initramfs: writing {}", path.display()))?;
    }

    // Blocked on this thread before any other exists, so every thread (the VMM's too)
    // inherits the mask and the signals only ever arrive through the signalfd.
    let signals = forwarded_signals()?;
    let rundir = super::rundir::RunDir::create()?;
    let port_suffix = format!("_{AGENT_PORT}");
    let uds_path = rundir.socket_path("vsock", &port_suffix)?;
    let agent_socket = PathBuf::from(format!("{}{port_suffix}", uds_path.display()));
    let listener = UnixListener::bind(&agent_socket)
        .with_context(|| format!("listening on {}", agent_socket.display()))?;

    let vm_config = vmm::VmConfig {
        vcpus: opts.cpus,
        mem_mib: opts.mem_mib,
        kernel: kernel_image,
        initramfs: Some(initramfs.image),
        cmdline: cmdline::build(opts.serial, opts.cmdline_extra.as_deref()),
        serial: if opts.serial { serial_to_stderr()? } else { vmm::SerialOutput::Off },
        vsock: Some(vmm::VsockConfig { guest_cid: GUEST_CID, uds_path }),
        shares: vec![vmm::FsShare { tag: SHARE_TAG.to_string(), path: share, read_only: false }],
        nets: opts
            .taps
            .iter()
            .map(|t| {
                let tap = vmm::devices::virtio::net::Tap::open(&t.name)
                    .with_context(|| format!("--tap {}", t.name))?;
                Ok(vmm::NetConfig { tap, mac: t.mac, mtu: None })
            })
            .collect::<anyhow::Result<_>>()?,
        kernel_supports_pvm: choice.pvm,
        vcpu_filter: None,
    };
    logging::debug(&format!("kernel command line: {}", vm_config.cmdline));
    let vm = vmm::Vmm::build(vm_config).context("building the VM")?;

    let (quit_rx, quit_tx) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe")?;
    let session = Session {
        listener,
        vmm: vm.handle(),
        request,
        signals,
        quit: quit_rx,
        boot_timeout: opts.boot_timeout,
        boot_hint: "--boot-timeout; run with --serial to see the guest console",
        gate: None,
        relay: super::session::Relay::FirstThenStop,
        terminal: false,
        oom_relay: None,
        preserved_drained: None,
    };
    let talker = std::thread::Builder::new()
        .name("vm-run-session".into())
        .spawn(move || session.run())
        .context("starting the session thread")?;
    let result = vm.run();
    // The VM is gone (every VMM thread joined): end the session, which reads what the guest
    // sent last.
    drop(quit_tx);
    let report = talker.join().map_err(|_| anyhow!("the session thread panicked"))?;
    drop(rundir);

    let (vm_exit, vmm_error) = match result {
        Ok((exit, timeline)) => {
            marks.add_vmm(&timeline);
            (Some(exit), None)
        }
        Err(e) => (None, Some(e)),
    };
    marks.agent_ready = report.agent_ready;
    marks.guest_uptime_ms = report.guest_uptime_ms;
    marks.command_started = report.command_started;
    marks.command_done = report.command_done;
    if marks.vm_exited.is_none() {
        marks.vm_exited = Some(Instant::now());
    }
    if opts.debug {
        eprint!("{}", marks.render());
    }
    outcome(report, vm_exit, vmm_error)
}

/// vm-run's exit status from what the session saw and how the VM ended.
fn outcome(
    report: Report,
    vm_exit: Option<vmm::VmExit>,
    vmm_error: Option<vmm::Error>,
) -> anyhow::Result<u8> {
    if let Some(exit) = report.exit {
        if let Some(what) = &exit.shutdown {
            logging::debug(&format!("the guest asked for {what} while the command ran"));
        }
        if let Some(vmm::VmExit::VcpuError(e)) = &vm_exit {
            logging::warn(&format!("the VM failed after the command exited: {e}"));
        }
        return Ok(u8::try_from(exit.code).unwrap_or(255));
    }
    if let Some(signo) = report.interrupted {
        let name = Signal::try_from(signo).map(|s| s.as_str()).unwrap_or("a signal");
        logging::error(&format!(
            "interrupted by {name} (before the command started, or a second signal while it ran); \
             the VM was stopped"
        ));
        return Ok(128u8.saturating_add(u8::try_from(signo).unwrap_or(0)));
    }
    if let Some(msg) = report.agent_error {
        bail!("the guest agent failed: {msg}");
    }
    if let Some(msg) = report.failure {
        bail!("{msg}");
    }
    if let Some(e) = vmm_error {
        return Err(anyhow!(e).context("running the VM"));
    }
    match vm_exit {
        Some(vmm::VmExit::Reset) | None => bail!(
            "the guest stopped before the agent reported an exit status (kernel panic? run with --serial to see \
             the console)"
        ),
        Some(vmm::VmExit::TripleFault(at)) => bail!(
            "the guest's CPU triple-faulted (KVM_EXIT_SHUTDOWN, {at}) before the agent reported an exit status; \
             run with --serial to see the console"
        ),
        Some(vmm::VmExit::Stopped) => bail!("the VM was stopped before the command reported an exit status"),
        Some(vmm::VmExit::VcpuError(e)) => bail!("the VM failed: {e}"),
    }
}

fn check_share(share: &Path) -> anyhow::Result<PathBuf> {
    let path = std::fs::canonicalize(share).with_context(|| format!("--share {}", share.display()))?;
    if !path.is_dir() {
        bail!("--share {}: not a directory", share.display());
    }
    Ok(path)
}

fn run_request(opts: &Options) -> anyhow::Result<RunRequest> {
    if opts.command.is_empty() {
        bail!("no command given: vm-run [OPTIONS] -- CMD [ARGS...]");
    }
    if !opts.cwd.starts_with('/') {
        bail!("--cwd {:?}: must be an absolute path (inside the share)", opts.cwd);
    }
    Ok(RunRequest {
        args: opts.command.clone(),
        env: merge_env(&opts.env)?,
        cwd: opts.cwd.clone(),
        user: None,
        terminal: false,
        process: None,
        sub_cgroups: Vec::new(),
        preserved: Vec::new(),
    })
}

/// BASE_ENV with `--env` entries added; a later entry replaces an earlier one of that name.
fn merge_env(extra: &[String]) -> anyhow::Result<Vec<String>> {
    let mut env: Vec<String> = BASE_ENV.iter().map(|s| s.to_string()).collect();
    for entry in extra {
        let Some((name, _)) = entry.split_once('=').filter(|(n, _)| !n.is_empty()) else {
            bail!("--env {entry:?}: expected NAME=VALUE");
        };
        env.retain(|e| e.split_once('=').map(|(n, _)| n) != Some(name));
        env.push(entry.clone());
    }
    Ok(env)
}

fn forwarded_signals() -> anyhow::Result<SignalFd> {
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(s);
    }
    set.thread_block().context("blocking the forwarded signals")?;
    SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).context("signalfd")
}

/// The guest's serial console goes to vm-run's stderr.
pub(super) fn serial_to_stderr() -> anyhow::Result<vmm::SerialOutput> {
    let fd = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .context("duplicating stderr for the serial console")?;
    Ok(vmm::SerialOutput::File(fd.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::protocol::ExitReport;

    #[test]
    fn env_entries_override_by_name() {
        let env = merge_env(&["HOME=/home/x".into(), "A=1".into(), "A=2".into()]).unwrap();
        assert_eq!(env, [BASE_ENV[0], "HOME=/home/x", "A=2"]);
        assert!(merge_env(&["NOEQUALS".into()]).is_err());
        assert!(merge_env(&["=x".into()]).is_err());
    }

    #[test]
    fn the_commands_status_wins() {
        let report = Report {
            exit: Some(ExitReport { code: 3, signal: None, shutdown: None }),
            failure: Some("late".into()),
            ..Default::default()
        };
        assert_eq!(outcome(report, Some(vmm::VmExit::Reset), None).unwrap(), 3);
    }

    #[test]
    fn a_reset_without_a_status_is_the_panic_message() {
        let err = outcome(Report::default(), Some(vmm::VmExit::Reset), None).unwrap_err().to_string();
        assert!(
            err.contains("stopped before the agent reported an exit status") && err.contains("--serial"),
            "{err}"
        );
    }

    #[test]
    fn an_interrupt_before_the_command_is_128_plus_the_signal() {
        let report = Report { interrupted: Some(libc::SIGINT), ..Default::default() };
        assert_eq!(outcome(report, Some(vmm::VmExit::Stopped), None).unwrap(), 130);
    }

    #[test]
    fn the_agents_error_is_reported_as_it_said() {
        let report = Report { agent_error: Some("mounting virtiofs: ENODEV".into()), ..Default::default() };
        let err = outcome(report, Some(vmm::VmExit::Reset), None).unwrap_err().to_string();
        assert!(err.contains("guest agent failed: mounting virtiofs"), "{err}");
    }
}
