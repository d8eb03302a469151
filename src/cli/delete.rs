use crate::cli::GlobalOpts;
use crate::container;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Kill a running container first (SIGKILL) instead of refusing.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// The container's id.
    pub id: String,
}

pub fn run(g: &GlobalOpts, a: Args) -> anyhow::Result<u8> {
    container::delete(&g.runtime(), &a.id, a.force)?;
    Ok(0)
}
