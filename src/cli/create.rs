use crate::cli::{CreateOpts, GlobalOpts};
use crate::container;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub opts: CreateOpts,
    /// The new container's id.
    pub id: String,
}

pub fn run(g: &GlobalOpts, a: Args) -> anyhow::Result<u8> {
    container::create(&g.runtime(), &a.id, &a.opts.request(), false)?;
    Ok(0)
}
