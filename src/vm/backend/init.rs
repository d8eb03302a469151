//! The VMM init: the forked child of `hull create` that becomes a VM container's init.
//!
//! In order: wait until the parent has put it in the container's cgroup; close what it
//! inherited; join the namespaces the spec names by path (the network namespace above all)
//! and make those it asks for, with a mount namespace of its own; have the parent run the
//! createRuntime and prestart hooks, and run the createContainer hooks itself; block every
//! relayed signal; build the VM; enter the jail
//! (`jail`: its own root, few capabilities, a seccomp filter per thread); boot it (the vcpu
//! and session threads start only now, inside the cgroup and the jail); report Ready to the parent
//! when the agent greets; send the workload when `hull start` has opened the exec fifo; and
//! end with the workload's status. Everything the VMM cannot do before Ready is reported to
//! the parent, which prints it and removes what create made.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sched::CloneFlags;

use seccompiler::BpfProgram;

use super::binds::{self, Bind};
use super::jail::{self, seccomp::Filters};
use super::network;
use super::oom_relay::OomRelay;
use super::signals;
use super::sizing::Size;
use super::socket_dir::SocketDir;
use crate::agent::protocol::RunRequest;
use crate::agent::{AgentConfig, BINDS_TAG};
use crate::fd_relay;
use crate::native::namespaces;
use crate::native::sync::{Msg, SyncSocket};
use crate::vm::session::{Relay, Report, Session, StartGate};
use crate::vm::{cmdline, initramfs, AGENT_PORT, EXIT_VM_FAILED, GUEST_CID, SHARE_MOUNT_POINT, SHARE_TAG};

/// `HULL_VM_SERIAL=1`: the guest's serial console goes to the VMM's stderr (the container's).
pub const SERIAL_ENV: &str = "HULL_VM_SERIAL";

/// The namespaces the VMM joins when the spec names them by path. A pid, user, mount or time
/// namespace by path is for the workload, which lives in the guest.
const JOINED: [CloneFlags; 4] = [
    CloneFlags::CLONE_NEWNET,
    CloneFlags::CLONE_NEWIPC,
    CloneFlags::CLONE_NEWUTS,
    CloneFlags::CLONE_NEWCGROUP,
];

/// What the init needs, worked out by the parent before the fork.
pub struct VmmInit {
    pub kernel: vmm::KernelImage,
    pub kernel_pvm: bool,
    pub size: Size,
    pub boot_timeout: Duration,
    pub request: RunRequest,
    pub share: PathBuf,
    pub read_only: bool,
    pub binds: Vec<Bind>,
    /// The spec the agent creates the container from (`guest_spec`).
    pub guest_spec: serde_json::Value,
    /// Where the bind mounts are staged for their share (in the container's directory).
    pub binds_dir: PathBuf,
    /// Where the VMM's root is made (an empty directory in the container's directory, for
    /// the host).
    pub jail_dir: PathBuf,
    pub fifo_path: PathBuf,
    /// The VMM's vsock unix socket; the agent's connection comes in on `listen_path`.
    pub vsock_path: PathBuf,
    pub listen_path: PathBuf,
    /// The preserved fds (3+index of `hull create`, inherited), and where their relay
    /// listens for the guest's streams.
    pub preserved: Vec<crate::fd_relay::Preserved>,
    pub relay_path: PathBuf,
    pub namespaces: namespaces::Plan,
    /// The spec's hooks: with any that runs at create, or a startContainer hook, the parent
    /// runs prestart and createRuntime and sends the state the rest get.
    pub hooks: Option<oci_spec::runtime::Hooks>,
    pub serial: bool,
    /// The connected console socket, with process.terminal.
    pub console: Option<OwnedFd>,
    /// process.consoleSize: (rows, cols).
    pub console_size: Option<(u16, u16)>,
    /// Born in a user namespace of its own, hull being an ordinary user (`userns`).
    pub own_userns: bool,
}

/// How the workload ended, as the VMM must end.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Exit(i32),
    Signaled(i32),
}

/// Set once `create` has heard Ready and returned: from then on a failure is the init's to say.
static READY_SENT: AtomicBool = AtomicBool::new(false);

/// The init's whole life; it never returns to the lifecycle's code.
pub fn main(sock: SyncSocket, init: VmmInit) -> ! {
    let sock = Arc::new(sock);
    match run(&sock, init) {
        Ok(Outcome::Exit(code)) => std::process::exit(code),
        Ok(Outcome::Signaled(signo)) => signals::die_of(signo),
        Err(msg) => {
            // Before Ready the parent (`create`) is listening and says it, once; after, this
            // is the container's stderr and hull's log.
            let told_create =
                !READY_SENT.load(Ordering::SeqCst) && sock.send(&Msg::Error { msg: msg.clone() }).is_ok();
            if !told_create {
                crate::logging::error(&format!("vm container: {msg}"));
            }
            std::process::exit(i32::from(EXIT_VM_FAILED))
        }
    }
}

fn run(sock: &Arc<SyncSocket>, mut init: VmmInit) -> Result<Outcome, String> {
    let in_own_cgroup = match sock.recv() {
        // Rootless without a cgroup of its own, the path is empty: the VMM is in its caller's.
        Ok(Some(Msg::CgroupReady { path })) => !path.is_empty(),
        Ok(Some(Msg::Error { msg })) => return Err(msg),
        _ => return Err("create gave up before the VMM was placed in the cgroup".into()),
    };
    // The VMM holds guest memory: no core dumps, no ptrace by the container's users. It never
    // execs, and no_new_privs says so to the kernel; the rest of the jail comes once the VM is
    // built (`jail`).
    // A protection that did not hold fails the container.
    nix::sys::prctl::set_dumpable(false).map_err(|e| format!("making the VMM non-dumpable: {e}"))?;
    nix::sys::prctl::set_no_new_privs().map_err(|e| format!("setting no_new_privs on the VMM: {e}"))?;
    let terminal = match init.console.take() {
        Some(socket) => {
            take_terminal(socket, init.console_size)?;
            true
        }
        None => false,
    };
    // In the cgroup, with its capabilities, before a cgroup namespace hides the cgroup's path.
    // Not in a cgroup that is not the container's: the relay would fill the caller's own
    // (a rootless user's session) until the host killed something of theirs.
    let oom_relay = match in_own_cgroup.then(OomRelay::prepare) {
        None => {
            crate::logging::debug(
                "the guest's OOMs are not relayed: the VMM has no cgroup of its own (rootless)",
            );
            None
        }
        Some(Ok(relay)) => Some(relay),
        Some(Err(why)) => {
            crate::logging::debug(&format!("the guest's OOMs are not relayed to the host cgroup: {why}"));
            None
        }
    };
    // Out of the range 3..3+N before it is closed: the relay thread holds them from here on.
    let preserved = fd_relay::host::take(&init.preserved)?;
    let mut keep = vec![sock.as_fd().as_raw_fd(), init.kernel.file.as_raw_fd()];
    keep.extend(oom_relay.iter().flat_map(OomRelay::fds));
    keep.extend(fd_relay::host::raw_fds(&preserved));
    close_inherited(&keep)?;
    enter_namespaces(&init.namespaces)?;
    let hook_state = if crate::hooks::init_needs_state(init.hooks.as_ref()) {
        Some(run_hooks(sock, init.hooks.as_ref())?)
    } else {
        None
    };
    // The prestart and createContainer hooks have run (Docker makes its veth in one): the
    // namespace's interfaces are as the container gets them. Only a network namespace of the
    // container's own: tying the host's interfaces to the guest would take the host's traffic.
    let net = CloneFlags::CLONE_NEWNET;
    let own_netns =
        init.namespaces.create.contains(net) || init.namespaces.joins.iter().any(|(f, _)| *f == net);
    let network = if own_netns {
        let mut plumbing = network::plumb()?;
        // A namespace of the container's own, with lo only: an interface may still come
        // before `start` (ctr run --cni), on a spare NIC.
        if plumbing.nics.is_empty() && init.namespaces.create.contains(net) {
            network::spare(&mut plumbing)?;
        }
        plumbing
    } else if init.own_userns {
        // An ordinary user's spec (`hull spec --rootless`) has no network namespace: there is
        // nothing the VMM may tie to a tap, and no tap it may make (CAP_NET_ADMIN in the
        // host's namespace). Said once, as a fact of rootless VM containers.
        crate::logging::warn(
            "rootless: the VM container's guest has loopback only (an ordinary user's VMM can tie no host \
             interface to the guest: that needs CAP_NET_ADMIN in a network namespace the spec names)",
        );
        network::Plumbing::none()
    } else {
        crate::logging::warn(
            "the container shares the host's network namespace; a VM container's guest cannot: it has loopback only",
        );
        network::Plumbing::none()
    };
    if let Some(dir) = init.fifo_path.parent() {
        network::record(dir, &network)?;
    }
    // Before the first thread: every thread the VMM makes inherits the mask.
    let signals = signals::block_relayed().map_err(|e| format!("blocking signals: {e}"))?;
    boot(sock, init, signals, terminal, hook_state, Relays { oom: oom_relay, preserved }, network)
}

/// What the VMM relays besides the workload's stdio and signals.
struct Relays {
    /// The guest's OOM kills, into the host cgroup.
    oom: Option<OomRelay>,
    /// The preserved fds, taken out of the inherited range.
    preserved: Vec<fd_relay::host::Taken>,
}

/// Has the parent run prestart and createRuntime, then runs the createContainer hooks here:
/// on the host, in the VMM's namespaces (the container's network, ipc and uts namespaces and
/// a mount namespace of its own), before the VM exists. They name host programs and, like
/// the NVIDIA toolkit's, change the container's rootfs from the host, which the guest then
/// sees through its share; the guest has no host program to run them with. Returns the
/// state JSON the parent sent, for the startContainer hooks the guest runs.
fn run_hooks(
    sock: &SyncSocket,
    hooks: Option<&oci_spec::runtime::Hooks>,
) -> Result<serde_json::Value, String> {
    sock.send(&Msg::RunHooks).map_err(|e| format!("write to create: {e}"))?;
    let state = match sock.recv() {
        Ok(Some(Msg::HooksDone { state })) => state,
        Ok(Some(Msg::Error { msg })) => return Err(msg),
        _ => return Err("create gave up while running hooks".into()),
    };
    let kind = crate::hooks::Kind::CreateContainer;
    crate::hooks::run_in(hooks, kind, &crate::hooks::in_container(&state, "creating"))
        .map_err(|e| e.to_string())?;
    Ok(state)
}

/// process.terminal: a pty on the host whose master goes out over the console socket, as a
/// native init's does, and whose slave becomes the VMM's stdio (raw: the guest's pty does
/// the line discipline) and controlling terminal, so a size change on the master reaches the
/// VMM as SIGWINCH and goes on to the guest.
pub(super) fn take_terminal(socket: OwnedFd, size: Option<(u16, u16)>) -> Result<(), String> {
    let slave = crate::native::console::setup_exec(socket.as_fd(), size, 0, 0).map_err(|e| e.to_string())?;
    drop(socket);
    nix::unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
    crate::native::console::make_stdio(&slave).map_err(|e| e.to_string())?;
    let mut termios = nix::sys::termios::tcgetattr(&slave).map_err(|e| format!("tcgetattr: {e}"))?;
    nix::sys::termios::cfmakeraw(&mut termios);
    nix::sys::termios::tcsetattr(&slave, nix::sys::termios::SetArg::TCSANOW, &termios)
        .map_err(|e| format!("tcsetattr: {e}"))
}

/// Builds the VM, runs it to the end, and works out how the workload ended.
fn boot(
    sock: &Arc<SyncSocket>,
    init: VmmInit,
    signals: nix::sys::signalfd::SignalFd,
    terminal: bool,
    hook_state: Option<serde_json::Value>,
    relays: Relays,
    network: network::Plumbing,
) -> Result<Outcome, String> {
    let Relays { oom: oom_relay, preserved } = relays;
    let agent = AgentConfig {
        port: AGENT_PORT,
        share_tag: SHARE_TAG.to_string(),
        mount_point: SHARE_MOUNT_POINT.to_string(),
        debug: init.serial,
        binds: binds::for_guest(&init.binds),
        exec_port: Some(crate::vm::EXEC_PORT),
        container: Some(init.guest_spec),
        hook_state,
        network: Some(network.guest),
        preserved: init.preserved.clone(),
    };
    let mut shares = vec![vmm::FsShare {
        tag: SHARE_TAG.to_string(),
        path: init.share.clone(),
        read_only: init.read_only,
    }];
    // What the VMM still opens once jailed: the shares (by the real path the file server
    // reopens them with), the agent's listener, which the vsock connects to, and the exec fifo.
    let mut kept = vec![canonical(&init.share)?, init.listen_path.clone(), init.fifo_path.clone()];
    if !init.binds.is_empty() {
        // In the VMM's own mount namespace: the host never sees these mounts.
        binds::stage(&init.binds, &init.binds_dir, init.own_userns)?;
        kept.push(canonical(&init.binds_dir)?);
        shares.push(vmm::FsShare { tag: BINDS_TAG.to_string(), path: init.binds_dir, read_only: false });
    }
    let initramfs = initramfs::build(&agent).map_err(|e| format!("making the guest's initramfs: {e:#}"))?;
    // The sockets' names, by the state directory's descriptor when their paths are too long
    // for an address (`<vsock>_<port>` is the longest name).
    let socket_dir = init.vsock_path.parent().unwrap_or(std::path::Path::new("/"));
    let longest = format!("vsock_{}", AGENT_PORT.max(fd_relay::PORT));
    let mut sockets = SocketDir::open(socket_dir, &longest)?;
    let listener = UnixListener::bind(sockets.address(&init.listen_path))
        .map_err(|e| format!("listening on {}: {e}", init.listen_path.display()))?;
    // The guest's relay connects to its port once the container exists: the vsock device
    // connects to this path from inside the jail.
    let (fd_relay, preserved_drained) = if preserved.is_empty() {
        (None, None)
    } else {
        let relay_listener = UnixListener::bind(sockets.address(&init.relay_path))
            .map_err(|e| format!("listening on {}: {e}", init.relay_path.display()))?;
        kept.push(init.relay_path.clone());
        let (relay, drained) = fd_relay::host::relay(preserved, relay_listener)?;
        (Some(relay), Some(drained))
    };
    // Without HULL_VM_SERIAL the console is still on, `quiet` (errors only), and its tail is
    // kept for the message of a guest that dies.
    let console = vmm::ConsoleTail::new(CONSOLE_TAIL_BYTES);
    let serial = if init.serial {
        crate::vm::vm_run::serial_to_stderr().map_err(|e| format!("{e:#}"))?
    } else {
        vmm::SerialOutput::Tail(console.clone())
    };
    let filters = Filters::build(jail::seccomp::mismatch()).map_err(|e| format!("jailing the VMM: {e}"))?;
    let vm_config = vmm::VmConfig {
        vcpus: init.size.vcpus,
        mem_mib: init.size.mem_mib,
        kernel: init.kernel,
        initramfs: Some(initramfs.image),
        cmdline: cmdline::build(init.serial, None),
        serial,
        vsock: Some(vmm::VsockConfig { guest_cid: GUEST_CID, uds_path: sockets.address(&init.vsock_path) }),
        shares,
        nets: network.nics,
        kernel_supports_pvm: init.kernel_pvm,
        vcpu_filter: Some(filters.vcpu),
    };
    let vm = vmm::Vmm::build(vm_config).map_err(|e| format!("building the VM: {e}"))?;
    // /dev/kvm, the kernel and the shares are open: into the jail, before any thread of the VMM
    // exists (each starts with what this one keeps).
    jail::root::enter(&init.jail_dir, &kept).map_err(|e| format!("jailing the VMM: {e}"))?;
    sockets.reopen_in_jail().map_err(|e| format!("jailing the VMM: {e}"))?;
    jail::caps::drop_capabilities().map_err(|e| format!("jailing the VMM: {e}"))?;
    let (released_rx, released_tx) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    let (quit_rx, quit_tx) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    let (started_rx, started_tx) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    let ready_sock = Arc::clone(sock);
    let fifo_path = init.fifo_path;
    let fifo_filter = filters.exec_fifo;
    let stopper = vm.handle();
    let session = Session {
        listener,
        vmm: vm.handle(),
        request: init.request,
        signals,
        quit: quit_rx,
        boot_timeout: init.boot_timeout,
        boot_hint:
            "boot_timeout_s under [vm] in the config file; HULL_VM_SERIAL=1 shows the guest console on \
                    the container's stderr",
        gate: Some(StartGate {
            on_ready: Box::new(move || {
                // `create` returns now; the workload waits for `start`.
                let _ = ready_sock.send(&Msg::Ready);
                READY_SENT.store(true, Ordering::SeqCst);
                wait_for_start(fifo_path, released_tx, started_rx, fifo_filter);
            }),
            released: released_rx,
            started: started_tx,
        }),
        relay: Relay::Every,
        terminal,
        oom_relay,
        preserved_drained,
    };
    if let Some(relay) = fd_relay {
        let relay_filter = filters.fd_relay;
        std::thread::Builder::new()
            .name("fd-relay".into())
            .spawn(move || match vmm::seccomp::apply_filter(&relay_filter) {
                Ok(()) => relay.run(),
                Err(e) => crate::logging::error(&format!(
                    "vm container: the preserved fds' relay's seccomp filter: {e}"
                )),
            })
            .map_err(|e| format!("starting the preserved fds' relay: {e}"))?;
    }
    let session_filter = filters.session;
    let talker = std::thread::Builder::new()
        .name("vm-session".into())
        .spawn(move || match vmm::seccomp::apply_filter(&session_filter) {
            Ok(()) => session.run(),
            Err(e) => {
                stopper.stop();
                let failure = Some(format!("installing the session thread's seccomp filter: {e}"));
                Report { failure, stopped_vm: true, ..Default::default() }
            }
        })
        .map_err(|e| format!("starting the session thread: {e}"))?;
    // This thread runs the event loop and serves the shares from here on.
    vmm::seccomp::apply_filter(&filters.event_loop)
        .map_err(|e| format!("installing the event loop's seccomp filter: {e}"))?;
    let result = vm.run();
    drop(quit_tx);
    let report = talker.join().map_err(|_| "the session thread panicked".to_string())?;
    outcome(
        report,
        result.map(|(exit, _timeline)| exit),
        &console_excerpt(console.last_lines(CONSOLE_KEPT_LINES)),
    )
}

/// How much of the guest console the VMM keeps, and how many of its lines an error shows.
const CONSOLE_TAIL_BYTES: usize = 8192;
const CONSOLE_KEPT_LINES: usize = 200;
const CONSOLE_SHOWN_LINES: usize = 20;
/// How many lines from a panic's first line on an error shows: its call trace can run past
/// [`CONSOLE_SHOWN_LINES`], and the panic's own line is the one that says why.
const PANIC_SHOWN_LINES: usize = 40;

/// The console lines an error shows: from the kernel's panic line on when there is one (the
/// trace after it, at most [`PANIC_SHOWN_LINES`]), else the last [`CONSOLE_SHOWN_LINES`].
fn console_excerpt(lines: Vec<String>) -> Vec<String> {
    let start = match lines.iter().rposition(|l| l.contains("Kernel panic - not syncing")) {
        Some(panic) => panic,
        None => lines.len().saturating_sub(CONSOLE_SHOWN_LINES),
    };
    // Without a panic, start is within CONSOLE_SHOWN_LINES of the end, so this cap only bites
    // on a panic's trace.
    lines[start..(start + PANIC_SHOWN_LINES).min(lines.len())].to_vec()
}

/// `path` with every symlink resolved: the path the VMM's file server opens a share by.
fn canonical(path: &std::path::Path) -> Result<PathBuf, String> {
    std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// A thread that blocks opening the exec fifo for writing, as a native init does, until
/// `hull start` opens it for reading; then writes the byte start reads and tells the session
/// (one byte on `released`). Closing `released` without a byte means the fifo could not be
/// opened: the session then stops the VM instead of starting the workload.
///
/// Like a native init, it holds the fifo open until the program runs (the session closes
/// `started` when the agent says so, or when it ends), since `start` reads to the fifo's end
/// and only then runs the poststart hooks; bounded by [`STARTED_TIMEOUT`], so that a guest
/// that never answers cannot hold `start` for ever.
fn wait_for_start(fifo: PathBuf, released: OwnedFd, started: OwnedFd, filter: BpfProgram) {
    let spawned = std::thread::Builder::new().name("exec-fifo".into()).spawn(move || {
        if let Err(e) = vmm::seccomp::apply_filter(&filter) {
            crate::logging::error(&format!("vm container: the exec fifo thread's seccomp filter: {e}"));
            return;
        }
        let opened = std::fs::OpenOptions::new()
            .write(true)
            .open(&fifo)
            .and_then(|mut f| f.write_all(b"0").map(|()| f));
        match opened {
            Ok(held) => {
                let _ = nix::unistd::write(&released, b"1");
                let mut fds = [PollFd::new(started.as_fd(), PollFlags::POLLIN)];
                let deadline = Instant::now() + STARTED_TIMEOUT;
                // Readable (end of file) once the session let go of its end.
                while !poll_ready(&mut fds, deadline) {}
                drop(held);
            }
            Err(e) => crate::logging::error(&format!("vm container: exec fifo {}: {e}", fifo.display())),
        }
    });
    if let Err(e) = spawned {
        crate::logging::error(&format!("vm container: starting the exec fifo thread: {e}"));
    }
}

/// How long `hull start` may wait for the agent to say the workload runs.
const STARTED_TIMEOUT: Duration = Duration::from_secs(30);

/// One poll of `fds` until `deadline`: true when it is ready or the deadline passed (false
/// on EINTR, to poll again).
fn poll_ready(fds: &mut [PollFd], deadline: Instant) -> bool {
    let left = deadline.saturating_duration_since(Instant::now());
    let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
    match nix::poll::poll(fds, PollTimeout::from(ms)) {
        Ok(n) => n > 0 || Instant::now() >= deadline,
        Err(nix::errno::Errno::EINTR) => false,
        Err(_) => true,
    }
}

/// How the VMM ends: the workload's exit code or signal, a signal that came before the
/// workload started (as it would have killed a native init waiting on the fifo), or the
/// failure that stopped the VM.
fn outcome(
    report: Report,
    result: Result<vmm::VmExit, vmm::Error>,
    console: &[String],
) -> Result<Outcome, String> {
    if let Some(exit) = report.exit {
        return Ok(match exit.signal {
            Some(signo) => Outcome::Signaled(signo),
            None => Outcome::Exit(exit.code.clamp(0, 255)),
        });
    }
    if let Some(signo) = report.interrupted {
        return Ok(Outcome::Signaled(signo));
    }
    if let Some(msg) = report.agent_error {
        return Err(format!("the guest agent failed: {msg}"));
    }
    if let Some(msg) = report.failure {
        return Err(msg);
    }
    // Before its agent connected the guest was still booting: nothing of the container ran.
    let when = if report.agent_ready.is_none() {
        "while booting, before its agent connected"
    } else {
        "before the workload reported an exit status"
    };
    let how = match result {
        Err(e) => return Err(format!("running the VM: {e}")),
        Ok(vmm::VmExit::VcpuError(e)) => return Err(format!("the VM failed: {e}")),
        Ok(vmm::VmExit::TripleFault(at)) => {
            &format!("the guest's CPU triple-faulted (KVM_EXIT_SHUTDOWN, {at})")
        }
        Ok(vmm::VmExit::Reset) => "the guest rebooted (a kernel panic reboots it)",
        Ok(vmm::VmExit::Stopped) => "the VM was stopped",
    };
    let console = if console.is_empty() {
        format!(
            "the guest console printed no error ({SERIAL_ENV}=1 shows all of it on the container's stderr)"
        )
    } else {
        format!("the guest console's last lines:\n  | {}", console.join("\n  | "))
    };
    Err(format!("the guest stopped {when}: {how}; {console}"))
}

/// Closes every inherited fd above stdio but `keep` and hull's log: the container
/// directory's lock above all, which `start` and `delete` take.
pub(super) fn close_inherited(keep: &[i32]) -> Result<(), String> {
    let log = crate::logging::log_fd().unwrap_or(-1);
    let entries = std::fs::read_dir("/proc/self/fd").map_err(|e| format!("list /proc/self/fd: {e}"))?;
    let fds: Vec<i32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .filter(|fd| *fd > 2 && *fd != log && !keep.contains(fd))
        .collect();
    for fd in fds {
        // SAFETY: an fd this process inherited and never uses again; the read_dir handle is
        // dropped, so this cannot close it under us (a stale number fails with EBADF).
        unsafe { libc::close(fd) };
    }
    Ok(())
}

/// Joins the network, IPC, UTS and cgroup namespaces the spec names by path, makes those of
/// these kinds it asks for, and a mount namespace of the VMM's own whose mounts do not
/// propagate back to the host.
fn enter_namespaces(spec_plan: &namespaces::Plan) -> Result<(), String> {
    let joins = spec_plan.joins.iter().filter(|(f, _)| JOINED.contains(f)).cloned().collect();
    let made = JOINED.iter().fold(CloneFlags::empty(), |acc, f| acc | (spec_plan.create & *f));
    let plan = namespaces::Plan { joins, create: made | CloneFlags::CLONE_NEWNS };
    let opened = plan.open_joins().map_err(|e| e.to_string())?;
    namespaces::join(&opened).map_err(|e| e.to_string())?;
    namespaces::create(plan.create).map_err(|e| e.to_string())?;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(|e| format!("make the VMM's mounts private: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::protocol::ExitReport;

    fn exited(code: i32, signal: Option<i32>) -> Report {
        Report { exit: Some(ExitReport { code, signal, shutdown: None }), ..Default::default() }
    }

    #[test]
    fn the_workloads_code_or_signal_is_the_vmms() {
        assert_eq!(outcome(exited(3, None), Ok(vmm::VmExit::Reset), &[]), Ok(Outcome::Exit(3)));
        assert_eq!(outcome(exited(137, Some(9)), Ok(vmm::VmExit::Reset), &[]), Ok(Outcome::Signaled(9)));
        let before_start = Report { interrupted: Some(libc::SIGTERM), ..Default::default() };
        assert_eq!(
            outcome(before_start, Ok(vmm::VmExit::Stopped), &[]),
            Ok(Outcome::Signaled(libc::SIGTERM))
        );
    }

    #[test]
    fn the_console_excerpt_keeps_a_panics_line() {
        let numbered = |n: usize| (0..n).map(|i| format!("line {i}")).collect::<Vec<_>>();
        assert_eq!(console_excerpt(numbered(50)), numbered(50)[30..]);
        let mut panicked = numbered(10);
        panicked.push("Kernel panic - not syncing: sysrq triggered crash".into());
        panicked.extend(numbered(30));
        let shown = console_excerpt(panicked.clone());
        assert_eq!(shown.len(), 31);
        assert!(shown[0].starts_with("Kernel panic") && shown[30] == "line 29", "{shown:?}");
        panicked.extend(numbered(60));
        assert_eq!(console_excerpt(panicked).len(), PANIC_SHOWN_LINES);
        assert!(console_excerpt(Vec::new()).is_empty());
    }

    #[test]
    fn failures_say_what_happened() {
        let timeout =
            Report { failure: Some("the guest agent did not connect".into()), ..Default::default() };
        assert_eq!(
            outcome(timeout, Ok(vmm::VmExit::Stopped), &[]),
            Err("the guest agent did not connect".into())
        );
        let err = outcome(Report::default(), Ok(vmm::VmExit::TripleFault("vcpu 0 at rip 0x1".into())), &[])
            .unwrap_err();
        assert!(
            err.contains("while booting")
                && err.contains("triple-faulted (KVM_EXIT_SHUTDOWN, vcpu 0 at rip 0x1)")
                && err.contains(SERIAL_ENV),
            "{err}"
        );
        let connected = Report { agent_ready: Some(std::time::Instant::now()), ..Default::default() };
        let console = ["Kernel panic - not syncing: oops".to_string()];
        let err = outcome(connected, Ok(vmm::VmExit::Reset), &console).unwrap_err();
        assert!(
            err.contains("before the workload reported an exit status")
                && err.contains("rebooted")
                && err.ends_with("last lines:\n  | Kernel panic - not syncing: oops"),
            "{err}"
        );
    }
}
