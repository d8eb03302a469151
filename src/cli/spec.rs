use std::path::PathBuf;

use anyhow::{bail, Context};

use crate::cli::GlobalOpts;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Bundle directory to write config.json into.
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
}

pub fn run(g: &GlobalOpts, a: Args) -> anyhow::Result<u8> {
    let path = a.bundle.join("config.json");
    if path.exists() {
        bail!("File {} exists. Remove it first", path.display());
    }
    let spec = crate::spec::default_spec(g.rootless.as_deref().is_some_and(|v| v != "false"));
    let text = serde_json::to_string_pretty(&spec)?;
    std::fs::write(&path, text + "\n").with_context(|| format!("write {}", path.display()))?;
    Ok(0)
}
