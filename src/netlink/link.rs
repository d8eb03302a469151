//! Links (`RTM_*LINK`, `struct ifinfomsg`).

use super::attr::{self, Builder};
use super::{Result, Socket};

/// One network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// The hardware address (empty for links without one, such as lo's zeros or a tun).
    pub mac: Vec<u8>,
    pub mtu: u32,
    /// IFF_* flags.
    pub flags: u32,
    /// `IFLA_INFO_KIND`: "veth", "macvlan", "tun", ... (none for lo and physical NICs).
    pub kind: Option<String>,
}

impl Link {
    pub fn is_loopback(&self) -> bool {
        self.flags & libc::IFF_LOOPBACK as u32 != 0
    }

    pub fn is_up(&self) -> bool {
        self.flags & libc::IFF_UP as u32 != 0
    }
}

/// `struct ifinfomsg` for `index`, with `flags` under `change`.
fn ifinfomsg(index: u32, flags: u32, change: u32) -> Vec<u8> {
    let mut m = vec![libc::AF_UNSPEC as u8, 0, 0, 0];
    m.extend_from_slice(&(index as i32).to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&change.to_ne_bytes());
    m
}

/// Every link of the namespace.
pub fn list(sock: &mut Socket) -> Result<Vec<Link>> {
    let replies = sock.dump("listing links", libc::RTM_GETLINK, &ifinfomsg(0, 0, 0))?;
    Ok(replies.iter().filter(|m| m.kind == libc::RTM_NEWLINK).filter_map(|m| parse(&m.body)).collect())
}

fn parse(body: &[u8]) -> Option<Link> {
    let index = u32::from_ne_bytes(body.get(4..8)?.try_into().ok()?);
    let flags = u32::from_ne_bytes(body.get(8..12)?.try_into().ok()?);
    let attrs = attr::parse(body.get(16..)?);
    let kind = attr::find(&attrs, libc::IFLA_LINKINFO)
        .and_then(|info| attr::find(&attr::parse(&info), libc::IFLA_INFO_KIND).map(|k| attr::as_string(&k)));
    Some(Link {
        index,
        name: attr::as_string(&attr::find(&attrs, libc::IFLA_IFNAME)?),
        mac: attr::find(&attrs, libc::IFLA_ADDRESS).unwrap_or_default(),
        mtu: attr::find(&attrs, libc::IFLA_MTU).and_then(|v| attr::as_u32(&v)).unwrap_or(0),
        flags,
        kind,
    })
}

/// Sets the link's MTU and brings it up.
pub fn set_up(sock: &mut Socket, index: u32, mtu: Option<u32>) -> Result<()> {
    let up = libc::IFF_UP as u32;
    let mut body = ifinfomsg(index, up, up);
    if let Some(mtu) = mtu {
        body.extend(Builder::new().u32(libc::IFLA_MTU, mtu).finish());
    }
    sock.request(&format!("setting link {index} up"), libc::RTM_NEWLINK, 0, &body)
}

/// Renames the link (the kernel refuses while it is up, or when the name is taken).
pub fn rename(sock: &mut Socket, index: u32, name: &str) -> Result<()> {
    let mut body = ifinfomsg(index, 0, 0);
    body.extend(Builder::new().string(libc::IFLA_IFNAME, name).finish());
    sock.request(&format!("renaming link {index} to {name}"), libc::RTM_NEWLINK, 0, &body)
}

/// Sets the link's hardware address.
pub fn set_address(sock: &mut Socket, index: u32, mac: &[u8]) -> Result<()> {
    let mut body = ifinfomsg(index, 0, 0);
    body.extend(Builder::new().bytes(libc::IFLA_ADDRESS, mac).finish());
    sock.request(&format!("setting the address of link {index}"), libc::RTM_NEWLINK, 0, &body)
}

/// Moves the link into the network namespace `netns` (an fd of one, as /proc/PID/ns/net
/// opens).
pub fn move_to_netns(sock: &mut Socket, index: u32, netns: std::os::fd::BorrowedFd) -> Result<()> {
    use std::os::fd::AsRawFd;
    let mut body = ifinfomsg(index, 0, 0);
    body.extend(Builder::new().u32(libc::IFLA_NET_NS_FD, netns.as_raw_fd() as u32).finish());
    sock.request(&format!("moving link {index} to another network namespace"), libc::RTM_NEWLINK, 0, &body)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Runs `f` on a thread of its own in a new network namespace; None where this process
    /// may not make one (not root).
    pub(crate) fn in_new_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        std::thread::spawn(move || {
            // SAFETY: unshare on a constant flag; it changes only this thread's namespace.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return None;
            }
            Some(f())
        })
        .join()
        .unwrap()
    }

    #[test]
    fn a_new_namespace_has_lo_down_and_it_can_be_brought_up() {
        let Some(links) = in_new_netns(|| {
            let mut sock = Socket::open().unwrap();
            let before = list(&mut sock).unwrap();
            let lo = before.iter().find(|l| l.is_loopback()).unwrap().index;
            set_up(&mut sock, lo, None).unwrap();
            (before, list(&mut sock).unwrap())
        }) else {
            eprintln!("skipped: no network namespace for this test (not root?)");
            return;
        };
        let (before, after) = links;
        assert_eq!(before.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(), ["lo"]);
        assert!(!before[0].is_up());
        assert!(after[0].is_up());
        assert_eq!(after[0].mtu, 65536);
    }

    #[test]
    fn a_link_is_renamed_while_down_and_a_taken_name_is_refused() {
        let Some(result) = in_new_netns(|| {
            let mut sock = Socket::open().unwrap();
            add_veth(&mut sock, "hva0", "hvb0").unwrap();
            let index = |sock: &mut Socket, name: &str| {
                list(sock).unwrap().into_iter().find(|l| l.name == name).map(|l| l.index)
            };
            let a = index(&mut sock, "hva0").unwrap();
            rename(&mut sock, a, "wan0").unwrap();
            let taken = rename(&mut sock, a, "hvb0").unwrap_err();
            (index(&mut sock, "wan0"), a, index(&mut sock, "hva0"), taken)
        }) else {
            return;
        };
        let (renamed, a, old, taken) = result;
        assert_eq!(renamed, Some(a));
        assert_eq!(old, None);
        assert_eq!(taken.errno(), Some(libc::EEXIST), "{taken}");
        assert!(taken.to_string().contains("renaming link"), "{taken}");
    }

    #[test]
    fn a_missing_link_is_an_errno() {
        let Some(err) = in_new_netns(|| set_up(&mut Socket::open().unwrap(), 999, None).unwrap_err()) else {
            return;
        };
        assert_eq!(err.errno(), Some(libc::ENODEV), "{err}");
        assert!(err.to_string().contains("setting link 999 up"), "{err}");
    }

    /// Makes a veth pair `a` / `b` (tests make the interfaces a container runtime would).
    pub(crate) fn add_veth(sock: &mut Socket, a: &str, b: &str) -> Result<()> {
        const IFLA_INFO_DATA: u16 = 2;
        const VETH_INFO_PEER: u16 = 1;
        let mut body = ifinfomsg(0, 0, 0);
        body.extend(
            Builder::new()
                .string(libc::IFLA_IFNAME, a)
                .nested(libc::IFLA_LINKINFO, |info| {
                    info.string(libc::IFLA_INFO_KIND, "veth").nested(IFLA_INFO_DATA, |data| {
                        let mut peer = ifinfomsg(0, 0, 0);
                        peer.extend(Builder::new().string(libc::IFLA_IFNAME, b).finish());
                        data.bytes(VETH_INFO_PEER | attr::NESTED, &peer)
                    })
                })
                .finish(),
        );
        let flags = (libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16;
        sock.request(&format!("adding the veth pair {a}/{b}"), libc::RTM_NEWLINK, flags, &body)
    }
}
