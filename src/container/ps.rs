//! `ps`: the container's processes, as the pid list containerd reads (json) or as the
//! host's `ps` table narrowed to the container's lines (table), like runc.

use std::process::Command;

use anyhow::{bail, Context};

use crate::cli::GlobalOpts;
use crate::state::{State, Store};

/// Host pids of every process in the container's cgroup.
pub fn pids(g: &GlobalOpts, id: &str) -> anyhow::Result<Vec<i32>> {
    let st = Store::existing(&g.root).read(id).with_context(|| format!("ps {id}"))?;
    Ok(pids_of(&st))
}

fn pids_of(st: &State) -> Vec<i32> {
    match st.cgroup.as_deref().and_then(|p| crate::cgroups::Cgroup::open(p).ok()) {
        Some(cg) => cg.pids(),
        None if st.init_alive() => super::kill::container_pids(st),
        None => vec![],
    }
}

/// Runs `ps ARGS` (default `-ef`) and returns its header and the lines of the container's
/// processes.
pub fn table(g: &GlobalOpts, id: &str, args: &[String]) -> anyhow::Result<String> {
    let pids = pids(g, id)?;
    let args: Vec<String> = if args.is_empty() { vec!["-ef".to_string()] } else { args.to_vec() };
    let out = Command::new("ps")
        .args(&args)
        .output()
        .with_context(|| format!("ps {id}: run ps {}", args.join(" ")))?;
    if !out.status.success() {
        bail!("ps {id}: ps {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    filter(&String::from_utf8_lossy(&out.stdout), &pids).with_context(|| format!("ps {id}"))
}

/// The header and the lines whose PID column holds one of `pids`.
fn filter(text: &str, pids: &[i32]) -> anyhow::Result<String> {
    let mut lines = text.lines();
    let Some(header) = lines.next() else { bail!("ps printed nothing") };
    let Some(col) = header.split_whitespace().position(|f| f == "PID") else {
        bail!("couldn't find PID field in ps output");
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
