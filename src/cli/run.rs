use crate::cli::{CreateOpts, GlobalOpts};
use crate::container;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub opts: CreateOpts,
    /// Return once the container runs instead of waiting for it.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep the container's state after it exits (runc's --keep).
    #[arg(long)]
    pub keep: bool,
    /// The new container's id.
    pub id: String,
}

pub fn run(g: &GlobalOpts, a: Args) -> anyhow::Result<u8> {
    let req = container::RunRequest { create: a.opts.request(), detach: a.detach, keep: a.keep };
    Ok(container::run(&g.runtime(), &a.id, &req)?)
}
