//! Netlink attributes (`struct rtattr`/`nlattr`): a 4-byte header (length, type), the payload,
//! padding to 4 bytes; nested ones hold attributes.

use super::align;

/// Flag of a nested attribute's type.
pub const NESTED: u16 = 0x8000;

/// Builds a run of attributes.
#[derive(Default)]
pub struct Builder {
    buf: Vec<u8>,
}

impl Builder {
    pub fn new() -> Builder {
        Builder::default()
    }

    pub fn bytes(mut self, kind: u16, payload: &[u8]) -> Builder {
        let len = 4 + payload.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.buf.resize(align(self.buf.len()), 0);
        self
    }

    pub fn u32(self, kind: u16, v: u32) -> Builder {
        self.bytes(kind, &v.to_ne_bytes())
    }

    /// A NUL-terminated string.
    pub fn string(self, kind: u16, s: &str) -> Builder {
        let mut b = s.as_bytes().to_vec();
        b.push(0);
        self.bytes(kind, &b)
    }

    /// An attribute holding the attributes `inner` builds.
    pub fn nested(self, kind: u16, inner: impl FnOnce(Builder) -> Builder) -> Builder {
        let payload = inner(Builder::new()).finish();
        self.bytes(kind | NESTED, &payload)
    }

    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// The attributes in `buf`, as (type without the nested flag, payload); stops at the first
/// malformed one (a reply is the kernel's, but a bad length must not panic).
pub fn parse(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= 4 {
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let kind = u16::from_ne_bytes([buf[2], buf[3]]) & !NESTED;
        if len < 4 || len > buf.len() {
            break;
        }
        out.push((kind, &buf[4..len]));
        buf = &buf[align(len).min(buf.len())..];
    }
    out
}

/// The first attribute of `kind`.
pub fn find(attrs: &[(u16, &'_ [u8])], kind: u16) -> Option<Vec<u8>> {
    attrs.iter().find(|(k, _)| *k == kind).map(|(_, v)| v.to_vec())
}

pub fn as_u32(v: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(v.get(..4)?.try_into().ok()?))
}

/// A NUL-terminated (or not) string.
pub fn as_string(v: &[u8]) -> String {
    let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_round_trip_with_padding_and_nesting() {
        let buf = Builder::new().string(3, "eth0").u32(4, 1500).nested(18, |b| b.string(1, "veth")).finish();
        assert_eq!(buf.len() % 4, 0);
        let attrs = parse(&buf);
        assert_eq!(attrs.len(), 3);
        assert_eq!(as_string(&find(&attrs, 3).unwrap()), "eth0");
        assert_eq!(as_u32(&find(&attrs, 4).unwrap()), Some(1500));
        let inner = find(&attrs, 18).unwrap();
        assert_eq!(as_string(&find(&parse(&inner), 1).unwrap()), "veth");
    }

    #[test]
    fn a_bad_length_ends_the_parse_without_panicking() {
        let mut buf = Builder::new().u32(1, 7).finish();
        buf.extend_from_slice(&[200, 0, 2, 0, 1]);
        assert_eq!(parse(&buf).len(), 1);
        assert!(parse(&[2, 0, 1, 0]).is_empty());
    }
}
