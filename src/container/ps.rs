//! `ps`: the container's processes, as the pid list containerd reads (json) or as the
//! host's `ps` table narrowed to the container's lines (table), like runc.

use std::process::Command;

use super::error::{During, Error, IoContext, Result};
use super::RuntimeContext;
use crate::state::Store;

/// Host pids of every process of the container, as its backend knows them.
pub fn pids(rt: &RuntimeContext, id: &str) -> Result<Vec<i32>> {
    let st = Store::existing(&rt.root).read(id).during("ps", id)?;
    st.backend.pids(&st).during("ps", id)
}

/// Runs `ps ARGS` (default `-ef`) and returns its header and the lines of the container's
/// processes (every backend's processes are host processes: the VMM and exec stand-ins too).
pub fn table(rt: &RuntimeContext, id: &str, args: &[String]) -> Result<String> {
    let pids = pids(rt, id)?;
    let args: Vec<String> = if args.is_empty() { vec!["-ef".to_string()] } else { args.to_vec() };
    let out = Command::new("ps")
        .args(&args)
        .output()
        .doing(|| format!("run ps {}", args.join(" ")))
        .during("ps", id)?;
    if !out.status.success() {
        let why = format!("ps {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
        return Err(Error::Invalid(why)).during("ps", id);
    }
    filter(&String::from_utf8_lossy(&out.stdout), &pids).during("ps", id)
}

/// The header and the lines whose PID column holds one of `pids`.
fn filter(text: &str, pids: &[i32]) -> Result<String> {
    let unreadable = |why: &str| Err(Error::Invalid(why.to_string()));
    let mut lines = text.lines();
    let Some(header) = lines.next() else { return unreadable("ps printed nothing") };
    let Some(col) = header.split_whitespace().position(|f| f == "PID") else {
        return unreadable("couldn't find PID field in ps output");
    };
    let mut out = format!("{header}\n");
    for l in lines {
        let pid = l.split_whitespace().nth(col).and_then(|f| f.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            out.push_str(l);
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::filter;

    #[test]
    fn keeps_header_and_container_lines() {
        let text = "UID PID PPID C STIME TTY TIME CMD\nroot 1 0 0 10:00 ? 00:00:01 init\nroot 42 1 0 10:00 ? 00:00:00 sleep 1\n";
        assert_eq!(
            filter(text, &[42]).unwrap(),
            "UID PID PPID C STIME TTY TIME CMD\nroot 42 1 0 10:00 ? 00:00:00 sleep 1\n"
        );
        assert!(filter("USER COMMAND\nroot x\n", &[1]).is_err());
    }
}
