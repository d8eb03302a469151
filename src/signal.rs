//! Signal names and numbers as `kill` accepts them: `TERM`, `SIGTERM`, `15`.

use nix::sys::signal::Signal;
use std::str::FromStr;

#[derive(Debug, thiserror::Error)]
#[error("unknown signal {0:?}")]
pub struct UnknownSignal(String);

pub fn parse(s: &str) -> Result<Signal, UnknownSignal> {
    let t = s.trim();
    if let Ok(n) = t.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| UnknownSignal(s.to_string()));
    }
    let upper = t.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    Signal::from_str(&name).map_err(|_| UnknownSignal(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn accepts_runc_forms() {
        assert_eq!(parse("TERM").unwrap(), Signal::SIGTERM);
        assert_eq!(parse("sigkill").unwrap(), Signal::SIGKILL);
        assert_eq!(parse("9").unwrap(), Signal::SIGKILL);
        assert_eq!(parse("SIGUSR1").unwrap(), Signal::SIGUSR1);
        assert!(parse("NOPE").is_err());
        assert!(parse("999").is_err());
    }
}
