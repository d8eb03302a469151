//! `pause` / `resume`: freeze and thaw every process of the container through its cgroup
//! (the v1 freezer or v2's cgroup.freeze). `state` derives "paused" from the freezer.

use anyhow::{bail, Context};

use crate::cgroups::Cgroup;
use crate::cli::GlobalOpts;
use crate::state::{State, Status};

pub fn pause(g: &GlobalOpts, id: &str) -> anyhow::Result<()> {
    let (_dir, st) = super::open(g, id).with_context(|| format!("pause {id}"))?;
    if st.status() != Status::Running {
        bail!("pause {id}: container not running");
    }
    let cg = cgroup_of(&st).with_context(|| format!("pause {id}"))?;
    if let Err(e) = cg.freeze(true) {
        // Half-frozen helps no one: leave it running, as runc does.
        let _ = cg.freeze(false);
        return Err(e).with_context(|| format!("pause {id}"));
    }
    Ok(())
}

pub fn resume(g: &GlobalOpts, id: &str) -> anyhow::Result<()> {
    let (_dir, st) = super::open(g, id).with_context(|| format!("resume {id}"))?;
    if st.status() != Status::Paused {
        bail!("resume {id}: container not paused");
    }
    let cg = cgroup_of(&st).with_context(|| format!("resume {id}"))?;
    cg.freeze(false).with_context(|| format!("resume {id}"))?;
    Ok(())
}

/// The container's cgroup; every container hull made has one.
pub(super) fn cgroup_of(st: &State) -> anyhow::Result<Cgroup> {
    let Some(path) = st.cgroup.as_deref() else { bail!("the container has no cgroup") };
    Ok(Cgroup::open(path)?)
}
