//! The host's name for a uid, read from /etc/passwd.
//!
//! Not getpwuid(3): hull is linked statically (.cargo/config.toml), and a static glibc that
//! misses a uid in its built-in `files` lookup goes on to load the next NSS module of
//! nsswitch.conf (`systemd`, `sss`, ...) with dlopen, which brings a second, shared libc into
//! the process and crashes it. hull wants a name in two places only (an /etc/subuid line may
//! name its user; `state`'s owner field), and local users are what both need: a user known
//! only to LDAP or sssd gets its uid, and its /etc/subuid lines must give the uid too.

/// The name /etc/passwd gives `uid`, if any.
pub fn name_of(uid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    name_in(&text, uid).map(str::to_owned)
}

/// The first name of `uid` in passwd(5) text.
fn name_in(text: &str, uid: u32) -> Option<&str> {
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id = fields.nth(1)?;
        (!name.is_empty() && !name.starts_with(['#', '+', '-']) && id.parse() == Ok(uid)).then_some(name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
                          # a comment:x:5\n\
                          +nis:x:7::::\n\
                          daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
                          broken\n\
                          bad:x:notanumber:1::/:/bin/sh\n\
                          alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash\n\
                          alias:x:1000:1000::/home/alice:/bin/bash\n";

    #[test]
    fn finds_the_first_name_of_a_uid() {
        assert_eq!(name_in(PASSWD, 0), Some("root"));
        assert_eq!(name_in(PASSWD, 1), Some("daemon"));
        assert_eq!(name_in(PASSWD, 1000), Some("alice"));
    }

    #[test]
    fn skips_comments_compat_entries_and_broken_lines() {
        assert_eq!(name_in(PASSWD, 5), None);
        assert_eq!(name_in(PASSWD, 7), None);
        assert_eq!(name_in(PASSWD, 61999), None);
        assert_eq!(name_in("", 0), None);
    }

    #[test]
    fn this_host_names_root() {
        assert_eq!(name_of(0).as_deref(), Some("root"));
    }
}
