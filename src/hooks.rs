//! OCI hooks: programs the spec names, run at fixed points of the lifecycle with the
//! container's state JSON on stdin.
//!
//! Where each kind runs (who calls [`run`]):
//! - prestart, createRuntime: `hull create` (runtime namespace), after the container's
//!   namespaces and mounts exist, before pivot_root;
//! - createContainer: the init, in the container's namespaces, before pivot_root;
//! - startContainer: the init, after `start`, right before exec of the program;
//! - poststart: `hull start`, after the program has been released;
//! - poststop: `hull delete`, after the container has stopped.

use oci_spec::runtime::{Hook, Hooks, Spec};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Prestart => "prestart",
            Kind::CreateRuntime => "createRuntime",
            Kind::CreateContainer => "createContainer",
            Kind::StartContainer => "startContainer",
            Kind::Poststart => "poststart",
            Kind::Poststop => "poststop",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{kind} hook {path}: {msg}")]
    Failed { kind: &'static str, path: String, msg: String },
}

/// The hooks of one kind in the spec.
pub fn of_kind(spec: &Spec, kind: Kind) -> Vec<Hook> {
    of_kind_in(spec.hooks().as_ref(), kind)
}

/// The hooks of one kind in a hooks section (as kept in the container's state).
pub fn of_kind_in(hooks: Option<&Hooks>, kind: Kind) -> Vec<Hook> {
    let Some(h) = hooks else { return vec![] };
    #[allow(deprecated)]
    let list = match kind {
        Kind::Prestart => h.prestart(),
        Kind::CreateRuntime => h.create_runtime(),
        Kind::CreateContainer => h.create_container(),
        Kind::StartContainer => h.start_container(),
        Kind::Poststart => h.poststart(),
        Kind::Poststop => h.poststop(),
    };
    list.clone().unwrap_or_default()
}

/// True when the spec has any hook that runs during create (so the init must stop for them).
pub fn any_at_create(spec: &Spec) -> bool {
    [Kind::Prestart, Kind::CreateRuntime, Kind::CreateContainer]
        .iter()
        .any(|k| !of_kind(spec, *k).is_empty())
}

/// Runs the spec's hooks of `kind` in order, each with `state` (the OCI state JSON) on stdin;
/// the first failure stops the rest and is returned.
pub fn run(spec: &Spec, kind: Kind, state: &serde_json::Value) -> Result<(), HookError> {
    run_in(spec.hooks().as_ref(), kind, state)
}

/// [`run`] for a hooks section kept in the container's state.
pub fn run_in(hooks: Option<&Hooks>, kind: Kind, state: &serde_json::Value) -> Result<(), HookError> {
    for hook in of_kind_in(hooks, kind) {
        run_one(kind, &hook, state)?;
    }
    Ok(())
}

fn run_one(kind: Kind, hook: &Hook, _state: &serde_json::Value) -> Result<(), HookError> {
    Err(HookError::Failed {
        kind: kind.name(),
        path: hook.path().display().to_string(),
        msg: "hooks are not supported yet".into(),
    })
}
