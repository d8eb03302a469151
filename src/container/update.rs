//! `update`: change the resources of a live container, from a LinuxResources JSON
//! (`--resources`, what containerd passes) and runc's flags, and keep the stored config in
//! step so later updates start from what the container really has.

use std::io::Read;

use oci_spec::runtime::LinuxResources;
use serde_json::{json, Map, Value};

use super::error::{During, Error, IoContext, Result};
use super::{RuntimeContext, UpdateRequest};
use crate::state::Status;

pub fn update(rt: &RuntimeContext, id: &str, req: &UpdateRequest) -> Result<()> {
    update_inner(rt, id, req).during("update", id)
}

fn update_inner(rt: &RuntimeContext, id: &str, a: &UpdateRequest) -> Result<()> {
    // Read the request before taking the lock: stdin may be slow.
    let mut change = match &a.resources {
        Some(p) => read_resources(p)?,
        None => json!({}),
    };
    merge(&mut change, &flags_to_json(a));
    if a.kernel_memory.is_some() {
        crate::logging::warn("--kernel-memory is deprecated and ignored");
    }
    // runc: an unlimited memory limit without a swap value makes swap unlimited too.
    if change.pointer("/memory/limit").and_then(Value::as_i64) == Some(-1)
        && change.pointer("/memory/swap").is_none_or(Value::is_null)
    {
        merge(&mut change, &json!({"memory": {"swap": -1}}));
    }

    let (dir, mut st) = super::open(rt, id)?;
    match st.status() {
        Status::Created | Status::Running | Status::Paused => {}
        _ => return Err(Error::WrongState("container not running".into())),
    }
    let stored = st.config.as_ref().and_then(|c| c.linux().as_ref()).and_then(|l| l.resources().as_ref());
    let mut merged = match stored {
        Some(r) => {
            serde_json::to_value(r).map_err(std::io::Error::from).doing(|| "encode the stored resources")?
        }
        None => json!({}),
    };
    merge(&mut merged, &change);
    let merged: LinuxResources = serde_json::from_value(merged)
        .map_err(|e| Error::Invalid(format!("the updated resources are not a valid LinuxResources: {e}")))?;

    // Device rules are not something update changes (runc's neither); rewriting them on v1
    // would briefly deny every device to the running container.
    let mut apply = merged.clone();
    apply.set_devices(None);
    st.backend.update(&st, &apply)?;

    if let Some(config) = st.config.as_mut() {
        let mut linux = config.linux().clone().unwrap_or_default();
        linux.set_resources(Some(merged));
        config.set_linux(Some(linux));
    }
    dir.save(&st)?;
    Ok(())
}

fn read_resources(p: &std::path::Path) -> Result<Value> {
    let text = if p.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).doing(|| "read resources from stdin")?;
        s
    } else {
        std::fs::read_to_string(p).doing(|| format!("read resources {}", p.display()))?
    };
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| Error::Invalid(format!("resources {}: not JSON: {e}", p.display())))?;
    // Check the shape now, so a bad file names itself rather than the merged result.
    serde_json::from_value::<LinuxResources>(v.clone()).map_err(|e| {
        Error::Invalid(format!("resources {}: not a runtime-spec LinuxResources: {e}", p.display()))
    })?;
    Ok(v)
}

/// The flags as a partial LinuxResources JSON.
fn flags_to_json(a: &UpdateRequest) -> Value {
    let mut memory = Map::new();
    let mut cpu = Map::new();
    let put = |m: &mut Map<String, Value>, k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.to_string(), v);
        }
    };
    put(&mut memory, "limit", a.memory.map(Value::from));
    put(&mut memory, "reservation", a.memory_reservation.map(Value::from));
    put(&mut memory, "swap", a.memory_swap.map(Value::from));
    put(&mut memory, "kernelTCP", a.kernel_memory_tcp.map(Value::from));
    put(&mut cpu, "shares", a.cpu_share.map(Value::from));
    put(&mut cpu, "quota", a.cpu_quota.map(Value::from));
    put(&mut cpu, "period", a.cpu_period.map(Value::from));
    put(&mut cpu, "realtimePeriod", a.cpu_rt_period.map(Value::from));
    put(&mut cpu, "realtimeRuntime", a.cpu_rt_runtime.map(Value::from));
    put(&mut cpu, "cpus", a.cpuset_cpus.clone().map(Value::from));
    put(&mut cpu, "mems", a.cpuset_mems.clone().map(Value::from));
    let mut out = Map::new();
    if !memory.is_empty() {
        out.insert("memory".into(), Value::Object(memory));
    }
    if !cpu.is_empty() {
        out.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(l) = a.pids_limit {
        out.insert("pids".into(), json!({ "limit": l }));
    }
    if let Some(w) = a.blkio_weight {
        out.insert("blockIO".into(), json!({ "weight": w }));
    }
    Value::Object(out)
}

/// Objects merge key by key; anything else in `over` replaces what `base` has (null
/// leaves it).
fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                if v.is_null() {
                    continue;
                }
                match b.get_mut(k) {
                    Some(slot) if slot.is_object() && v.is_object() => merge(slot, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) if !o.is_null() => *b = o.clone(),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_deeply() {
        let mut b = json!({"memory": {"limit": 1, "swap": 2}, "pids": {"limit": 5}, "devices": [1]});
        merge(&mut b, &json!({"memory": {"limit": 3, "reservation": null}, "cpu": {"shares": 7}}));
        assert_eq!(
            b,
            json!({"memory": {"limit": 3, "swap": 2}, "pids": {"limit": 5}, "devices": [1], "cpu": {"shares": 7}})
        );
    }

    #[test]
    fn flags() {
        let a = UpdateRequest {
            memory: Some(10),
            cpu_quota: Some(-1),
            pids_limit: Some(3),
            blkio_weight: Some(100),
            ..Default::default()
        };
        assert_eq!(
            flags_to_json(&a),
            json!({"memory": {"limit": 10}, "cpu": {"quota": -1}, "pids": {"limit": 3}, "blockIO": {"weight": 100}})
        );
        assert_eq!(flags_to_json(&UpdateRequest::default()), json!({}));
    }
}
