//! `kill --all` of a VM container: the signal goes to every process of the container in the
//! guest, through the agent's exec port (a stream whose first frame is a Signal). The VMM and
//! the exec stand-ins on the host would each pass a signal to one guest process only.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::standin;
use crate::agent::protocol::{self, Frame, FrameDecoder};

/// How long the agent gets to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Asks the agent behind the VMM's vsock `socket` to send `sig` to every process of the
/// container; Err says why it could not.
pub fn signal_all(socket: &Path, sig: Signal) -> Result<(), String> {
    let mut conn = standin::connect(socket)?;
    conn.set_read_timeout(Some(ANSWER_TIMEOUT)).map_err(|e| e.to_string())?;
    protocol::write_frame(&mut conn, &Frame::Signal(sig as i32))
        .map_err(|e| format!("asking the guest: {e}"))?;
    let mut decoder = FrameDecoder::new();
    let mut buf = [0u8; 4096];
    loop {
        match decoder.next_frame().map_err(|e| format!("the guest's answer: {e}"))? {
            Some(Frame::Exit(report)) => {
                let _ = protocol::write_frame(&mut conn, &Frame::Ack);
                return match report.code {
                    0 => Ok(()),
                    _ => Err("the guest has no container to signal".into()),
                };
            }
            Some(other) => return Err(format!("unexpected answer from the guest agent: {other:?}")),
            None => {}
        }
        match conn.read(&mut buf) {
            Ok(0) => return Err("the guest agent closed the stream without an answer".into()),
            Ok(n) => decoder.push(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("waiting for the guest's answer: {e}")),
        }
    }
}
