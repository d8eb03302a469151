//! Which guest kernel to boot, and whether it is built for PVM hosts.
//!
//! The kernel is, in order: the `--kernel` flag, the HULL_KERNEL environment variable,
//! `kernel` under `[vm]` in the config file, or the default path where `just kernel`
//! (vmm/guest/build.sh) installs it. Whether it is a PVM kernel: HULL_KERNEL_PVM, else
//! `kernel_pvm` in the config file, else no.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::config::Config;

pub const DEFAULT_KERNEL: &str = "/usr/local/share/hull/vmlinuz";
pub const KERNEL_ENV: &str = "HULL_KERNEL";
pub const KERNEL_PVM_ENV: &str = "HULL_KERNEL_PVM";

/// Where the kernel path came from, for the message when it is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env,
    ConfigFile(PathBuf),
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag => write!(f, "given with --kernel"),
            Source::Env => write!(f, "from the {KERNEL_ENV} environment variable"),
            Source::ConfigFile(p) => write!(f, "from `kernel` under [vm] in {}", p.display()),
            Source::Default => write!(
                f,
                "the default; --kernel, {KERNEL_ENV} or `kernel` under [vm] in {} choose another",
                super::config::DEFAULT_PATH
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub path: PathBuf,
    pub source: Source,
    /// The kernel is built for PVM hosts.
    pub pvm: bool,
}

/// Picks the kernel from the flag, the environment (`env` looks a variable up) and the config.
pub fn choose(
    flag: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
    config: &Config,
) -> anyhow::Result<Choice> {
    let (path, source) = if let Some(p) = flag {
        (p.to_path_buf(), Source::Flag)
    } else if let Some(p) = env(KERNEL_ENV).filter(|v| !v.is_empty()) {
        (PathBuf::from(p), Source::Env)
    } else if let Some(p) = &config.vm.kernel {
        (p.clone(), Source::ConfigFile(config.path.clone()))
    } else {
        (PathBuf::from(DEFAULT_KERNEL), Source::Default)
    };
    let pvm = match env(KERNEL_PVM_ENV).filter(|v| !v.is_empty()) {
        Some(v) => parse_bool(&v).with_context(|| format!("{KERNEL_PVM_ENV}={v:?}"))?,
        None => config.vm.kernel_pvm.unwrap_or(false),
    };
    Ok(Choice { path, source, pvm })
}

fn parse_bool(v: &str) -> anyhow::Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => bail!("expected 1 or 0 (true or false)"),
    }
}

/// Opens the chosen kernel; a missing one names the path, where it came from and how to
/// build it.
pub fn open(choice: &Choice) -> anyhow::Result<vmm::KernelImage> {
    match std::fs::File::open(&choice.path) {
        Ok(file) => {
            if !file.metadata().is_ok_and(|m| m.is_file()) {
                bail!("the guest kernel {} ({}) is not a regular file", choice.path.display(), choice.source);
            }
            Ok(vmm::KernelImage { file, path: choice.path.clone() })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "no guest kernel at {} ({}): build and install it with `just kernel` (vmm/guest/build.sh)",
            choice.path.display(),
            choice.source
        ),
        Err(e) => Err(e).with_context(|| {
            format!("opening the guest kernel {} ({})", choice.path.display(), choice.source)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    fn config(kernel: Option<&str>, pvm: Option<bool>) -> Config {
        let mut c = Config::default();
        c.vm.kernel = kernel.map(PathBuf::from);
        c.vm.kernel_pvm = pvm;
        c.path = PathBuf::from("/etc/hull/config.toml");
        c
    }

    #[test]
    fn flag_then_env_then_config_then_default() {
        let cfg = config(Some("/cfg/k"), None);
        let env = env_of(&[("HULL_KERNEL", "/env/k")]);
        let c = choose(Some(Path::new("/flag/k")), &env, &cfg).unwrap();
        assert_eq!((c.path.as_path(), c.source), (Path::new("/flag/k"), Source::Flag));
        let c = choose(None, &env, &cfg).unwrap();
        assert_eq!((c.path.as_path(), c.source), (Path::new("/env/k"), Source::Env));
        let c = choose(None, env_of(&[]), &cfg).unwrap();
        assert_eq!(c.path, Path::new("/cfg/k"));
        assert!(matches!(c.source, Source::ConfigFile(_)));
        let c = choose(None, env_of(&[("HULL_KERNEL", "")]), &config(None, None)).unwrap();
        assert_eq!((c.path.as_path(), c.source), (Path::new(DEFAULT_KERNEL), Source::Default));
    }

    #[test]
    fn pvm_from_env_overrides_the_config() {
        let cfg = config(None, Some(true));
        assert!(choose(None, env_of(&[]), &cfg).unwrap().pvm);
        assert!(!choose(None, env_of(&[("HULL_KERNEL_PVM", "0")]), &cfg).unwrap().pvm);
        assert!(choose(None, env_of(&[("HULL_KERNEL_PVM", "1")]), &config(None, None)).unwrap().pvm);
        assert!(!choose(None, env_of(&[]), &config(None, None)).unwrap().pvm);
        assert!(choose(None, env_of(&[("HULL_KERNEL_PVM", "maybe")]), &cfg).is_err());
    }

    #[test]
    fn a_missing_kernel_says_where_it_looked_and_how_to_build_one() {
        let c = Choice { path: PathBuf::from("/nonexistent/vmlinuz"), source: Source::Default, pvm: false };
        let err = format!("{:#}", open(&c).unwrap_err());
        assert!(
            err.contains("/nonexistent/vmlinuz")
                && err.contains("the default")
                && err.contains("just kernel"),
            "{err}"
        );
        let c = Choice { source: Source::Env, ..c };
        assert!(format!("{:#}", open(&c).unwrap_err()).contains("HULL_KERNEL"));
    }
}
