//! `exec --user NAME[:GROUP]` in a native container: names are the container's, read
//! through its init's root.

use oci_spec::runtime::User;

use crate::container::{Error, Result};
use crate::state::State;

/// uid[:gid] or name[:group], names looked up in the container's /etc/passwd and /etc/group
/// (through the init's root, never the host's files).
pub fn resolve_user(st: &State, spec: &str) -> Result<User> {
    resolve_user_in(std::path::Path::new(&format!("/proc/{}/root", st.pid)), spec)
}

/// The same, with names from the container files under `root`.
pub fn resolve_user_in(root: &std::path::Path, spec: &str) -> Result<User> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let lookup = |file: &str, name: &str| -> Result<(u32, Option<u32>)> {
        let text = read_in_root(root, &format!("etc/{file}")).unwrap_or_default();
        for line in text.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() >= 3 && f[0] == name {
                let id = f[2]
                    .parse()
                    .map_err(|e| Error::Invalid(format!("bad id for {name} in /etc/{file}: {e}")))?;
                let gid = f.get(3).and_then(|g| g.parse().ok());
                return Ok((id, gid));
            }
        }
        Err(Error::Invalid(format!(
            "no {} {name:?} in the container's /etc/{file}",
            if file == "passwd" { "user" } else { "group" }
        )))
    };
    let (uid, primary) = match u.parse::<u32>() {
        Ok(n) => (n, None),
        Err(_) => lookup("passwd", u)?,
    };
    let gid = match g {
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => lookup("group", g)?.0,
        },
        None => primary.unwrap_or(0),
    };
    let mut user = User::default();
    user.set_uid(uid);
    user.set_gid(gid);
    Ok(user)
}

/// A file's text, its path resolved inside `root` (a symlink in the image cannot name a host
/// file).
fn read_in_root(root: &std::path::Path, path: &str) -> Option<String> {
    let dir = std::fs::File::open(root).ok()?;
    let fd = crate::native::paths::open_in_root(
        &dir,
        std::path::Path::new(path),
        crate::native::paths::Create::No,
    )
    .ok()?;
    std::fs::read_to_string(crate::native::paths::proc_fd_path(&fd)).ok()
}
