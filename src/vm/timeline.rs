//! vm-run's boot timeline for --debug: the VMM's own marks (start, built, kernel entry,
//! exit) merged with vm-run's (initramfs, agent ready, command started and done), in
//! milliseconds since the VMM started.

use std::fmt::Write;
use std::time::Instant;

#[derive(Debug, Default, Clone)]
pub struct Marks {
    pub started: Option<Instant>,
    pub initramfs_built: Option<Instant>,
    pub initramfs_bytes: usize,
    pub vmm_start: Option<Instant>,
    pub vm_built: Option<Instant>,
    pub kernel_entry: Option<Instant>,
    pub agent_ready: Option<Instant>,
    /// The guest's own clock when the agent was ready (CLOCK_BOOTTIME, ms).
    pub guest_uptime_ms: Option<u64>,
    pub command_started: Option<Instant>,
    pub command_done: Option<Instant>,
    pub vm_exited: Option<Instant>,
}

impl Marks {
    /// Takes the VMM's marks.
    pub fn add_vmm(&mut self, t: &vmm::Timeline) {
        self.vmm_start = Some(t.vmm_start);
        self.vm_built = t.built.or(self.vm_built);
        self.kernel_entry = t.kernel_entry.or(self.kernel_entry);
        self.vm_exited = t.exited.or(self.vm_exited);
    }

    /// One line per mark that happened, in time order; ms are relative to the VMM's start
    /// (to vm-run's own start when the VMM never started).
    pub fn render(&self) -> String {
        let Some(zero) = self.vmm_start.or(self.started) else { return String::new() };
        let ms = |t: Instant| match t.checked_duration_since(zero) {
            Some(d) => d.as_secs_f64() * 1000.0,
            None => -(zero.duration_since(t).as_secs_f64() * 1000.0),
        };
        let initramfs =
            format!("initramfs made ({:.1} MiB)", self.initramfs_bytes as f64 / (1024.0 * 1024.0));
        let ready = match self.guest_uptime_ms {
            Some(up) => format!("agent ready (vsock connection accepted; guest uptime {up} ms)"),
            None => "agent ready (vsock connection accepted)".to_string(),
        };
        let mut marks: Vec<(Instant, String)> = [
            (self.started, "vm-run start".to_string()),
            (self.initramfs_built, initramfs),
            (self.vmm_start, "VMM start".to_string()),
            (self.vm_built, "VM built".to_string()),
            (self.kernel_entry, "kernel entry".to_string()),
            (self.agent_ready, ready),
            (self.command_started, "command started".to_string()),
            (self.command_done, "command done (exit status received)".to_string()),
            (self.vm_exited, "VM exited".to_string()),
        ]
        .into_iter()
        .filter_map(|(t, what)| t.map(|t| (t, what)))
        .collect();
        marks.sort_by_key(|(t, _)| *t);
        let mut out = String::from("vm-run timeline (ms since VMM start):\n");
        for (t, what) in marks {
            let _ = writeln!(out, "{:>10.1}  {what}", ms(t));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn renders_marks_in_order_relative_to_the_vmm_start() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let marks = Marks {
            started: Some(t0),
            initramfs_built: Some(at(5)),
            initramfs_bytes: 3 * 1024 * 1024,
            vmm_start: Some(at(10)),
            vm_built: Some(at(15)),
            kernel_entry: Some(at(16)),
            agent_ready: Some(at(110)),
            guest_uptime_ms: Some(80),
            command_started: Some(at(111)),
            command_done: Some(at(130)),
            vm_exited: Some(at(140)),
        };
        let text = marks.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 10, "{text}");
        assert!(lines[1].trim_start().starts_with("-10.0  vm-run start"), "{text}");
        assert!(lines[2].contains("initramfs made (3.0 MiB)"), "{text}");
        assert!(lines[3].trim_start().starts_with("0.0  VMM start"), "{text}");
        assert!(lines[6].contains("100.0  agent ready") && lines[6].contains("guest uptime 80 ms"), "{text}");
        assert!(lines[9].contains("130.0  VM exited"), "{text}");
    }

    #[test]
    fn without_a_vmm_start_it_counts_from_vm_run_start() {
        let marks = Marks { started: Some(Instant::now()), ..Default::default() };
        assert!(marks.render().contains("0.0  vm-run start"));
        assert_eq!(Marks::default().render(), "");
    }
}
