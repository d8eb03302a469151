//! linux.memoryPolicy (runtime-spec 1.3) as set_mempolicy(2) wants it: the mode with its
//! flags, and the node list ("0-1,3") as a bitmask. Checked at validation, applied by the
//! init and by `exec` right before the program (native/mempolicy.rs).

use oci_spec::runtime::{LinuxMemoryPolicy, MemoryPolicyFlagType, MemoryPolicyModeType};

/// The kernel's mode numbers (linux/mempolicy.h); libc lacks the two newest.
const MPOL_DEFAULT: i32 = 0;
const MPOL_PREFERRED: i32 = 1;
const MPOL_BIND: i32 = 2;
const MPOL_INTERLEAVE: i32 = 3;
const MPOL_LOCAL: i32 = 4;
const MPOL_PREFERRED_MANY: i32 = 5;
const MPOL_WEIGHTED_INTERLEAVE: i32 = 6;

const MPOL_F_NUMA_BALANCING: i32 = 1 << 13;
const MPOL_F_RELATIVE_NODES: i32 = 1 << 14;
const MPOL_F_STATIC_NODES: i32 = 1 << 15;

/// Above any kernel's MAX_NUMNODES (1 << CONFIG_NODES_SHIFT, at most 1024): a node number this
/// large is a typo, not a machine.
const MAX_NODE: u32 = 4095;

/// What set_mempolicy(2) is called with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemPolicy {
    /// The mode ORed with its flags.
    pub mode: i32,
    /// The node bitmask, 64 nodes a word; empty for "no nodes".
    pub nodes: Vec<u64>,
}

/// Checks `p` and turns it into syscall arguments; the error names the field at fault.
pub fn parse(p: &LinuxMemoryPolicy) -> Result<MemPolicy, (&'static str, String)> {
    let nodes = match p.nodes().as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(list) => node_mask(list).map_err(|e| ("nodes", e))?,
        None => Vec::new(),
    };
    let mode_name = p.mode().to_string();
    let has_nodes = !nodes.is_empty();
    let mode = match p.mode() {
        MemoryPolicyModeType::MpolDefault => MPOL_DEFAULT,
        MemoryPolicyModeType::MpolLocal => MPOL_LOCAL,
        MemoryPolicyModeType::MpolPreferred => MPOL_PREFERRED,
        MemoryPolicyModeType::MpolBind => MPOL_BIND,
        MemoryPolicyModeType::MpolInterleave => MPOL_INTERLEAVE,
        MemoryPolicyModeType::MpolPreferredMany => MPOL_PREFERRED_MANY,
        MemoryPolicyModeType::MpolWeightedInterleave => MPOL_WEIGHTED_INTERLEAVE,
    };
    // What the kernel would refuse anyway, said at create with the field's name.
    match mode {
        MPOL_DEFAULT | MPOL_LOCAL if has_nodes => {
            return Err(("nodes", format!("{mode_name} takes no nodes")));
        }
        MPOL_BIND | MPOL_INTERLEAVE | MPOL_PREFERRED_MANY | MPOL_WEIGHTED_INTERLEAVE if !has_nodes => {
            return Err(("nodes", format!("{mode_name} needs at least one node")));
        }
        _ => {}
    }
    let mut flags = 0;
    for f in p.flags().iter().flatten() {
        flags |= match f {
            MemoryPolicyFlagType::MpolFNumaBalancing => MPOL_F_NUMA_BALANCING,
            MemoryPolicyFlagType::MpolFRelativeNodes => MPOL_F_RELATIVE_NODES,
            MemoryPolicyFlagType::MpolFStaticNodes => MPOL_F_STATIC_NODES,
        };
    }
    if flags & MPOL_F_RELATIVE_NODES != 0 && flags & MPOL_F_STATIC_NODES != 0 {
        return Err(("flags", "MPOL_F_RELATIVE_NODES and MPOL_F_STATIC_NODES exclude each other".into()));
    }
    // MPOL_DEFAULT ignores them, every other mode needs a node list for them to apply to.
    if flags & (MPOL_F_RELATIVE_NODES | MPOL_F_STATIC_NODES) != 0 && !has_nodes && mode != MPOL_DEFAULT {
        return Err((
            "flags",
            format!("MPOL_F_RELATIVE_NODES/MPOL_F_STATIC_NODES need nodes ({mode_name} has none)"),
        ));
    }
    if flags & MPOL_F_NUMA_BALANCING != 0 && !matches!(mode, MPOL_BIND | MPOL_PREFERRED_MANY) {
        return Err((
            "flags",
            format!("MPOL_F_NUMA_BALANCING goes with MPOL_BIND or MPOL_PREFERRED_MANY, not {mode_name}"),
        ));
    }
    Ok(MemPolicy { mode: mode | flags, nodes })
}

/// "0-1,3" as a bitmask of 64-bit words.
fn node_mask(list: &str) -> Result<Vec<u64>, String> {
    let mut mask: Vec<u64> = Vec::new();
    for part in list.split(',') {
        let part = part.trim();
        let num = |s: &str| -> Result<u32, String> {
            let n: u32 = s.trim().parse().map_err(|_| format!("{list:?}: {s:?} is not a node number"))?;
            if n > MAX_NODE {
                return Err(format!("{list:?}: node {n} is above {MAX_NODE}"));
            }
            Ok(n)
        };
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(part)?, num(part)?),
        };
        if lo > hi {
            return Err(format!("{list:?}: range {part:?} runs backwards"));
        }
        for n in lo..=hi {
            let word = (n / 64) as usize;
            if mask.len() <= word {
                mask.resize(word + 1, 0);
            }
            mask[word] |= 1 << (n % 64);
        }
    }
    Ok(mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(v: serde_json::Value) -> Result<MemPolicy, (&'static str, String)> {
        parse(&serde_json::from_value(v).unwrap())
    }

    #[test]
    fn modes_flags_and_node_lists() {
        let p = policy(serde_json::json!({"mode": "MPOL_BIND", "nodes": "0-1,3"})).unwrap();
        assert_eq!(p, MemPolicy { mode: MPOL_BIND, nodes: vec![0b1011] });
        let p = policy(serde_json::json!({"mode": "MPOL_INTERLEAVE", "nodes": "64,0",
            "flags": ["MPOL_F_STATIC_NODES"]}))
        .unwrap();
        assert_eq!(p, MemPolicy { mode: MPOL_INTERLEAVE | MPOL_F_STATIC_NODES, nodes: vec![1, 1] });
        let p = policy(serde_json::json!({"mode": "MPOL_PREFERRED"})).unwrap();
        assert_eq!(p, MemPolicy { mode: MPOL_PREFERRED, nodes: vec![] });
        let p = policy(serde_json::json!({"mode": "MPOL_LOCAL", "nodes": ""})).unwrap();
        assert_eq!(p.mode, MPOL_LOCAL);
    }

    #[test]
    fn bad_values_name_the_field() {
        let field = |v| policy(v).unwrap_err().0;
        assert_eq!(field(serde_json::json!({"mode": "MPOL_BIND"})), "nodes");
        assert_eq!(field(serde_json::json!({"mode": "MPOL_DEFAULT", "nodes": "0"})), "nodes");
        assert_eq!(field(serde_json::json!({"mode": "MPOL_BIND", "nodes": "1-0"})), "nodes");
        assert_eq!(field(serde_json::json!({"mode": "MPOL_BIND", "nodes": "0,x"})), "nodes");
        assert_eq!(field(serde_json::json!({"mode": "MPOL_BIND", "nodes": "5000"})), "nodes");
        assert_eq!(field(serde_json::json!({"mode": "MPOL_BIND", "nodes": "0,"})), "nodes");
        assert_eq!(
            field(serde_json::json!({"mode": "MPOL_BIND", "nodes": "0",
                "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]})),
            "flags"
        );
        assert_eq!(
            field(
                serde_json::json!({"mode": "MPOL_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_NUMA_BALANCING"]})
            ),
            "flags"
        );
    }
}
