use crate::cli::GlobalOpts;

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_g: &GlobalOpts, _a: Args) -> anyhow::Result<u8> {
    super::output::println(&serde_json::to_string_pretty(&crate::spec::features())?)?;
    Ok(0)
}
