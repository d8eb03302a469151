use crate::cli::GlobalOpts;
use crate::container;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// table or json.
    #[arg(short = 'f', long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
    /// Print only the ids.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

pub fn run(g: &GlobalOpts, a: Args) -> anyhow::Result<u8> {
    let all = container::list(&g.runtime())?;
    if a.quiet {
        for c in &all {
            println!("{}", c.id);
        }
    } else if a.format == "json" {
        println!("{}", serde_json::to_string(&all)?);
    } else {
        println!("{:<24}{:<10}{:<10}{:<40}{:<32}OWNER", "ID", "PID", "STATUS", "BUNDLE", "CREATED");
        for c in &all {
            println!("{:<24}{:<10}{:<10}{:<40}{:<32}{}", c.id, c.pid, c.status, c.bundle, c.created, c.owner);
        }
    }
    Ok(0)
}
