use crate::cli::GlobalOpts;
use crate::container;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Signal every process of the container, not only its init.
    #[arg(short = 'a', long)]
    pub all: bool,
    /// The container's id.
    pub id: String,
    /// Signal name (TERM, SIGTERM) or number; SIGTERM when absent.
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

pub fn run(g: &GlobalOpts, a: Args) -> anyhow::Result<u8> {
    let sig = crate::signal::parse(&a.signal)?;
    container::kill(&g.runtime(), &a.id, sig, a.all)?;
    Ok(0)
}
