//! linux.memoryPolicy: set_mempolicy(2) on the container's process right before it execs its
//! program (the policy is inherited across execve). The spec side (mode, flags, node list) is
//! checked and converted in spec/mempolicy.rs.

use oci_spec::runtime::LinuxMemoryPolicy;

use super::error::{msg, Context, Result};
use crate::spec::mempolicy::{parse, MemPolicy};

/// The policy to set, and how to name it in an error.
#[derive(Debug, Clone)]
pub struct Policy {
    policy: MemPolicy,
    what: String,
}

impl Policy {
    pub fn from_spec(p: &LinuxMemoryPolicy) -> Result<Policy> {
        let what = format!("linux.memoryPolicy {} nodes {:?}", p.mode(), p.nodes().as_deref().unwrap_or(""));
        match parse(p) {
            Ok(policy) => Ok(Policy { policy, what }),
            Err((field, m)) => msg(format!("linux.memoryPolicy.{field}: {m}")),
        }
    }

    /// Sets the policy and puts the default back: what the kernel refuses on this machine
    /// (a node it does not have, a flag it does not know) fails `create`, not `start`.
    pub fn check(&self) -> Result<()> {
        self.set()?;
        set_mempolicy(&MemPolicy { mode: 0, nodes: Vec::new() }).ctx(|| format!("{}: reset", self.what))
    }

    /// Sets the policy for this process and what it execs.
    pub fn set(&self) -> Result<()> {
        set_mempolicy(&self.policy).ctx(|| format!("{}: set_mempolicy", self.what))
    }
}

fn set_mempolicy(p: &MemPolicy) -> std::io::Result<()> {
    // maxnode counts one more than the bits the kernel reads (it decrements it first).
    let (mask, maxnode) =
        if p.nodes.is_empty() { (std::ptr::null(), 0) } else { (p.nodes.as_ptr(), p.nodes.len() * 64 + 1) };
    // SAFETY: `mask` is null or points to `p.nodes`, which holds the (maxnode - 1) bits the
    // kernel reads and outlives the call; mode and maxnode are plain integers.
    let rc = unsafe { libc::syscall(libc::SYS_set_mempolicy, p.mode, mask, maxnode) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
