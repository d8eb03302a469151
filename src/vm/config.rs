//! hull's configuration file, /etc/hull/config.toml: the vm backend's settings.
//!
//! ```toml
//! [vm]
//! kernel = "/usr/local/share/hull/vmlinuz"   # the guest kernel
//! kernel_pvm = false                          # true: the kernel is built for PVM hosts
//! memory_mib = 256      # a VM container's guest RAM when its spec sets no memory limit
//! cpus = 1              # its vcpus when the spec sets no cpu quota or cpuset
//! boot_timeout_s = 60   # how long `create` waits for the guest agent
//! ```
//!
//! A missing file is the same as an empty one. HULL_CONFIG names another file (tests use it).

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

// The file is hull's (src/config.rs); this module reads its [vm] section.
pub use crate::config::{path, DEFAULT_PATH};

#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
pub struct Config {
    #[serde(default)]
    pub vm: VmSection,
    /// Where it was read from, for messages.
    #[serde(skip)]
    pub path: PathBuf,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmSection {
    pub kernel: Option<PathBuf>,
    pub kernel_pvm: Option<bool>,
    pub memory_mib: Option<u32>,
    pub cpus: Option<u8>,
    pub boot_timeout_s: Option<u64>,
}

pub fn load() -> anyhow::Result<Config> {
    load_from(&path())
}

pub fn load_from(path: &Path) -> anyhow::Result<Config> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut config = parse(&text).with_context(|| format!("parsing {}", path.display()))?;
    config.path = path.to_path_buf();
    Ok(config)
}

fn parse(text: &str) -> anyhow::Result<Config> {
    // Other sections are for other parts of hull; [vm] is checked strictly.
    Ok(toml::from_str(text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_vm_section() {
        let c =
            parse("[vm]\nkernel = \"/k/vmlinuz\"\nkernel_pvm = true\nmemory_mib = 512\ncpus = 2\n").unwrap();
        assert_eq!((c.vm.memory_mib, c.vm.cpus, c.vm.boot_timeout_s), (Some(512), Some(2), None));
        assert_eq!(c.vm.kernel.as_deref(), Some(Path::new("/k/vmlinuz")));
        assert_eq!(c.vm.kernel_pvm, Some(true));
    }

    #[test]
    fn an_empty_or_missing_file_sets_nothing() {
        assert_eq!(parse("").unwrap().vm, VmSection::default());
        let c = load_from(Path::new("/nonexistent/hull/config.toml")).unwrap();
        assert_eq!(c.vm, VmSection::default());
    }

    #[test]
    fn other_sections_are_left_alone_but_typos_in_vm_are_errors() {
        assert!(parse("[other]\nx = 1\n").is_ok());
        let err = format!("{:#}", parse("[vm]\nkernal = \"/k\"\n").unwrap_err());
        assert!(err.contains("kernal"), "{err}");
        assert!(parse("[vm]\nkernel_pvm = \"yes\"\n").is_err());
    }
}
