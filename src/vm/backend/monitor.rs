//! `events` of a VM container: the host cgroup holds the VMM, so its cpu and blkio numbers are
//! what the VM costs the host; the workload's memory, its processes and its OOMs are in the
//! container's cgroup in the guest, which the agent reports ([`control::stats`]).

use std::cell::Cell;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::control;
use crate::cgroups::stats::{OomCounters, Stats};
use crate::container::backend::Monitor;

pub(super) struct VmMonitor {
    host: Box<dyn Monitor>,
    socket: Option<PathBuf>,
    /// The guest's OOM counters as last reported: an answer that does not come (a paused VM,
    /// a slow guest) must not look like a drop and then a rise, which would be a false event.
    guest_oom: Cell<OomCounters>,
    /// When the guest was last asked: `events` checks OOMs ten times a second, and each
    /// question is a vsock stream and a fork in the guest, so the guest is asked at most every
    /// [`GUEST_OOM_EVERY`].
    asked: Cell<Option<Instant>>,
}

const GUEST_OOM_EVERY: Duration = Duration::from_secs(1);

impl VmMonitor {
    pub(super) fn new(host: Box<dyn Monitor>, socket: Option<PathBuf>) -> VmMonitor {
        VmMonitor { host, socket, guest_oom: Cell::new(OomCounters::default()), asked: Cell::new(None) }
    }

    fn guest(&self) -> Option<crate::agent::protocol::GuestStats> {
        let socket = self.socket.as_ref()?;
        self.asked.set(Some(Instant::now()));
        match control::stats(socket) {
            Ok(g) => {
                if let Some(oom) = g.oom {
                    self.guest_oom.set(oom);
                }
                Some(g)
            }
            Err(e) => {
                crate::logging::debug(&format!("events: the guest's statistics: {e}"));
                None
            }
        }
    }
}

impl Monitor for VmMonitor {
    fn stats(&self) -> Stats {
        let mut stats = self.host.stats();
        if let Some(guest) = self.guest() {
            stats.memory = guest.stats.memory;
            stats.pids = guest.stats.pids;
        }
        stats
    }

    fn oom_counters(&self) -> Option<OomCounters> {
        if self.asked.get().is_none_or(|t| t.elapsed() >= GUEST_OOM_EVERY) {
            let _ = self.guest();
        }
        let guest = self.guest_oom.get();
        let host = self.host.oom_counters().unwrap_or_default();
        // Each OOM kill in the guest is made once more in the host cgroup (`oom_relay`), and
        // the host cgroup's own "oom" count moves with each (the relay's process may meet the
        // limit more than once before it is killed): the guest's counts are the container's,
        // and the host adds only the kills beyond the guest's (the VM itself killed for
        // memory). A relayed kill seen on the host before the guest is asked again counts as
        // one, once.
        let extra = host.kills.saturating_sub(guest.kills);
        Some(OomCounters {
            kills: guest.kills + extra,
            ooms: guest.ooms.max(guest.kills) + extra,
            under: host.under || guest.under,
        })
    }
}
