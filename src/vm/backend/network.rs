//! A VM container's network on the host (issue 14), done by the VMM init in the container's
//! network namespace before the VM is built:
//!
//! ```text
//!   bridge / CNI / podman          container's network namespace                   guest
//!   ───────────────────   ┌──────────────────────────────────────────┐
//!        veth peer ═══════╪═ eth0 (veth)  ──ingress: redirect──▶ hulltap0 ═ VMM ═ virtio-net eth0
//!                         │              ◀──redirect: ingress──         (tap)        (same MAC, MTU,
//!                         └──────────────────────────────────────────┘               addresses, routes)
//! ```
//!
//! For each interface other than lo (one with an Ethernet address: a veth, a macvlan), a tap
//! (`hulltapN`, the first N free: the kernel picks it), an ingress qdisc on both and a u32 filter on each that redirects every frame
//! out of the other ([`crate::netlink::tc`]): what reaches the interface goes to the guest,
//! what the guest sends leaves through the interface. The guest's NIC gets the interface's
//! MAC and MTU; its addresses and the routes out of it go to the agent
//! ([`crate::agent::network`]), which sets them in the guest. A namespace with lo only gives a
//! guest with lo only.
//!
//! A namespace `create` made and found with lo only may still get an interface before
//! `start` (containerd 1.6's `ctr run --cni` sets its network up then): the guest gets one
//! spare NIC on a tap tied to nothing ([`spare`]), which the agent parks out of the
//! container's sight; `start` ties the first interface that came to that tap and has the agent
//! give the NIC its MAC, name, addresses and routes ([`at_start`]).
//!
//! Nothing stays: the taps are not persistent and go with the VMM; the interfaces' ingress
//! qdiscs (their filters with them) are removed by `delete` when the namespace outlives the
//! container (one named by path: podman's, CNI's), from the record this leaves in the state
//! directory ([`RECORD`]); a namespace `create` made goes with the VMM.

use std::os::fd::AsFd;
use std::path::Path;

use crate::agent::network::{GuestNetwork, GuestNic, GuestRoute, NicAddress};
use crate::netlink::{addr, link, route, tc, Socket};

/// In the container's state directory: the interfaces whose ingress `delete` removes.
pub const RECORD: &str = "network-links";
/// In the container's state directory until `start`: the spare NICs' taps and MACs.
pub const SPARE_RECORD: &str = "network-spare";

/// What the VM gets: a tap per NIC (with the MAC and MTU the NIC takes) and what the agent sets.
pub struct Plumbing {
    pub nics: Vec<vmm::NetConfig>,
    pub guest: GuestNetwork,
    /// The container's interfaces that now have an ingress qdisc.
    pub links: Vec<String>,
    /// The spare NICs' taps (by name) and MACs.
    pub spares: Vec<(String, [u8; 6])>,
}

impl Plumbing {
    /// No NIC: the guest has lo only.
    pub fn none() -> Plumbing {
        Plumbing { nics: Vec::new(), guest: GuestNetwork::default(), links: Vec::new(), spares: Vec::new() }
    }
}

/// The taps' names: the kernel gives each the first `hulltapN` free in the namespace (another
/// VM's taps may be there: a pod's second VM container then learns why it cannot have the
/// interfaces from [`tie_error`], not from a clash of tap names).
const TAP_NAME: &str = "hulltap%d";

/// Adds a spare NIC: a tap in this thread's network namespace tied to nothing yet, with a
/// random locally administered MAC, which the guest parks until [`at_start`].
pub fn spare(plumbing: &mut Plumbing) -> Result<(), String> {
    let tap = vmm::devices::virtio::net::Tap::open(TAP_NAME)
        .map_err(|e| format!("the container's network: a spare tap: {e}"))?;
    let mac = random_mac()?;
    plumbing.spares.push((tap.name().to_string(), mac));
    plumbing.guest.spares.push(mac.to_vec());
    plumbing.nics.push(vmm::NetConfig { tap, mac, mtu: None });
    Ok(())
}

/// A locally administered unicast MAC from the kernel's random pool.
fn random_mac() -> Result<[u8; 6], String> {
    let mut mac = [0u8; 6];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").map_err(|e| format!("/dev/urandom: {e}"))?,
        &mut mac,
    )
    .map_err(|e| format!("/dev/urandom: {e}"))?;
    mac[0] = (mac[0] & 0xfe) | 0x02;
    Ok(mac)
}

/// Ties every interface of this thread's network namespace to a tap of its own. On failure
/// what was done is undone.
pub fn plumb() -> Result<Plumbing, String> {
    let err = |e: crate::netlink::Error| format!("the container's network: {e}");
    let mut sock = Socket::open().map_err(err)?;
    let links = link::list(&mut sock).map_err(err)?;
    let addresses = addr::list(&mut sock).map_err(err)?;
    let routes = route::list(&mut sock).map_err(err)?;
    let mut undo = Undo { qdiscs: Vec::new() };
    let mut plumbing = Plumbing::none();
    let mut host_indexes = Vec::new();
    for l in links.iter().filter(|l| wanted(l)) {
        let Ok(mac) = <[u8; 6]>::try_from(l.mac.as_slice()) else { continue };
        let tap = vmm::devices::virtio::net::Tap::open(TAP_NAME)
            .map_err(|e| format!("the container's network: a tap for {}: {e}", l.name))?;
        let tap_index = link::list(&mut sock)
            .map_err(err)?
            .iter()
            .find(|t| t.name == tap.name())
            .map(|t| t.index)
            .ok_or_else(|| format!("the container's network: the tap {} is not listed", tap.name()))?;
        tie(&mut sock, l, tap_index, &mut undo).map_err(|e| tie_error(e, l))?;
        let mtu = u16::try_from(l.mtu).ok();
        plumbing.nics.push(vmm::NetConfig { tap, mac, mtu });
        plumbing.guest.nics.push(guest_nic(l, &addresses, None));
        host_indexes.push(l.index);
        plumbing.links.push(l.name.clone());
    }
    plumbing.guest.routes = guest_routes(routes, &host_indexes);
    undo.qdiscs.clear();
    Ok(plumbing)
}

/// Brings the tap up with the interface's MTU, and mirrors each one's ingress out of the
/// other.
fn tie(sock: &mut Socket, l: &link::Link, tap_index: u32, undo: &mut Undo) -> crate::netlink::Result<()> {
    link::set_up(sock, tap_index, Some(l.mtu))?;
    for index in [l.index, tap_index] {
        tc::add_ingress(sock, index)?;
        undo.qdiscs.push(index);
    }
    tc::redirect_ingress(sock, l.index, tap_index)?;
    tc::redirect_ingress(sock, tap_index, l.index)
}

/// Why `l` could not be tied. An ingress qdisc already on it is, most likely, another VM
/// container's in the same network namespace (a pod's second VM container): only one VM can
/// take an interface's traffic.
fn tie_error(e: crate::netlink::Error, l: &link::Link) -> String {
    if e.errno() == Some(libc::EEXIST) {
        format!(
            "the container's network: {} already has an ingress qdisc: another VM container in this network \
             namespace (a pod's) or a tc rule of the host's holds its traffic, and one VM container takes a \
             namespace's interfaces",
            l.name
        )
    } else {
        format!("the container's network: {e}")
    }
}

/// What the guest's NIC for `l` takes: its name, MAC, MTU and addresses (not the link-local
/// ones, which the guest makes itself).
fn guest_nic(l: &link::Link, addresses: &[addr::Address], device_mac: Option<Vec<u8>>) -> GuestNic {
    GuestNic {
        name: l.name.clone(),
        mac: l.mac.clone(),
        device_mac,
        mtu: l.mtu,
        addresses: addresses
            .iter()
            .filter(|a| a.index == l.index && !is_link_local(&a.ip))
            .map(|a| NicAddress { ip: a.ip, prefix: a.prefix })
            .collect(),
    }
}

/// The routes out of the interfaces at `host_indexes`, each naming its NIC by position.
fn guest_routes(routes: Vec<route::Route>, host_indexes: &[u32]) -> Vec<GuestRoute> {
    routes
        .into_iter()
        .filter_map(|r| {
            host_indexes.iter().position(|&i| Some(i) == r.oif).map(|nic| GuestRoute { nic, route: r })
        })
        .collect()
}

/// `start`: when `create` left a spare NIC (see [`spare`]) and the container's network
/// namespace (the init's) has gained interfaces since, ties the first ones to the spares' taps
/// and has the agent behind `socket` set the NICs up; adds them to the record `delete` reads.
/// Nothing to do without a spare or a new interface.
pub fn at_start(state_dir: &Path, init_pid: i32, socket: &Path) -> Result<(), String> {
    let record = state_dir.join(SPARE_RECORD);
    let Ok(text) = std::fs::read_to_string(&record) else { return Ok(()) };
    let spares: Vec<(String, Vec<u8>)> = text
        .lines()
        .filter_map(|l| {
            let (tap, mac) = l.split_once(' ')?;
            let mac: Option<Vec<u8>> = mac.split(':').map(|b| u8::from_str_radix(b, 16).ok()).collect();
            Some((tap.to_string(), mac?))
        })
        .collect();
    let netns = format!("/proc/{init_pid}/ns/net");
    let file = std::fs::File::open(&netns).map_err(|e| format!("{netns}: {e}"))?;
    let found = crate::netlink::in_netns(
        file.as_fd(),
        &netns,
        || -> Result<Option<(GuestNetwork, Vec<String>)>, String> {
            let err = |e: crate::netlink::Error| format!("the container's network: {e}");
            let mut sock = Socket::open().map_err(err)?;
            let links = link::list(&mut sock).map_err(err)?;
            let new: Vec<&link::Link> = links.iter().filter(|l| wanted(l)).collect();
            if new.is_empty() {
                return Ok(None);
            }
            if new.len() > spares.len() {
                crate::logging::warn(&format!(
                "the container's network namespace gained {} interfaces between create and start; the VM has                  room for {}: {} stay out of the guest",
                new.len(),
                spares.len(),
                new.iter().skip(spares.len()).map(|l| l.name.as_str()).collect::<Vec<_>>().join(", ")
            ));
            }
            let addresses = addr::list(&mut sock).map_err(err)?;
            let routes = route::list(&mut sock).map_err(err)?;
            let mut undo = Undo { qdiscs: Vec::new() };
            let mut guest = GuestNetwork::default();
            let mut names = Vec::new();
            let mut host_indexes = Vec::new();
            for (l, (tap, mac)) in new.into_iter().zip(spares) {
                let tap_index = links
                    .iter()
                    .find(|t| t.name == tap)
                    .map(|t| t.index)
                    .ok_or_else(|| format!("the container's network: the spare tap {tap} is gone"))?;
                tie(&mut sock, l, tap_index, &mut undo).map_err(|e| tie_error(e, l))?;
                guest.nics.push(guest_nic(l, &addresses, Some(mac)));
                host_indexes.push(l.index);
                names.push(l.name.clone());
            }
            guest.routes = guest_routes(routes, &host_indexes);
            undo.qdiscs.clear();
            Ok(Some((guest, names)))
        },
    )??;
    let Some((guest, names)) = found else { return Ok(()) };
    append_record(state_dir, &names)?;
    super::control::network(socket, &guest)
        .map_err(|e| format!("the container's network: the guest did not take the new interfaces: {e}"))?;
    let _ = std::fs::remove_file(record);
    Ok(())
}

/// The interfaces a NIC stands for: not lo, with an Ethernet address (an L3 device such as
/// wireguard, or a tun in tun mode, has none and cannot be bridged to a NIC), and not a tap of
/// hull's own (another VM container's in the same namespace). Another program's tap is
/// wanted: rootless podman's slirp4netns gives the container a `tap0` whose other end is
/// slirp4netns itself, and mirroring works on it as on a veth.
fn wanted(l: &link::Link) -> bool {
    !l.is_loopback() && l.mac.len() == 6 && !is_hulls_tap(l)
}

/// A tap made by [`Tap::open`](vmm::devices::virtio::net::Tap::open) with [`TAP_NAME`].
fn is_hulls_tap(l: &link::Link) -> bool {
    let prefix = TAP_NAME.trim_end_matches("%d");
    l.kind.as_deref() == Some("tun")
        && l.name.strip_prefix(prefix).is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The guest makes its own link-local addresses (from the same MAC, so the same ones).
fn is_link_local(ip: &std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
        std::net::IpAddr::V4(v4) => v4.is_link_local(),
    }
}

/// Removes the ingress qdiscs added so far unless cleared.
struct Undo {
    qdiscs: Vec<u32>,
}

impl Drop for Undo {
    fn drop(&mut self) {
        if self.qdiscs.is_empty() {
            return;
        }
        if let Ok(mut sock) = Socket::open() {
            for &index in &self.qdiscs {
                let _ = tc::del_ingress(&mut sock, index);
            }
        }
    }
}

/// Writes the names of the interfaces that now have an ingress qdisc, for `delete`, and the
/// spare NICs, for `start`.
pub fn record(dir: &Path, plumbing: &Plumbing) -> Result<(), String> {
    if !plumbing.spares.is_empty() {
        let path = dir.join(SPARE_RECORD);
        let lines: Vec<String> = plumbing
            .spares
            .iter()
            .map(|(tap, mac)| format!("{tap} {}", crate::agent::network::mac_string(mac)))
            .collect();
        std::fs::write(&path, lines.join("\n")).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    append_record(dir, &plumbing.links)
}

/// Adds the interfaces `links` to the record `delete` reads.
fn append_record(dir: &Path, links: &[String]) -> Result<(), String> {
    if links.is_empty() {
        return Ok(());
    }
    let path = dir.join(RECORD);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    let text: String = links.iter().map(|l| format!("{l}\n")).collect();
    std::io::Write::write_all(&mut file, text.as_bytes())
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

/// `delete` (and a failed create): in the namespace at `netns` (the spec's path, which
/// outlives the container), removes the ingress qdiscs of the interfaces in the record. On a
/// thread of its own, which alone enters that namespace.
pub fn release(state_dir: &Path, netns: &Path) -> Result<(), String> {
    let Ok(text) = std::fs::read_to_string(state_dir.join(RECORD)) else { return Ok(()) };
    let names: Vec<String> = text.lines().filter(|l| !l.is_empty()).map(str::to_string).collect();
    let file = std::fs::File::open(netns).map_err(|e| format!("{}: {e}", netns.display()))?;
    crate::netlink::in_netns(file.as_fd(), &netns.display().to_string(), || -> Result<(), String> {
        let mut sock = Socket::open().map_err(|e| e.to_string())?;
        for l in link::list(&mut sock).map_err(|e| e.to_string())? {
            if names.contains(&l.name) {
                match tc::del_ingress(&mut sock, l.index) {
                    Err(e) if e.errno() != Some(libc::EINVAL) && e.errno() != Some(libc::ENOENT) => {
                        return Err(e.to_string())
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    })?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::link::tests::in_new_netns;

    /// What a runtime leaves in a container's namespace: a veth end with an address and the
    /// default route through its peer.
    fn container_namespace(sock: &mut Socket) -> link::Link {
        link::tests::add_veth(sock, "ceth0", "peer0").unwrap();
        let links = link::list(sock).unwrap();
        let ceth = links.iter().find(|l| l.name == "ceth0").unwrap().clone();
        link::set_up(sock, ceth.index, None).unwrap();
        addr::add(sock, ceth.index, &"10.5.0.2".parse().unwrap(), 24).unwrap();
        let default = route::Route {
            dst: None,
            dst_len: 0,
            gateway: Some("10.5.0.1".parse().unwrap()),
            oif: None,
            metric: None,
            ipv6: false,
        };
        route::add(sock, &default, ceth.index).unwrap();
        ceth
    }

    #[test]
    fn each_interface_gets_a_tap_tied_to_it_and_delete_unties_it() {
        let Some(outcome) = in_new_netns(|| {
            let mut sock = Socket::open().unwrap();
            let ceth = container_namespace(&mut sock);
            let plumbing = plumb().unwrap();
            // The qdisc is there: a second one cannot be added, and a second VM's plumbing
            // says why it cannot have the interface.
            let tied = tc::add_ingress(&mut sock, ceth.index).map_err(|e| e.errno());
            let second = plumb().err().unwrap_or_default();
            let tap_up = link::list(&mut sock).unwrap().iter().any(|l| l.name == "hulltap0" && l.is_up());
            let dir = std::env::temp_dir().join(format!("hull-net-test-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            record(&dir, &plumbing).unwrap();
            // SAFETY: gettid has no arguments and cannot fail.
            let tid = unsafe { libc::gettid() };
            release(&dir, Path::new(&format!("/proc/self/task/{tid}/ns/net"))).unwrap();
            let untied = tc::add_ingress(&mut sock, ceth.index).map_err(|e| e.errno());
            let _ = std::fs::remove_dir_all(&dir);
            (ceth, plumbing.guest, plumbing.links, plumbing.nics.len(), tied, tap_up, untied, second)
        }) else {
            eprintln!("skipped: no network namespace for this test (not root?)");
            return;
        };
        let (ceth, guest, links, nics, tied, tap_up, untied, second) = outcome;
        // Both ends of the test's veth are in the namespace: each is an interface to tie.
        assert_eq!(nics, 2);
        let i = links.iter().position(|l| l == "ceth0").unwrap();
        assert_eq!(guest.nics[i].mac, ceth.mac);
        assert_eq!(guest.nics[i].mtu, 1500);
        assert_eq!(guest.nics[i].addresses, [NicAddress { ip: "10.5.0.2".parse().unwrap(), prefix: 24 }]);
        assert_eq!(guest.routes.len(), 1);
        assert_eq!(
            (guest.routes[0].nic, guest.routes[0].route.gateway),
            (i, Some("10.5.0.1".parse().unwrap()))
        );
        assert_eq!(tied, Err(Some(libc::EEXIST)), "the interface has its ingress qdisc");
        assert!(second.contains("already has an ingress qdisc: another VM container"), "{second}");
        assert!(tap_up, "the tap is up");
        assert_eq!(untied, Ok(()), "release removed the qdisc");
    }

    #[test]
    fn another_programs_tap_is_tied_and_hulls_own_are_not() {
        let link = |name: &str, kind: Option<&str>, mac: &[u8]| link::Link {
            index: 2,
            name: name.to_string(),
            mac: mac.to_vec(),
            mtu: 1500,
            flags: 0,
            kind: kind.map(str::to_string),
        };
        let mac = [2, 0, 0, 0, 0, 1];
        assert!(wanted(&link("tap0", Some("tun"), &mac)), "slirp4netns's tap");
        assert!(wanted(&link("eth0", Some("veth"), &mac)));
        assert!(!wanted(&link("hulltap0", Some("tun"), &mac)), "another VM container's tap");
        assert!(!wanted(&link("hulltap12", Some("tun"), &mac)));
        assert!(wanted(&link("hulltap12", Some("veth"), &mac)), "only a tap is hull's");
        assert!(!wanted(&link("tun0", Some("tun"), &[])), "a tun in tun mode has no MAC");

        // In a namespace: a tap held open by another program (as slirp4netns holds its tap0),
        // with an address, gets a NIC of its own.
        let Some(outcome) = in_new_netns(|| {
            let mut sock = Socket::open().unwrap();
            let tap = vmm::devices::virtio::net::Tap::open("tap0").unwrap();
            let l = link::list(&mut sock).unwrap().into_iter().find(|l| l.name == tap.name()).unwrap();
            link::set_up(&mut sock, l.index, None).unwrap();
            addr::add(&mut sock, l.index, &"10.0.2.100".parse().unwrap(), 24).unwrap();
            let plumbing = plumb().unwrap();
            (plumbing.links, plumbing.guest.nics[0].addresses.clone(), tap)
        }) else {
            return;
        };
        assert_eq!(outcome.0, ["tap0"]);
        assert_eq!(outcome.1, [NicAddress { ip: "10.0.2.100".parse().unwrap(), prefix: 24 }]);
    }

    #[test]
    fn a_namespace_with_lo_only_gives_no_nic() {
        let Some(plumbing) = in_new_netns(|| plumb().map(|p| (p.nics.len(), p.guest, p.links))) else {
            return;
        };
        assert_eq!(plumbing.unwrap(), (0, GuestNetwork::default(), Vec::<String>::new()));
    }
}
