//! `list`: every container under the root.

use serde::Serialize;

use super::error::Result;
use super::RuntimeContext;
use crate::state::Store;

/// One row of `list`, in runc's JSON field names.
#[derive(Serialize, Debug)]
pub struct Summary {
    pub id: String,
    pub pid: i32,
    pub status: String,
    pub bundle: String,
    pub rootfs: String,
    pub created: String,
    pub annotations: std::collections::BTreeMap<String, String>,
    pub owner: String,
}

pub fn list(rt: &RuntimeContext) -> Result<Vec<Summary>> {
    let store = Store::existing(&rt.root);
    let mut out = Vec::new();
    for id in store.ids()? {
        // Skip containers deleted meanwhile or still without state.
        let Ok(st) = store.read(&id) else { continue };
        let oci = st.oci();
        out.push(Summary {
            id,
            pid: oci.pid,
            status: oci.status.to_string(),
            bundle: oci.bundle,
            rootfs: st.rootfs.display().to_string(),
            created: st.created.clone(),
            annotations: oci.annotations,
            owner: st.owner.clone(),
        });
    }
    Ok(out)
}
