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
    // As runc's: the rootless spec only when asked for (`--rootless`, or `auto` resolving so).
    let rootless = g.rootless.is_some_and(|f| crate::container::RootlessFlag::resolve(Some(f)));
    let spec = crate::spec::default_spec(rootless);
    let text = serde_json::to_string_pretty(&spec)?;
    std::fs::write(&path, text + "\n").with_context(|| format!("write {}", path.display()))?;
    Ok(0)
}
