//! Routes of the main table (`RTM_*ROUTE`, `struct rtmsg`).

use std::net::IpAddr;

use super::addr::{family_and_bytes, ip_from};
use super::attr::{self, Builder};
use super::{Result, Socket};

/// `RTPROT_KERNEL`: a route the kernel made for an address (it comes back with the address).
const PROTO_KERNEL: u8 = 2;
const SCOPE_LINK: u8 = 253;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Route {
    /// None: the default route.
    pub dst: Option<IpAddr>,
    pub dst_len: u8,
    pub gateway: Option<IpAddr>,
    /// The link it goes out of.
    pub oif: Option<u32>,
    pub metric: Option<u32>,
    /// True for IPv6 (a default route has no destination to tell).
    pub ipv6: bool,
}

/// The unicast routes of the main table, less those the kernel made for addresses.
pub fn list(sock: &mut Socket) -> Result<Vec<Route>> {
    let mut out = Vec::new();
    for family in [libc::AF_INET, libc::AF_INET6] {
        let replies = sock.dump("listing routes", libc::RTM_GETROUTE, &rtmsg(family as u8, 0, 0, 0))?;
        out.extend(replies.iter().filter(|m| m.kind == libc::RTM_NEWROUTE).filter_map(|m| parse(&m.body)));
    }
    Ok(out)
}

fn rtmsg(family: u8, dst_len: u8, protocol: u8, scope: u8) -> Vec<u8> {
    let mut m = vec![family, dst_len, 0, 0, libc::RT_TABLE_MAIN, protocol, scope, libc::RTN_UNICAST];
    m.extend_from_slice(&0u32.to_ne_bytes());
    m
}

fn parse(body: &[u8]) -> Option<Route> {
    let (family, dst_len, table, protocol, kind) =
        (*body.first()?, *body.get(1)?, *body.get(4)?, *body.get(5)?, *body.get(7)?);
    let attrs = attr::parse(body.get(12..)?);
    let table =
        attr::find(&attrs, libc::RTA_TABLE).and_then(|t| attr::as_u32(&t)).unwrap_or(u32::from(table));
    if table != u32::from(libc::RT_TABLE_MAIN) || kind != libc::RTN_UNICAST || protocol == PROTO_KERNEL {
        return None;
    }
    let ip = |k| attr::find(&attrs, k).and_then(|raw| ip_from(family, &raw));
    Some(Route {
        dst: ip(libc::RTA_DST),
        dst_len,
        gateway: ip(libc::RTA_GATEWAY),
        oif: attr::find(&attrs, libc::RTA_OIF).and_then(|v| attr::as_u32(&v)),
        metric: attr::find(&attrs, libc::RTA_PRIORITY).and_then(|v| attr::as_u32(&v)),
        ipv6: i32::from(family) == libc::AF_INET6,
    })
}

/// Adds `route`, out of the link `oif` (the caller's, which may differ from the route's own).
pub fn add(sock: &mut Socket, route: &Route, oif: u32) -> Result<()> {
    let family = if route.ipv6 { libc::AF_INET6 } else { libc::AF_INET } as u8;
    let scope = if route.gateway.is_some() { libc::RT_SCOPE_UNIVERSE } else { SCOPE_LINK };
    let mut attrs = Builder::new();
    if let Some(dst) = &route.dst {
        attrs = attrs.bytes(libc::RTA_DST, &family_and_bytes(dst).1);
    }
    if let Some(gw) = &route.gateway {
        attrs = attrs.bytes(libc::RTA_GATEWAY, &family_and_bytes(gw).1);
    }
    if let Some(metric) = route.metric {
        attrs = attrs.u32(libc::RTA_PRIORITY, metric);
    }
    let mut body = rtmsg(family, route.dst_len, libc::RTPROT_BOOT, scope);
    body.extend(attrs.u32(libc::RTA_OIF, oif).finish());
    let what = format!(
        "adding the route to {}/{} via {}",
        route.dst.map_or("default".to_string(), |d| d.to_string()),
        route.dst_len,
        route.gateway.map_or("the link".to_string(), |g| g.to_string())
    );
    sock.request(&what, libc::RTM_NEWROUTE, (libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::link::tests::in_new_netns;
    use crate::netlink::{addr, link};

    #[test]
    fn a_default_route_is_added_and_listed_and_kernel_routes_are_not() {
        let Some(routes) = in_new_netns(|| {
            let mut sock = Socket::open().unwrap();
            let lo = link::list(&mut sock).unwrap()[0].index;
            link::set_up(&mut sock, lo, None).unwrap();
            addr::add(&mut sock, lo, &"10.1.2.3".parse().unwrap(), 24).unwrap();
            let default = Route {
                dst: None,
                dst_len: 0,
                gateway: Some("10.1.2.1".parse().unwrap()),
                oif: None,
                metric: None,
                ipv6: false,
            };
            add(&mut sock, &default, lo).unwrap();
            (list(&mut sock).unwrap(), lo)
        }) else {
            return;
        };
        let (routes, lo) = routes;
        // The kernel's 10.1.2.0/24 (proto kernel) is left out; the default route is there.
        assert_eq!(
            routes,
            [Route {
                dst: None,
                dst_len: 0,
                gateway: Some("10.1.2.1".parse().unwrap()),
                oif: Some(lo),
                metric: None,
                ipv6: false
            }]
        );
    }
}
