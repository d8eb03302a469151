//! A VM container's network in the guest: what the host found in the container's network
//! namespace (`vm::backend::network`), set on the guest's NICs before the container is made.
//! The container shares the guest's network namespace, so this is its network.

use std::net::IpAddr;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::netlink::{self, addr, link, route, Socket};

/// The NICs the guest has, in the order the VMM attached them, and the routes out of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestNetwork {
    pub nics: Vec<GuestNic>,
    pub routes: Vec<GuestRoute>,
}

/// One NIC: the name and MAC of the interface it stands for (the guest finds it by the MAC and
/// gives it the name), its MTU and addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestNic {
    pub name: String,
    pub mac: Vec<u8>,
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

/// Brings lo up, then each NIC with its MTU and addresses, then the routes: those to a link
/// first, those through a gateway after (a gateway must be reachable when its route is added).
pub fn configure(net: &GuestNetwork) -> anyhow::Result<()> {
    let mut sock = Socket::open()?;
    let links = link::list(&mut sock)?;
    if let Some(lo) = links.iter().find(|l| l.is_loopback()) {
        link::set_up(&mut sock, lo.index, None)?;
    }
    let mut found = Vec::with_capacity(net.nics.len());
    for nic in &net.nics {
        let link = links
            .iter()
            .find(|l| l.mac == nic.mac)
            .with_context(|| format!("the guest has no NIC with the MAC {}", mac_string(&nic.mac)))?;
        found.push((nic, link));
    }
    rename_nics(&mut sock, &found)?;
    let mut indexes = Vec::with_capacity(found.len());
    for (nic, link) in found {
        link::set_up(&mut sock, link.index, Some(nic.mtu))?;
        for a in &nic.addresses {
            tolerate_exists(addr::add(&mut sock, link.index, &a.ip, a.prefix))?;
        }
        indexes.push(link.index);
    }
    let mut routes: Vec<&GuestRoute> = net.routes.iter().collect();
    routes.sort_by_key(|r| r.route.gateway.is_some());
    for r in routes {
        let oif = *indexes
            .get(r.nic)
            .with_context(|| format!("a route names NIC {}, which is not there", r.nic))?;
        tolerate_exists(route::add(&mut sock, &r.route, oif))?;
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
}
