//! One request to a VM container's agent and its answer, over the agent's exec port (a
//! stream whose first frame is the request): `kill --all` (Signal: every process of the
//! container in the guest; the VMM and the exec stand-ins on the host would each pass a signal
//! to one guest process only), `update` (the container's cgroup in the guest), `events`
//! (that cgroup's statistics and OOM counters) and `start` (interfaces that came after
//! `create`).

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use oci_spec::runtime::LinuxResources;

use super::standin;
use crate::agent::protocol::{self, Frame, FrameDecoder, GuestStats};

/// How long the agent gets to answer a signal or an update.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// `events` asks every few seconds, and a paused guest never answers: a short wait.
const STATS_TIMEOUT: Duration = Duration::from_secs(2);

/// Asks the agent behind the VMM's vsock `socket` to send `sig` to every process of the
/// container; Err says why it could not.
pub fn signal_all(socket: &Path, sig: Signal) -> Result<(), String> {
    match ask(socket, &Frame::Signal(sig as i32), ANSWER_TIMEOUT)? {
        Frame::Exit(report) if report.code == 0 => Ok(()),
        Frame::Exit(_) => Err("the guest has no container to signal".into()),
        other => Err(unexpected(&other)),
    }
}

/// The limits the container's cgroup in the guest repeats from the spec (memory, cpu, pids:
/// see guest_spec.rs); None when `resources` changes none of them.
fn guest_part(resources: &LinuxResources) -> Option<LinuxResources> {
    let mut part = LinuxResources::default();
    part.set_memory(*resources.memory());
    part.set_cpu(resources.cpu().clone());
    part.set_pids(*resources.pids());
    (part.memory().is_some() || part.cpu().is_some() || part.pids().is_some()).then_some(part)
}

/// `update`: the container's cgroup in the guest takes the new memory, cpu and pids limits
/// (nothing is sent when `resources` has none).
pub fn update(socket: &Path, resources: &LinuxResources) -> Result<(), String> {
    let Some(part) = guest_part(resources) else { return Ok(()) };
    let value = serde_json::to_value(&part).map_err(|e| format!("the resources for the guest: {e}"))?;
    match ask(socket, &Frame::Update(value), ANSWER_TIMEOUT)? {
        Frame::Exit(report) if report.code == 0 => Ok(()),
        Frame::Error(e) => Err(e.message),
        other => Err(unexpected(&other)),
    }
}

/// `events`: the statistics and OOM counters of the container's cgroup in the guest.
pub fn stats(socket: &Path) -> Result<GuestStats, String> {
    match ask(socket, &Frame::QueryStats, STATS_TIMEOUT)? {
        Frame::GuestStats(v) => GuestStats::from_value(v),
        Frame::Error(e) => Err(e.message),
        other => Err(unexpected(&other)),
    }
}

/// `start`: the agent takes the interfaces the container's network namespace gained after
/// `create` on its spare NICs.
pub fn network(socket: &Path, net: &crate::agent::network::GuestNetwork) -> Result<(), String> {
    let value = serde_json::to_value(net).map_err(|e| format!("the network for the guest: {e}"))?;
    match ask(socket, &Frame::Network(value), ANSWER_TIMEOUT)? {
        Frame::Exit(report) if report.code == 0 => Ok(()),
        Frame::Error(e) => Err(e.message),
        other => Err(unexpected(&other)),
    }
}

fn unexpected(frame: &Frame) -> String {
    format!("unexpected answer from the guest agent: {frame:?}")
}

/// Sends `request` as the first frame on a new exec-port stream and returns the agent's one
/// answer (acknowledged, so the agent's server ends at once).
fn ask(socket: &Path, request: &Frame, timeout: Duration) -> Result<Frame, String> {
    let mut conn = standin::connect(socket)?;
    conn.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    protocol::write_frame(&mut conn, request).map_err(|e| format!("asking the guest: {e}"))?;
    let mut decoder = FrameDecoder::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(answer) = decoder.next_frame().map_err(|e| format!("the guest's answer: {e}"))? {
            let _ = protocol::write_frame(&mut conn, &Frame::Ack);
            return Ok(answer);
        }
        match conn.read(&mut buf) {
            Ok(0) => return Err("the guest agent closed the stream without an answer".into()),
            Ok(n) => decoder.push(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return Err(format!("the guest agent did not answer within {} s", timeout.as_secs()))
            }
            Err(e) => return Err(format!("waiting for the guest's answer: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_limits_the_guest_repeats_are_sent() {
        let r: LinuxResources = serde_json::from_value(serde_json::json!({
            "pids": {"limit": 321},
            "blockIO": {"weight": 100},
        }))
        .unwrap();
        let part = guest_part(&r).unwrap();
        assert_eq!(part.pids().as_ref().map(|p| p.limit()), Some(321));
        assert!(part.block_io().is_none());
        let none: LinuxResources =
            serde_json::from_value(serde_json::json!({"blockIO": {"weight": 100}})).unwrap();
        assert!(guest_part(&none).is_none());
    }
}
