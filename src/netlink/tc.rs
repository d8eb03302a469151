//! The tc plumbing that ties a VM's tap to a container's interface, Kata's way: an ingress
//! qdisc on each, and on each a u32 filter matching every frame whose action is mirred
//! "egress redirect" to the other. What arrives on the interface leaves through the tap (to
//! the guest), and what the guest sends leaves through the interface; the host's own stack
//! sees neither.

use super::attr::Builder;
use super::{Result, Socket};

/// The ingress qdisc's handle (ffff:) and its parent (TC_H_INGRESS).
const INGRESS_HANDLE: u32 = 0xffff_0000;
const TC_H_INGRESS: u32 = 0xffff_fff1;
const ETH_P_ALL: u16 = 0x0003;
/// `linux/pkt_cls.h`: TCA_U32_SEL, TCA_U32_ACT; `TC_U32_TERMINAL`.
const TCA_U32_SEL: u16 = 5;
const TCA_U32_ACT: u16 = 7;
const TC_U32_TERMINAL: u8 = 1;
/// `linux/pkt_cls.h`: TCA_ACT_KIND, TCA_ACT_OPTIONS; `tc_act/tc_mirred.h`: TCA_MIRRED_PARMS,
/// TCA_EGRESS_REDIR; TC_ACT_STOLEN.
const TCA_ACT_KIND: u16 = 1;
const TCA_ACT_OPTIONS: u16 = 2;
const TCA_MIRRED_PARMS: u16 = 2;
const TCA_EGRESS_REDIR: i32 = 1;
const TC_ACT_STOLEN: i32 = 4;

fn tcmsg(index: u32, handle: u32, parent: u32, info: u32) -> Vec<u8> {
    let mut m = vec![libc::AF_UNSPEC as u8, 0, 0, 0];
    m.extend_from_slice(&(index as i32).to_ne_bytes());
    m.extend_from_slice(&handle.to_ne_bytes());
    m.extend_from_slice(&parent.to_ne_bytes());
    m.extend_from_slice(&info.to_ne_bytes());
    m
}

/// Adds an ingress qdisc to the link `index`.
pub fn add_ingress(sock: &mut Socket, index: u32) -> Result<()> {
    let mut body = tcmsg(index, INGRESS_HANDLE, TC_H_INGRESS, 0);
    body.extend(Builder::new().string(libc::TCA_KIND, "ingress").finish());
    let flags = (libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16;
    sock.request(&format!("adding an ingress qdisc to link {index}"), libc::RTM_NEWQDISC, flags, &body)
}

/// Removes the ingress qdisc of the link `index`, its filters with it.
pub fn del_ingress(sock: &mut Socket, index: u32) -> Result<()> {
    let body = tcmsg(index, INGRESS_HANDLE, TC_H_INGRESS, 0);
    sock.request(&format!("removing the ingress qdisc of link {index}"), libc::RTM_DELQDISC, 0, &body)
}

/// On the ingress qdisc of `from`: every frame is redirected out of `to`.
pub fn redirect_ingress(sock: &mut Socket, from: u32, to: u32) -> Result<()> {
    // Priority 1, every protocol (the protocol is in network byte order).
    let info = (1 << 16) | u32::from(ETH_P_ALL.to_be());
    let mut body = tcmsg(from, 0, INGRESS_HANDLE, info);
    body.extend(
        Builder::new()
            .string(libc::TCA_KIND, "u32")
            .nested(libc::TCA_OPTIONS, |o| {
                o.bytes(TCA_U32_SEL, &match_everything()).nested(TCA_U32_ACT, |acts| {
                    acts.nested(1, |act| {
                        act.string(TCA_ACT_KIND, "mirred")
                            .nested(TCA_ACT_OPTIONS, |m| m.bytes(TCA_MIRRED_PARMS, &mirred_redirect(to)))
                    })
                })
            })
            .finish(),
    );
    let flags = (libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16;
    sock.request(
        &format!("redirecting link {from}'s ingress to link {to}"),
        libc::RTM_NEWTFILTER,
        flags,
        &body,
    )
}

/// `struct tc_u32_sel` with one key that matches any value (mask 0).
fn match_everything() -> Vec<u8> {
    // flags, offshift, nkeys, pad; offmask, off, offoff, hoff (16 bits each); hmask.
    let mut sel = vec![TC_U32_TERMINAL, 0, 1, 0];
    sel.extend_from_slice(&[0u8; 8]);
    sel.extend_from_slice(&0u32.to_ne_bytes());
    // struct tc_u32_key: mask, val, off, offmask.
    sel.extend_from_slice(&[0u8; 16]);
    sel
}

/// `struct tc_mirred`: tc_gen (index, capab, action, refcnt, bindcnt), eaction, ifindex.
fn mirred_redirect(to: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(28);
    p.extend_from_slice(&0u32.to_ne_bytes());
    p.extend_from_slice(&0u32.to_ne_bytes());
    p.extend_from_slice(&TC_ACT_STOLEN.to_ne_bytes());
    p.extend_from_slice(&0i32.to_ne_bytes());
    p.extend_from_slice(&0i32.to_ne_bytes());
    p.extend_from_slice(&TCA_EGRESS_REDIR.to_ne_bytes());
    p.extend_from_slice(&to.to_ne_bytes());
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::link;
    use crate::netlink::link::tests::in_new_netns;
    use std::io::{Read, Write};
    use std::os::fd::FromRawFd;
    use vmm::devices::virtio::net::{Backend, Tap};

    #[test]
    fn frames_arriving_on_one_link_leave_through_the_other_both_ways() {
        let Some(result) = in_new_netns(|| -> std::result::Result<(Vec<u8>, Vec<u8>, bool), String> {
            let taps = [
                Tap::open("hulla").map_err(|e| e.to_string())?,
                Tap::open("hullb").map_err(|e| e.to_string())?,
            ];
            let mut sock = Socket::open().map_err(|e| e.to_string())?;
            let links = link::list(&mut sock).map_err(|e| e.to_string())?;
            let index = |name: &str| links.iter().find(|l| l.name == name).map(|l| l.index).unwrap();
            let (a, b) = (index("hulla"), index("hullb"));
            for i in [a, b] {
                link::set_up(&mut sock, i, None).map_err(|e| e.to_string())?;
                add_ingress(&mut sock, i).map_err(|e| e.to_string())?;
            }
            redirect_ingress(&mut sock, a, b).map_err(|e| e.to_string())?;
            redirect_ingress(&mut sock, b, a).map_err(|e| e.to_string())?;
            // A frame written to a tap's fd arrives on that link, as a guest's frame would.
            let frame = |tag: u8| {
                let mut f = vec![0u8; 12];
                f.extend([0xff; 6]);
                f.extend([0x02, 0, 0, 0, 0, tag]);
                f.extend([0x88, 0xb5]);
                f.extend([tag; 46]);
                f
            };
            let through = |from: &Tap, to: &Tap, tag: u8| -> Vec<u8> {
                // SAFETY: a second File on the tap's fd, forgotten before it could close it.
                let mut w = unsafe { std::fs::File::from_raw_fd(from.fd()) };
                let _ = w.write(&frame(tag));
                std::mem::forget(w);
                // SAFETY: as above.
                let mut r = unsafe { std::fs::File::from_raw_fd(to.fd()) };
                let mut buf = vec![0u8; 2048];
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
                let got = loop {
                    match r.read(&mut buf) {
                        Ok(n) if buf[12 + 6..12 + 12] == frame(tag)[18..24] => break buf[12..n].to_vec(),
                        Ok(_) => {}
                        Err(_) if std::time::Instant::now() < deadline => {
                            std::thread::sleep(std::time::Duration::from_millis(10))
                        }
                        Err(_) => break Vec::new(),
                    }
                };
                std::mem::forget(r);
                got
            };
            let ab = through(&taps[0], &taps[1], 1);
            let ba = through(&taps[1], &taps[0], 2);
            del_ingress(&mut sock, a).map_err(|e| e.to_string())?;
            let gone = del_ingress(&mut sock, a).is_err();
            Ok((ab, ba, gone))
        }) else {
            eprintln!("skipped: no network namespace for this test (not root?)");
            return;
        };
        let (ab, ba, gone) = result.unwrap();
        assert_eq!(ab.get(..14).map(|h| h[11]), Some(1), "a's frame left through b: {ab:?}");
        assert_eq!(ab.len(), 60);
        assert_eq!(ba.get(..14).map(|h| h[11]), Some(2), "b's frame left through a: {ba:?}");
        assert!(gone, "the qdisc went with its first removal");
    }
}
