use crate::cli::{GlobalOpts, IdArg};
use crate::container;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub id: IdArg,
}

pub fn run(g: &GlobalOpts, a: Args) -> anyhow::Result<u8> {
    container::resume(&g.runtime(), &a.id.id)?;
    Ok(0)
}
