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
    // One write: a reader that stops early ends the listing, quietly.
    let mut text = String::new();
    if a.quiet {
        for c in &all {
            text += &format!("{}\n", c.id);
        }
    } else if a.format == "json" {
        text = format!("{}\n", serde_json::to_string(&all)?);
    } else {
        text = format!("{:<24}{:<10}{:<10}{:<40}{:<32}OWNER\n", "ID", "PID", "STATUS", "BUNDLE", "CREATED");
        for c in &all {
            text += &format!(
                "{:<24}{:<10}{:<10}{:<40}{:<32}{}\n",
                c.id, c.pid, c.status, c.bundle, c.created, c.owner
            );
        }
    }
    super::output::print(&text)?;
    Ok(0)
}
