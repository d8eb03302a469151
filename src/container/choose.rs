//! Which backend a new container gets, first answer wins: the `--backend` flag; the
//! bundle's `hull.backend` annotation (how Kubernetes pods and `podman --annotation` choose
//! per container); the program's name (`hull-vm`, so containerd's BinaryName and
//! `podman --runtime` choose with no flag); `backend` under `[runtime]` in the config file;
//! else native. The config file is read only when nothing before it decided, so the native
//! hot path does not pay for it.
//!
//! A Kubernetes pod sandbox (the pause container, marked so by containerd's and CRI-O's
//! annotations) is native unless the flag or `hull.backend` say otherwise: it only holds the
//! pod's namespaces, which the pod's VM containers then join by path (the network namespace
//! whose interfaces the VM mirrors), as crun's krun handler does.

use std::collections::HashMap;

use super::error::{Error, Result};
use super::{Backend, RuntimeContext};

/// The annotation in config.json that chooses the backend (and that `state` shows it in).
use crate::state::BACKEND_ANNOTATION as ANNOTATION;

/// The annotations by which containerd's and CRI-O's CRI mark a pod's sandbox container.
const SANDBOX_ANNOTATIONS: [(&str, &str); 2] =
    [("io.kubernetes.cri.container-type", "sandbox"), ("io.kubernetes.cri-o.ContainerType", "sandbox")];

/// The program name that means the vm backend.
pub const VM_PROGRAM: &str = "hull-vm";

/// The backend the program's name asks for: `hull-vm` (a link to hull) means vm.
pub fn backend_of_program(argv0: &std::ffi::OsStr) -> Option<Backend> {
    let name = std::path::Path::new(argv0).file_name()?;
    (name == VM_PROGRAM).then_some(Backend::Vm)
}

/// The backend for a container whose config.json has these annotations.
pub fn choose(rt: &RuntimeContext, annotations: Option<&HashMap<String, String>>) -> Result<Backend> {
    if let Some(b) = rt.backend_flag {
        return Ok(b);
    }
    if let Some(word) = annotations.and_then(|a| a.get(ANNOTATION)) {
        return Backend::parse(word).map_err(|e| Error::Invalid(format!("annotation {ANNOTATION}: {e}")));
    }
    if annotations.is_some_and(is_pod_sandbox) {
        return Ok(Backend::Native);
    }
    if let Some(b) = rt.backend_of_program {
        return Ok(b);
    }
    match crate::config::runtime_backend() {
        Ok(None) => Ok(Backend::default()),
        Ok(Some(word)) => Backend::parse(&word).map_err(|e| {
            Error::Invalid(format!("{}: [runtime] backend: {e}", crate::config::path().display()))
        }),
        Err(e) => Err(Error::Invalid(e)),
    }
}

fn is_pod_sandbox(annotations: &HashMap<String, String>) -> bool {
    SANDBOX_ANNOTATIONS.iter().any(|(key, value)| annotations.get(*key).is_some_and(|v| v == value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(flag: Option<Backend>, program: Option<Backend>) -> RuntimeContext {
        RuntimeContext {
            root: "/nonexistent".into(),
            rootless: false,
            systemd_cgroup: false,
            backend_flag: flag,
            backend_of_program: program,
        }
    }

    #[test]
    fn the_flag_then_the_annotation_then_the_program_name() {
        let vm: HashMap<String, String> = [(ANNOTATION.to_string(), "vm".to_string())].into();
        let native: HashMap<String, String> = [(ANNOTATION.to_string(), "native".to_string())].into();
        assert_eq!(choose(&rt(Some(Backend::Native), None), Some(&vm)).unwrap(), Backend::Native);
        assert_eq!(choose(&rt(None, Some(Backend::Vm)), Some(&native)).unwrap(), Backend::Native);
        assert_eq!(choose(&rt(None, None), Some(&vm)).unwrap(), Backend::Vm);
        assert_eq!(choose(&rt(None, Some(Backend::Vm)), None).unwrap(), Backend::Vm);
    }

    #[test]
    fn a_pod_sandbox_is_native_unless_the_flag_or_hull_backend_says_vm() {
        let sandbox = |extra: &[(&str, &str)]| -> HashMap<String, String> {
            let mut a: HashMap<String, String> =
                [("io.kubernetes.cri.container-type".to_string(), "sandbox".to_string())].into();
            a.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            a
        };
        let crio: HashMap<String, String> =
            [("io.kubernetes.cri-o.ContainerType".to_string(), "sandbox".to_string())].into();
        let app: HashMap<String, String> =
            [("io.kubernetes.cri.container-type".to_string(), "container".to_string())].into();
        assert_eq!(choose(&rt(None, Some(Backend::Vm)), Some(&sandbox(&[]))).unwrap(), Backend::Native);
        assert_eq!(choose(&rt(None, Some(Backend::Vm)), Some(&crio)).unwrap(), Backend::Native);
        assert_eq!(choose(&rt(None, Some(Backend::Vm)), Some(&app)).unwrap(), Backend::Vm);
        assert_eq!(choose(&rt(Some(Backend::Vm), None), Some(&sandbox(&[]))).unwrap(), Backend::Vm);
        let asked = sandbox(&[(ANNOTATION, "vm")]);
        assert_eq!(choose(&rt(None, Some(Backend::Vm)), Some(&asked)).unwrap(), Backend::Vm);
    }

    #[test]
    fn a_bad_annotation_names_itself() {
        let bad: HashMap<String, String> = [(ANNOTATION.to_string(), "foo".to_string())].into();
        let e = choose(&rt(None, None), Some(&bad)).unwrap_err().to_string();
        assert_eq!(e, "annotation hull.backend: unknown backend \"foo\" (native or vm)");
    }

    #[test]
    fn the_program_name() {
        assert_eq!(backend_of_program("/usr/local/bin/hull-vm".as_ref()), Some(Backend::Vm));
        assert_eq!(backend_of_program("hull-vm".as_ref()), Some(Backend::Vm));
        assert_eq!(backend_of_program("/usr/bin/hull".as_ref()), None);
    }
}
