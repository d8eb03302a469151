//! Reading a process's identity from /proc/<pid>/stat.

use std::io;

/// The fields of /proc/<pid>/stat hull needs.
#[derive(Debug, Clone, Copy)]
pub struct ProcStat {
    /// One-letter state: R, S, D, Z, X, T, ...
    pub state: char,
    /// Start time in clock ticks after boot (field 22).
    pub start_time: u64,
    /// The kernel's PF_* flags (field 9).
    pub flags: u64,
}

/// PF_KTHREAD in linux/sched.h.
const PF_KTHREAD: u64 = 0x0020_0000;

impl ProcStat {
    pub fn read(pid: i32) -> io::Result<ProcStat> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        Self::parse(&text)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("unparsable /proc/{pid}/stat")))
    }

    fn parse(text: &str) -> Option<ProcStat> {
        // The command name (field 2) is in parentheses and may itself contain ") ".
        let rest = &text[text.rfind(')')? + 1..];
        let mut fields = rest.split_whitespace();
        let state = fields.next()?.chars().next()?;
        // After the name, field 3 is the state; flags are field 9, start time field 22.
        let flags = fields.nth(5)?.parse().ok()?;
        let start_time = fields.nth(12)?.parse().ok()?;
        Some(ProcStat { state, start_time, flags })
    }

    /// A kernel thread (one KVM starts for a VM lands in its creator's cgroup).
    pub fn is_kernel_thread(&self) -> bool {
        self.flags & PF_KTHREAD != 0
    }

    /// A zombie or dead process: its program has ended.
    pub fn is_dead(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

#[cfg(test)]
mod tests {
    use super::ProcStat;
    #[test]
    fn parses_odd_names() {
        let line = "42 (a) b) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        let st = ProcStat::parse(line).unwrap();
        assert_eq!(st.state, 'S');
        assert_eq!(st.start_time, 987654);
        assert_eq!(st.flags, 4194560);
        assert!(!st.is_kernel_thread());
    }
    #[test]
    fn reads_self() {
        let st = ProcStat::read(std::process::id() as i32).unwrap();
        assert!(!st.is_dead());
    }
}
