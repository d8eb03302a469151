use clap::ValueEnum;

use crate::cli::GlobalOpts;
use crate::container;

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// table: the host's `ps` output for the container's processes; json: their pids.
    #[arg(short = 'f', long, value_enum, default_value = "table")]
    pub format: Format,
    /// The container's id.
    pub id: String,
    /// Arguments for `ps` (table format; default -ef), after the id or after `--`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

pub fn run(g: &GlobalOpts, a: Args) -> anyhow::Result<u8> {
    match a.format {
        Format::Json => {
            if !a.ps_args.is_empty() {
                anyhow::bail!("ps {}: ps arguments only go with --format table", a.id);
            }
            let pids = container::ps_pids(&g.runtime(), &a.id)?;
            super::output::println(&serde_json::to_string(&pids)?)?;
        }
        Format::Table => super::output::print(&container::ps_table(&g.runtime(), &a.id, &a.ps_args)?)?,
    }
    Ok(0)
}
