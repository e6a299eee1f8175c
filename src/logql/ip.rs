//! The `ip("...")` line filter: does the line contain an IPv4 or IPv6 address that equals an
//! address, falls in a CIDR prefix, or lies in a `from-to` range?
//!
//! Addresses are found the way Loki finds them, without a regex: at each position a cheap
//! hint (a digit followed by a dot within three bytes, or hex digits followed by a colon)
//! starts a candidate, the longest run of address characters is parsed, and the scan resumes
//! after it. Unlike Loki's, the hints also work in the last bytes of a line (`::1` alone).

use std::net::IpAddr;

const IPV4_CHARS: &[u8] = b"0123456789.";
const IPV6_CHARS: &[u8] = b"0123456789abcdefABCDEF:.";

#[derive(Clone, Debug)]
enum IpPattern {
    Single(IpAddr),
    /// Address and prefix length; the address need not be masked (`192.168.4.5/16`).
    Prefix(IpAddr, u8),
    /// Inclusive, same family, `from <= to`.
    Range(IpAddr, IpAddr),
}

#[derive(Clone, Debug)]
pub(crate) struct IpMatcher {
    pattern: IpPattern,
}

impl IpMatcher {
    pub fn parse(pattern: &str) -> Result<IpMatcher, String> {
        let invalid = || format!("ip: invalid pattern: {pattern:?}");
        let pattern_kind = if let Ok(addr) = pattern.parse::<IpAddr>() {
            IpPattern::Single(addr)
        } else if let Some((addr, bits)) = pattern.split_once('/') {
            let addr: IpAddr = addr.parse().map_err(|_| invalid())?;
            let bits: u8 = bits
                .parse()
                .ok()
                .filter(|b| !bits.starts_with('+') && (*b as usize) <= bit_len(addr))
                .ok_or_else(invalid)?;
            IpPattern::Prefix(addr, bits)
        } else if let Some((from, to)) = pattern.split_once('-') {
            let from: IpAddr = from.parse().map_err(|_| invalid())?;
            let to: IpAddr = to.parse().map_err(|_| invalid())?;
            if from.is_ipv4() != to.is_ipv4() || from > to {
                return Err(invalid());
            }
            IpPattern::Range(from, to)
        } else {
            return Err(invalid());
        };
        Ok(IpMatcher {
            pattern: pattern_kind,
        })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match self.pattern {
            IpPattern::Single(a) => a == ip,
            IpPattern::Range(from, to) => from.is_ipv4() == ip.is_ipv4() && from <= ip && ip <= to,
            IpPattern::Prefix(net, bits) => match (net, ip) {
                (IpAddr::V4(n), IpAddr::V4(a)) => {
                    let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
                    u32::from(n) & mask == u32::from(a) & mask
                }
                (IpAddr::V6(n), IpAddr::V6(a)) => {
                    let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
                    u128::from(n) & mask == u128::from(a) & mask
                }
                _ => false,
            },
        }
    }

    /// Whether the line contains a matching address.
    pub fn is_match(&self, line: &[u8]) -> bool {
        let at = |i: usize| line.get(i).copied().unwrap_or(0);
        let mut i = 0;
        while i < line.len() {
            let charset = if ipv4_hint(at(i), at(i + 1), at(i + 2), at(i + 3)) {
                IPV4_CHARS
            } else if ipv6_hint([at(i), at(i + 1), at(i + 2), at(i + 3), at(i + 4)]) {
                IPV6_CHARS
            } else {
                i += 1;
                continue;
            };
            let len = line[i..]
                .iter()
                .position(|b| !charset.contains(b))
                .unwrap_or(line.len() - i);
            let parsed = std::str::from_utf8(&line[i..i + len])
                .ok()
                .and_then(|s| s.parse::<IpAddr>().ok());
            if parsed.is_some_and(|ip| self.contains(ip)) {
                return true;
            }
            i += len + 1;
        }
        false
    }
}

fn bit_len(addr: IpAddr) -> usize {
    if addr.is_ipv4() { 32 } else { 128 }
}

fn ipv4_hint(b0: u8, b1: u8, b2: u8, b3: u8) -> bool {
    b0.is_ascii_digit() && (b1 == b'.' || b2 == b'.' || b3 == b'.')
}

fn ipv6_hint(p: [u8; 5]) -> bool {
    let hex = |b: u8| b.is_ascii_hexdigit();
    (p[0] == b':' && p[1] == b':' && hex(p[2]))
        || (hex(p[0]) && p[1] == b':')
        || (hex(p[0]) && hex(p[1]) && p[2] == b':')
        || (hex(p[0]) && hex(p[1]) && hex(p[2]) && p[3] == b':')
        || (hex(p[0]) && hex(p[1]) && hex(p[2]) && hex(p[3]) && p[4] == b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, line: &str) -> bool {
        IpMatcher::parse(p).unwrap().is_match(line.as_bytes())
    }

    #[test]
    fn single_prefix_range() {
        assert!(m("192.168.0.1", "vpn 192.168.0.1 connected"));
        assert!(!m("192.168.0.1", "vpn 192.168.0.10 connected"));
        assert!(m("::1", "::1"));
        assert!(!m("::1", "vpn 192.168.0.1 connected to vm"));
        assert!(m("192.168.4.5/16", "vpn 192.168.0.1 connected"));
        assert!(!m("192.168.4.5/16", "vpn 192.172.6.1 connected"));
        assert!(m("2001:db8::/32", "vpn 2001:db8::1 connected"));
        assert!(!m("2001:db8::/32", "vpn 2001:db9::3 connected"));
        assert!(m(
            "192.168.0.1-192.189.10.12",
            "vpn 192.168.0.0 192.168.0.1 connected"
        ));
        assert!(!m(
            "192.168.0.1-192.189.10.12",
            "vpn 192.255.255.255 connected"
        ));
        assert!(m("2001:db8::1-2001:db8::8", "vpn 2001:db8::2 connected"));
        assert!(m("10.0.0.0/8", "addr=10.1.2.3:8080"));
        assert!(!m("10.0.0.0/8", ""));
    }

    #[test]
    fn invalid_patterns() {
        for p in [
            "",
            "1.2.3",
            "192.168.0.2-1.0.0.0",
            "1.2.3.4/33",
            "::1-1.2.3.4",
            "x",
        ] {
            assert!(IpMatcher::parse(p).is_err(), "{p}");
        }
    }
}
