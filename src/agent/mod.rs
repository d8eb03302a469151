//! Agent mode: hull as PID 1 of a microVM guest.
//!
//! `hull vm-run` boots a kernel whose initramfs holds this same executable as `/init` and a
//! small config ([`AgentConfig`] at [`CONFIG_PATH`]). The kernel starts it as PID 1 with
//! argv[0] `/init`, which is how `main` knows to come here rather than parse a command line.
//! The agent mounts the basic filesystems and the virtio-fs share ([`init`]), connects to the
//! host over vsock ([`vsock`]), runs the command it is sent inside the share ([`run`],
//! [`spawn`]), reports its exit status, and reboots the guest, which ends the VM ([`power`]).
//!
//! PID 1 must never return or exit (the kernel would panic): every failure is printed on the
//! console ([`console`]) and ends in a reboot too.

pub mod console;
mod container;
mod exec;
pub mod init;
pub mod network;
mod oom_watch;
pub mod power;
pub mod protocol;
pub mod session;
pub mod spawn;
pub mod vsock;

use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use protocol::{ErrorReport, Frame};

/// Where the initramfs puts the agent's config.
pub const CONFIG_PATH: &str = "/etc/hull-agent.json";
/// argv[0] of the guest's init: `rdinit=/init` on the kernel command line.
pub const INIT_PATH: &str = "/init";

/// What the host tells the agent before boot, through the initramfs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentConfig {
    /// The vsock port on the host (CID 2) to connect to.
    pub port: u32,
    /// The virtio-fs tag of the shared root.
    pub share_tag: String,
    /// Where the share is mounted in the guest; the command's root.
    pub mount_point: String,
    /// Print progress on the console (seen with `vm-run --serial`).
    #[serde(default)]
    pub debug: bool,
    /// A VM container's bind mounts, all served in one share (tag [`BINDS_TAG`]) whose entry
    /// at `name` (`<index>/<source's name>`) is the host's source; the agent binds each onto
    /// `dest` in the shared root.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub binds: Vec<GuestBind>,
    /// A VM container's: the vsock port the agent listens on for `hull exec` (vm-run has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_port: Option<u32>,
    /// A VM container's spec, made for the guest: the agent creates the container from it at
    /// boot with the native code ([`container`]), and runs it at `start`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<serde_json::Value>,
    /// A VM container's state as the host's hooks got it (its id, bundle, annotations): the
    /// startContainer hooks in the guest get it too, with the guest's pid and status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_state: Option<serde_json::Value>,
    /// A VM container's network: lo, and the NICs the VMM gave the guest with what the
    /// container's interfaces had on the host ([`network`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<network::GuestNetwork>,
    /// A VM container's preserved fds (`--preserve-fds`, LISTEN_FDS): the workload gets a
    /// descriptor of each one's kind at its number, relayed to the host's ([`crate::fd_relay`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preserved: Vec<crate::fd_relay::Preserved>,
}

/// The virtio-fs tag of a VM container's bind mounts, and where the agent mounts it.
pub const BINDS_TAG: &str = "hullbinds";
pub const BINDS_MOUNT_POINT: &str = "/run/binds";

/// One bind mount of a VM container, as the guest makes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestBind {
    /// The entry's path in the binds share: `<index>/<source's name>`.
    pub name: String,
    /// Absolute, inside the shared root.
    pub dest: String,
    pub read_only: bool,
}

/// True when this process is the guest's init: PID 1 started as `/init`. Nothing else changes
/// how hull behaves, so hull run as a container's PID 1 (with another argv[0]) is unaffected.
pub fn is_guest_init() -> bool {
    std::process::id() == 1 && std::env::args_os().next().is_some_and(|a| a == INIT_PATH)
}

/// The agent's whole life. Never returns: it ends by rebooting the guest.
pub fn main() -> ! {
    if let Err(err) = run_agent() {
        console::fatal(&format!("{err:#}"));
    }
    power::reboot()
}

fn run_agent() -> anyhow::Result<()> {
    // /dev first: until devtmpfs is there, stdio may be closed and nothing can be printed.
    init::mount_dev()?;
    init::ensure_stdio();
    let signals = power::take_signals().context("blocking PID 1's signals")?;
    let config = read_config()?;
    console::set_debug(config.debug);
    console::debug("starting");
    // A failed mount is reported to the host, which says it far more visibly than the guest
    // console can, so connect first and only then give up.
    let spec = config
        .container
        .as_ref()
        .map(|v| serde_json::from_value::<oci_spec::runtime::Spec>(v.clone()))
        .transpose()
        .context("the container's spec")?;
    let setup = init::mount_all(&config)
        .and_then(|()| config.network.as_ref().map_or(Ok(()), network::configure))
        .and_then(|()| match &spec {
            Some(spec) => container::create(
                spec,
                std::path::Path::new(&config.mount_point),
                config.hook_state.as_ref(),
                &config.preserved,
            )
            .map(Some),
            None => Ok(None),
        });
    // Listening before the greeting: once `create` returns, `exec` may connect.
    let execs = config.exec_port.map(vsock::listen).transpose()?;
    let mut conn = vsock::connect(config.port)?;
    let created = match setup {
        Ok(created) => created,
        Err(err) => {
            let message = format!("{err:#}");
            let _ = protocol::write_frame(&mut conn, &Frame::Error(ErrorReport { message }));
            session::wait_for_close(&mut conn, &mut protocol::FrameDecoder::new(), Duration::from_secs(2));
            return Err(err);
        }
    };
    let container = match (spec.as_ref(), created) {
        (Some(spec), Some(created)) => Some(session::ContainerMode { spec, created }),
        _ => None,
    };
    session::serve(&mut conn, &config, &signals, execs.as_ref(), container)
}

fn read_config() -> anyhow::Result<AgentConfig> {
    let text = std::fs::read(CONFIG_PATH).with_context(|| format!("reading {CONFIG_PATH}"))?;
    serde_json::from_slice(&text).with_context(|| format!("parsing {CONFIG_PATH}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_process_is_not_the_guest_init() {
        assert!(!is_guest_init());
    }

    #[test]
    fn config_debug_defaults_to_off() {
        let c: AgentConfig =
            serde_json::from_str(r#"{"port":1024,"share_tag":"hullroot","mount_point":"/run/share"}"#)
                .unwrap();
        assert!(!c.debug);
        assert_eq!(c.port, 1024);
    }
}
