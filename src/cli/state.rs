use crate::cli::{output, GlobalOpts, IdArg};
use crate::container;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub id: IdArg,
}

pub fn run(g: &GlobalOpts, a: Args) -> anyhow::Result<u8> {
    let state = container::state(&g.runtime(), &a.id.id)?;
    output::println(&serde_json::to_string_pretty(&state)?)?;
    Ok(0)
}
