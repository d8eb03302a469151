//! A VM container's network in the guest: what the host found in the container's network
//! namespace (`vm::backend::network`), set on the guest's NICs before the container is made.
//! The container shares the guest's network namespace, so this is its network.
//!
//! Interfaces that appear in that namespace between `create` and `start` (containerd 1.6's
//! `ctr run --cni` sets its network up then) come on spare NICs: the VMM gives a guest whose
//! namespace was empty at `create` one NIC more, which the agent parks in a network namespace
//! of its own at boot (the container sees lo only), and at `start` the host ties the new
//! interface to the spare's tap and sends what it has ([`adopt`]): the NIC comes back and
//! takes the interface's MAC, name, MTU, addresses and routes.

use std::fs::File;
use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::OnceLock;

use anyhow::{anyhow, Context};
use serde::{Deserialize, Serialize};

use crate::netlink::{self, addr, link, route, Socket};

/// The NICs the guest has, in the order the VMM attached them, and the routes out of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestNetwork {
    pub nics: Vec<GuestNic>,
    pub routes: Vec<GuestRoute>,
    /// The MACs of spare NICs, parked until `start` brings an interface for them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spares: Vec<Vec<u8>>,
}

/// One NIC: the name and MAC of the interface it stands for (the guest finds it by the MAC and
/// gives it the name), its MTU and addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestNic {
    pub name: String,
    pub mac: Vec<u8>,
    /// The MAC the device was made with, when it is not `mac`: a spare NIC that takes an
    /// interface at `start` is found by it, then given `mac`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_mac: Option<Vec<u8>>,
    pub mtu: u32,
    pub addresses: Vec<NicAddress>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NicAddress {
    pub ip: IpAddr,
    pub prefix: u8,
}

/// A route out of the NIC at `nic` in [`GuestNetwork::nics`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestRoute {
    pub nic: usize,
    pub route: route::Route,
}

pub fn mac_string(mac: &[u8]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Brings lo up, parks the spare NICs, then sets each NIC with its MTU and addresses, then the
/// routes: those to a link first, those through a gateway after (a gateway must be reachable
/// when its route is added).
pub fn configure(net: &GuestNetwork) -> anyhow::Result<()> {
    let mut sock = Socket::open()?;
    let links = link::list(&mut sock)?;
    if let Some(lo) = links.iter().find(|l| l.is_loopback()) {
        link::set_up(&mut sock, lo.index, None)?;
    }
    if !net.spares.is_empty() {
        let parking = parking()?;
        for mac in &net.spares {
            let link = find(&links, mac)?;
            link::move_to_netns(&mut sock, link.index, parking)
                .with_context(|| format!("parking the spare NIC {}", mac_string(mac)))?;
        }
    }
    apply(&mut sock, &links, net)
}

/// At `start`: the interfaces the container's namespace gained after `create`, each on a
/// spare NIC (`device_mac`) that comes back from where [`configure`] parked it.
pub fn adopt(net: &GuestNetwork) -> anyhow::Result<()> {
    let here: OwnedFd = File::open("/proc/thread-self/ns/net").context("/proc/thread-self/ns/net")?.into();
    let macs: Vec<Vec<u8>> =
        net.nics.iter().map(|n| n.device_mac.clone().unwrap_or_else(|| n.mac.clone())).collect();
    crate::netlink::in_netns(parking()?, "the parking namespace", || -> anyhow::Result<()> {
        let mut sock = Socket::open()?;
        let links = link::list(&mut sock)?;
        for mac in &macs {
            let link = find(&links, mac).context("no such spare NIC")?;
            link::move_to_netns(&mut sock, link.index, here.as_fd())?;
        }
        Ok(())
    })
    .map_err(|e| anyhow!(e))??;
    let mut sock = Socket::open()?;
    let links = link::list(&mut sock)?;
    apply(&mut sock, &links, net)
}

/// The NIC whose device MAC is `mac`.
fn find<'a>(links: &'a [link::Link], mac: &[u8]) -> anyhow::Result<&'a link::Link> {
    links
        .iter()
        .find(|l| l.mac == mac)
        .with_context(|| format!("the guest has no NIC with the MAC {}", mac_string(mac)))
}

/// A network namespace of the agent's own, where spare NICs wait (made once, held by its fd;
/// the exec servers, forked from the agent, inherit it).
fn parking() -> anyhow::Result<BorrowedFd<'static>> {
    static PARKING: OnceLock<OwnedFd> = OnceLock::new();
    if PARKING.get().is_none() {
        // On a thread of its own: unshare moves only the calling thread.
        let fd = std::thread::spawn(|| -> anyhow::Result<OwnedFd> {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).context("unshare(CLONE_NEWNET)")?;
            Ok(File::open("/proc/thread-self/ns/net").context("/proc/thread-self/ns/net")?.into())
        })
        .join()
        .map_err(|_| anyhow!("the thread making the parking namespace panicked"))??;
        let _ = PARKING.set(fd);
    }
    PARKING.get().map(|fd| fd.as_fd()).context("no parking namespace")
}

/// Sets each NIC of `net` (found among `links` by its device MAC): its MAC when it takes
/// another, its name, MTU, addresses, up; then the routes.
fn apply(sock: &mut Socket, links: &[link::Link], net: &GuestNetwork) -> anyhow::Result<()> {
    let mut found = Vec::with_capacity(net.nics.len());
    for nic in &net.nics {
        let link = find(links, nic.device_mac.as_deref().unwrap_or(&nic.mac))?;
        if link.mac != nic.mac {
            link::set_address(sock, link.index, &nic.mac)?;
        }
        found.push((nic, link));
    }
    rename_nics(sock, &found)?;
    let mut indexes = Vec::with_capacity(found.len());
    for (nic, link) in found {
        link::set_up(sock, link.index, Some(nic.mtu))?;
        for a in &nic.addresses {
            tolerate_exists(addr::add(sock, link.index, &a.ip, a.prefix))?;
        }
        indexes.push(link.index);
    }
    let mut routes: Vec<&GuestRoute> = net.routes.iter().collect();
    routes.sort_by_key(|r| r.route.gateway.is_some());
    for r in routes {
        let oif = *indexes
            .get(r.nic)
            .with_context(|| format!("a route names NIC {}, which is not there", r.nic))?;
        tolerate_exists(route::add(sock, &r.route, oif))?;
    }
    Ok(())
}

/// Gives each NIC (still down) the name of the interface it stands for, so the container sees
/// the names its network namespace had. The ones that move go through a temporary name first:
/// two NICs may swap names (the host's eth1 is the guest's eth0, and the other way round).
fn rename_nics(sock: &mut Socket, nics: &[(&GuestNic, &link::Link)]) -> anyhow::Result<()> {
    let moving: Vec<_> =
        nics.iter().filter(|(nic, link)| !nic.name.is_empty() && nic.name != link.name).collect();
    for (i, (_, link)) in moving.iter().enumerate() {
        link::rename(sock, link.index, &format!("hullnic{i}"))?;
    }
    for (nic, link) in moving {
        link::rename(sock, link.index, &nic.name)
            .with_context(|| format!("naming the guest's NIC {} {}", mac_string(&nic.mac), nic.name))?;
    }
    Ok(())
}

/// An address or route the kernel already has (one it made itself) is fine.
fn tolerate_exists(r: netlink::Result<()>) -> anyhow::Result<()> {
    match r {
        Err(e) if e.errno() == Some(libc::EEXIST) => Ok(()),
        other => Ok(other?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_network_travels_as_json() {
        let net = GuestNetwork {
            nics: vec![GuestNic {
                name: "eth0".into(),
                mac: vec![2, 0x42, 0xac, 0x11, 0, 2],
                device_mac: None,
                mtu: 1500,
                addresses: vec![NicAddress { ip: "172.17.0.2".parse().unwrap(), prefix: 16 }],
            }],
            routes: vec![GuestRoute {
                nic: 0,
                route: route::Route {
                    dst: None,
                    dst_len: 0,
                    gateway: Some("172.17.0.1".parse().unwrap()),
                    oif: Some(7),
                    metric: None,
                    ipv6: false,
                },
            }],
            spares: vec![],
        };
        let text = serde_json::to_string(&net).unwrap();
        assert_eq!(serde_json::from_str::<GuestNetwork>(&text).unwrap(), net);
        assert_eq!(mac_string(&net.nics[0].mac), "02:42:ac:11:00:02");
    }

    /// Two NICs whose names are each other's (the guest's order is not the host's): each ends
    /// up with its own name, up, with its MTU, address and routes.
    #[test]
    fn nics_take_their_names_even_when_two_swap() {
        use crate::netlink::link::tests::{add_veth, in_new_netns};
        let Some(result) = in_new_netns(|| -> anyhow::Result<Vec<link::Link>> {
            let mut sock = Socket::open()?;
            add_veth(&mut sock, "hva0", "hvb0")?;
            let links = link::list(&mut sock)?;
            let mac = |name: &str| links.iter().find(|l| l.name == name).map(|l| l.mac.clone());
            let nic = |name: &str, mac: Vec<u8>, ip: &str| GuestNic {
                name: name.into(),
                mac,
                device_mac: None,
                mtu: 1400,
                addresses: vec![NicAddress { ip: ip.parse().unwrap(), prefix: 24 }],
            };
            let net = GuestNetwork {
                nics: vec![
                    nic("hvb0", mac("hva0").context("no hva0")?, "10.1.0.2"),
                    nic("hva0", mac("hvb0").context("no hvb0")?, "10.2.0.2"),
                ],
                routes: vec![GuestRoute {
                    nic: 1,
                    route: route::Route {
                        dst: None,
                        dst_len: 0,
                        gateway: Some("10.2.0.1".parse().unwrap()),
                        oif: None,
                        metric: None,
                        ipv6: false,
                    },
                }],
                spares: vec![],
            };
            configure(&net)?;
            let after = link::list(&mut sock)?;
            // Swapped back: what was hva0 is now hvb0.
            assert_eq!(after.iter().find(|l| l.name == "hvb0").map(|l| l.mac.clone()), mac("hva0"));
            assert_eq!(after.iter().find(|l| l.name == "hva0").map(|l| l.mac.clone()), mac("hvb0"));
            Ok(after)
        }) else {
            eprintln!("skipped: no network namespace for this test (not root?)");
            return;
        };
        let links = result.unwrap();
        for name in ["hva0", "hvb0"] {
            let l = links.iter().find(|l| l.name == name).unwrap();
            assert!(l.is_up(), "{name} is down");
            assert_eq!(l.mtu, 1400, "{name}");
        }
        assert!(!links.iter().any(|l| l.name.starts_with("hullnic")), "{links:?}");
    }

    /// A spare NIC is out of sight after `configure`, and `adopt` brings it back with the MAC,
    /// name, MTU, address and default route of the interface it stands for.
    #[test]
    fn a_spare_nic_is_parked_then_adopted() {
        use crate::netlink::link::tests::{add_veth, in_new_netns};
        let Some(result) =
            in_new_netns(|| -> anyhow::Result<(Vec<link::Link>, Vec<link::Link>, Vec<route::Route>)> {
                let mut sock = Socket::open()?;
                add_veth(&mut sock, "hvspare0", "hvpeer0")?;
                let spare =
                    link::list(&mut sock)?.into_iter().find(|l| l.name == "hvspare0").context("no veth")?;
                configure(&GuestNetwork { spares: vec![spare.mac.clone()], ..GuestNetwork::default() })?;
                let parked = link::list(&mut sock)?;
                let net = GuestNetwork {
                    nics: vec![GuestNic {
                        name: "wan1".into(),
                        mac: vec![2, 0, 0, 0, 0, 9],
                        device_mac: Some(spare.mac.clone()),
                        mtu: 1400,
                        addresses: vec![NicAddress { ip: "10.3.0.2".parse().unwrap(), prefix: 24 }],
                    }],
                    routes: vec![GuestRoute {
                        nic: 0,
                        route: route::Route {
                            dst: None,
                            dst_len: 0,
                            gateway: Some("10.3.0.1".parse().unwrap()),
                            oif: None,
                            metric: None,
                            ipv6: false,
                        },
                    }],
                    spares: vec![],
                };
                adopt(&net)?;
                let mut sock = Socket::open()?;
                Ok((parked, link::list(&mut sock)?, route::list(&mut sock)?))
            })
        else {
            eprintln!("skipped: no network namespace for this test (not root?)");
            return;
        };
        let (parked, after, routes) = result.unwrap();
        assert!(!parked.iter().any(|l| l.name == "hvspare0"), "still in sight: {parked:?}");
        let wan = after.iter().find(|l| l.name == "wan1").unwrap_or_else(|| panic!("no wan1: {after:?}"));
        assert_eq!(wan.mac, vec![2, 0, 0, 0, 0, 9]);
        assert_eq!(wan.mtu, 1400);
        assert!(wan.is_up());
        assert!(
            routes.iter().any(|r| r.dst.is_none()
                && r.gateway == Some("10.3.0.1".parse().unwrap())
                && r.oif == Some(wan.index)),
            "{routes:?}"
        );
    }

    #[test]
    fn adopting_a_spare_that_is_not_parked_fails_with_its_mac() {
        use crate::netlink::link::tests::in_new_netns;
        let Some(err) = in_new_netns(|| {
            let net = GuestNetwork {
                nics: vec![GuestNic {
                    name: "eth0".into(),
                    mac: vec![2, 0, 0, 0, 0, 1],
                    device_mac: Some(vec![2, 0x77, 0, 0, 0, 1]),
                    mtu: 1500,
                    addresses: vec![],
                }],
                ..GuestNetwork::default()
            };
            adopt(&net).unwrap_err()
        }) else {
            return;
        };
        assert!(format!("{err:#}").contains("02:77:00:00:00:01"), "{err:#}");
    }
}
