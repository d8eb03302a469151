//! What systemd-style callers hand a runtime through the environment: socket activation
//! (LISTEN_FDS) and readiness notification (NOTIFY_SOCKET), passed on to the container.

use std::path::PathBuf;

use oci_spec::runtime::{Mount, Spec};

/// Where the container finds the host's notify socket.
const NOTIFY_IN_CONTAINER: &str = "/run/notify/notify.sock";

/// Adjusts the spec and the preserved fd count from hull's own environment.
pub fn pass_through(spec: &mut Spec, preserve_fds: &mut u32) {
    let mut extra_env = Vec::new();
    // Socket activation: fds 3..3+LISTEN_FDS go to the container, whose pid 1 is the listener.
    if let Some(n) = std::env::var("LISTEN_FDS").ok().and_then(|v| v.parse::<u32>().ok()) {
        if n > 0 {
            *preserve_fds += n;
            extra_env.push(format!("LISTEN_FDS={n}"));
            extra_env.push("LISTEN_PID=1".to_string());
        }
    }
    // Readiness: bind the host's socket into the container and point NOTIFY_SOCKET at it,
    // so READY=1 from the program reaches whoever waits on the host (podman --sdnotify).
    if let Ok(sock) = std::env::var("NOTIFY_SOCKET") {
        if sock.starts_with('@') {
            // Abstract sockets live in the network namespace: pass the name as it is.
            extra_env.push(format!("NOTIFY_SOCKET={sock}"));
        } else if !sock.is_empty() {
            let mut m = Mount::default();
            m.set_destination(PathBuf::from(NOTIFY_IN_CONTAINER));
            m.set_typ(Some("bind".to_string()));
            m.set_source(Some(PathBuf::from(&sock)));
            m.set_options(Some(vec!["bind".to_string()]));
            let mut mounts = spec.mounts().clone().unwrap_or_default();
            mounts.push(m);
            spec.set_mounts(Some(mounts));
            extra_env.push(format!("NOTIFY_SOCKET={NOTIFY_IN_CONTAINER}"));
        }
    }
    if extra_env.is_empty() {
        return;
    }
    if let Some(p) = spec.process_mut() {
        let mut env = p.env().clone().unwrap_or_default();
        env.retain(|e| !extra_env.iter().any(|x| x.split('=').next() == e.split('=').next()));
        env.extend(extra_env);
        p.set_env(Some(env));
    }
}
