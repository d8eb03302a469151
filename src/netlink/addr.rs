//! Addresses (`RTM_*ADDR`, `struct ifaddrmsg`).

use std::net::IpAddr;

use super::attr::{self, Builder};
use super::{Result, Socket};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Address {
    pub index: u32,
    pub ip: IpAddr,
    pub prefix: u8,
}

fn ifaddrmsg(family: u8, prefix: u8, index: u32) -> Vec<u8> {
    // family, prefixlen, flags, scope (universe), index
    let mut m = vec![family, prefix, 0, 0];
    m.extend_from_slice(&index.to_ne_bytes());
    m
}

/// Every address of the namespace (IPv4 and IPv6).
pub fn list(sock: &mut Socket) -> Result<Vec<Address>> {
    let replies =
        sock.dump("listing addresses", libc::RTM_GETADDR, &ifaddrmsg(libc::AF_UNSPEC as u8, 0, 0))?;
    Ok(replies.iter().filter(|m| m.kind == libc::RTM_NEWADDR).filter_map(|m| parse(&m.body)).collect())
}

fn parse(body: &[u8]) -> Option<Address> {
    let (family, prefix) = (*body.first()?, *body.get(1)?);
    let index = u32::from_ne_bytes(body.get(4..8)?.try_into().ok()?);
    let attrs = attr::parse(body.get(8..)?);
    // IFA_LOCAL is the interface's own address on point-to-point links; IFA_ADDRESS otherwise.
    let raw = attr::find(&attrs, libc::IFA_LOCAL).or_else(|| attr::find(&attrs, libc::IFA_ADDRESS))?;
    Some(Address { index, ip: ip_from(family, &raw)?, prefix })
}

pub(crate) fn ip_from(family: u8, raw: &[u8]) -> Option<IpAddr> {
    match (i32::from(family), raw.len()) {
        (libc::AF_INET, 4) => Some(IpAddr::from(<[u8; 4]>::try_from(raw).ok()?)),
        (libc::AF_INET6, 16) => Some(IpAddr::from(<[u8; 16]>::try_from(raw).ok()?)),
        _ => None,
    }
}

pub(crate) fn family_and_bytes(ip: &IpAddr) -> (u8, Vec<u8>) {
    match ip {
        IpAddr::V4(v4) => (libc::AF_INET as u8, v4.octets().to_vec()),
        IpAddr::V6(v6) => (libc::AF_INET6 as u8, v6.octets().to_vec()),
    }
}

/// Adds `ip/prefix` to the link `index`.
pub fn add(sock: &mut Socket, index: u32, ip: &IpAddr, prefix: u8) -> Result<()> {
    let (family, bytes) = family_and_bytes(ip);
    let mut body = ifaddrmsg(family, prefix, index);
    body.extend(Builder::new().bytes(libc::IFA_LOCAL, &bytes).bytes(libc::IFA_ADDRESS, &bytes).finish());
    let flags = (libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16;
    sock.request(&format!("adding {ip}/{prefix} to link {index}"), libc::RTM_NEWADDR, flags, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::link;
    use crate::netlink::link::tests::in_new_netns;

    #[test]
    fn addresses_are_added_and_listed() {
        let Some(found) = in_new_netns(|| {
            let mut sock = Socket::open().unwrap();
            let lo = link::list(&mut sock).unwrap()[0].index;
            link::set_up(&mut sock, lo, None).unwrap();
            add(&mut sock, lo, &"10.9.8.7".parse().unwrap(), 24).unwrap();
            let again = add(&mut sock, lo, &"10.9.8.7".parse().unwrap(), 24).unwrap_err();
            (list(&mut sock).unwrap(), again.errno())
        }) else {
            return;
        };
        let (addrs, again) = found;
        assert!(
            addrs.iter().any(|a| a.ip == "10.9.8.7".parse::<IpAddr>().unwrap() && a.prefix == 24),
            "{addrs:?}"
        );
        assert!(
            addrs.iter().any(|a| a.ip == "127.0.0.1".parse::<IpAddr>().unwrap() && a.prefix == 8),
            "{addrs:?}"
        );
        assert_eq!(again, Some(libc::EEXIST));
    }
}
