//! Which address a request comes from.
//!
//! The TCP peer is the client unless the peer is one of the load balancers listed in
//! `MM_EDGE_TRUSTED_PROXIES`. Only then are `X-Forwarded-For` / `X-Real-IP` believed, so a client
//! talking to mm-edge directly cannot pick its own rate-limit bucket by sending those headers
//! (the hole Mattermost closed with `TrustedProxyIPHeader`).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use http::header::{HeaderMap, HeaderName};
use ipnet::{IpNet, Ipv4Net};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Resolves the client address of a request from its TCP peer and, for trusted proxies, its
/// forwarding headers. Built once from settings and shared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientIp {
    trusted: Vec<IpNet>,
}

impl ClientIp {
    /// A resolver that believes forwarding headers only from peers inside `trusted`.
    pub fn new(trusted: Vec<IpNet>) -> Self {
        Self {
            trusted: trusted.into_iter().map(normalize_net).collect(),
        }
    }

    /// Client address: the TCP peer unless the peer is trusted; then walk X-Forwarded-For from the
    /// right skipping trusted addresses, first untrusted one wins; else X-Real-IP; else the peer.
    /// IPv4-mapped IPv6 counts as IPv4 (peer and header values).
    ///
    /// An X-Forwarded-For entry that is not an address (or a header that is not text) ends the
    /// walk: whoever wrote it is not a proxy we can vouch for, so nothing to its left is believed.
    /// Entries may carry a port (`192.0.2.1:4711`, `[2001:db8::1]:443`) or brackets.
    #[must_use]
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.is_trusted(peer) {
            return peer;
        }
        if let Some(client) = self.walk_forwarded_for(headers) {
            return client;
        }
        // With several X-Real-IP lines, the last was added by the hop nearest to us.
        headers
            .get_all(X_REAL_IP)
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(parse_addr)
            .unwrap_or(peer)
    }

    /// Whether `ip` (already canonical) is inside one of the trusted networks.
    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The rightmost untrusted address of X-Forwarded-For (all lines, in order), if any.
    fn walk_forwarded_for(&self, headers: &HeaderMap) -> Option<IpAddr> {
        for line in headers.get_all(X_FORWARDED_FOR).iter().rev() {
            let line = line.to_str().ok()?;
            for entry in line.rsplit(',') {
                let ip = parse_addr(entry)?;
                if !self.is_trusted(ip) {
                    return Some(ip);
                }
            }
        }
        None
    }
}

/// Parses one forwarding-header entry: an IP address, optionally bracketed (IPv6) and/or with a
/// port. The result is canonical (IPv4-mapped IPv6 becomes IPv4).
fn parse_addr(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sock) = entry.parse::<SocketAddr>() {
        return Some(sock.ip().to_canonical());
    }
    let inner = entry.strip_prefix('[')?.strip_suffix(']')?;
    inner
        .parse::<Ipv6Addr>()
        .ok()
        .map(|ip| IpAddr::V6(ip).to_canonical())
}

/// Turns an IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) into its IPv4 form, because peers and
/// header values are compared in canonical (IPv4) form; clears host bits.
fn normalize_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net {
        if let (Some(v4), Some(len)) = (
            v6.network().to_ipv4_mapped(),
            v6.prefix_len().checked_sub(96),
        ) {
            if let Ok(v4net) = Ipv4Net::new(v4, len) {
                return IpNet::V4(v4net.trunc());
            }
        }
    }
    net.trunc()
}

/// Parses `MM_EDGE_TRUSTED_PROXIES`: CIDRs or bare IP addresses separated by spaces and/or commas.
/// An empty string trusts nobody. The error message names the bad entry.
pub fn parse_trusted_proxies(s: &str) -> Result<Vec<IpNet>, String> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map(normalize_net)
                .map_err(|_| format!("\"{entry}\" is not an IP address or CIDR network"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn lb() -> ClientIp {
        ClientIp::new(parse_trusted_proxies("10.0.0.0/8 fd00::/8").unwrap())
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client() {
        let resolver = ClientIp::new(Vec::new());
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.7"),
            ("x-real-ip", "203.0.113.8"),
        ]);
        assert_eq!(resolver.resolve(ip("198.51.100.1"), &h), ip("198.51.100.1"));
        assert_eq!(resolver.resolve(ip("2001:db8::1"), &h), ip("2001:db8::1"));
    }

    #[test]
    fn spoofed_headers_from_an_untrusted_peer_are_ignored() {
        let h = headers(&[
            ("x-forwarded-for", "1.1.1.1, 10.0.0.2"),
            ("x-real-ip", "1.1.1.2"),
        ]);
        assert_eq!(lb().resolve(ip("198.51.100.1"), &h), ip("198.51.100.1"));
    }

    #[test]
    fn trusted_peer_rightmost_untrusted_forwarded_for_entry_wins() {
        // The client put 6.6.6.6 in front; the proxies appended the real client and each other.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.1.2.3")]);
        assert_eq!(lb().resolve(ip("10.0.0.1"), &h), ip("203.0.113.7"));
    }

    #[test]
    fn forwarded_for_lines_are_walked_from_the_last() {
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "203.0.113.7, 10.9.9.9"),
            ("x-forwarded-for", "10.1.1.1"),
        ]);
        assert_eq!(lb().resolve(ip("10.0.0.1"), &h), ip("203.0.113.7"));
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-for", "10.1.1.1"),
        ]);
        assert_eq!(lb().resolve(ip("10.0.0.1"), &h), ip("203.0.113.9"));
    }

    #[test]
    fn trusted_peer_falls_back_to_real_ip_then_peer() {
        let h = headers(&[("x-real-ip", "203.0.113.8")]);
        assert_eq!(lb().resolve(ip("10.0.0.1"), &h), ip("203.0.113.8"));
        // All forwarded-for entries trusted: X-Real-IP, then the peer.
        let h = headers(&[
            ("x-forwarded-for", "10.2.2.2, 10.3.3.3"),
            ("x-real-ip", "203.0.113.8"),
        ]);
        assert_eq!(lb().resolve(ip("10.0.0.1"), &h), ip("203.0.113.8"));
        let h = headers(&[("x-forwarded-for", "10.2.2.2")]);
        assert_eq!(lb().resolve(ip("10.0.0.1"), &h), ip("10.0.0.1"));
        assert_eq!(
            lb().resolve(ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
        // Several X-Real-IP lines: the nearest hop's (last) one.
        let h = headers(&[("x-real-ip", "6.6.6.6"), ("x-real-ip", "203.0.113.8")]);
        assert_eq!(lb().resolve(ip("10.0.0.1"), &h), ip("203.0.113.8"));
    }

    #[test]
    fn garbage_ends_the_walk() {
        // Garbage left of the client is never reached.
        let h = headers(&[("x-forwarded-for", "not-an-ip, 203.0.113.7")]);
        assert_eq!(lb().resolve(ip("10.0.0.1"), &h), ip("203.0.113.7"));
        // Garbage right of it stops the walk: X-Real-IP or the peer, never 203.0.113.7.
        let h = headers(&[("x-forwarded-for", "203.0.113.7, bogus, 10.1.1.1")]);
        assert_eq!(lb().resolve(ip("10.0.0.1"), &h), ip("10.0.0.1"));
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.7,,10.1.1.1"),
            ("x-real-ip", "198.51.100.9"),
        ]);
        assert_eq!(lb().resolve(ip("10.0.0.1"), &h), ip("198.51.100.9"));
        for junk in [
            "",
            " ",
            "1.2.3",
            "fe80::1%eth0",
            "999.1.1.1",
            "[1.2.3.4]",
            "unknown",
        ] {
            let h = headers(&[("x-forwarded-for", junk), ("x-real-ip", junk)]);
            assert_eq!(lb().resolve(ip("10.0.0.1"), &h), ip("10.0.0.1"), "{junk:?}");
        }
        // Non-text bytes (obs-text) in the header.
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"203.0.113.7\xff").unwrap(),
        );
        assert_eq!(lb().resolve(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn ports_and_brackets_are_accepted() {
        let cases = [
            ("203.0.113.7:4711", "203.0.113.7"),
            ("[2001:db8::7]:443", "2001:db8::7"),
            ("[2001:db8::7]", "2001:db8::7"),
            ("  2001:db8::7\t", "2001:db8::7"),
        ];
        for (entry, want) in cases {
            let h = headers(&[("x-forwarded-for", entry)]);
            assert_eq!(lb().resolve(ip("10.0.0.1"), &h), ip(want), "{entry}");
        }
    }

    #[test]
    fn ipv6_proxies_and_clients() {
        let h = headers(&[("x-forwarded-for", "2001:db8::7, fd00::2")]);
        assert_eq!(lb().resolve(ip("fd00::1"), &h), ip("2001:db8::7"));
        // An untrusted IPv6 peer keeps its own address.
        assert_eq!(lb().resolve(ip("2001:db8::1"), &h), ip("2001:db8::1"));
        // Mixed families in one chain.
        let h = headers(&[("x-forwarded-for", "2001:db8::7, 10.0.0.5")]);
        assert_eq!(lb().resolve(ip("fd00::1"), &h), ip("2001:db8::7"));
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_ipv4() {
        // Mapped peer inside an IPv4 trusted range is trusted.
        let h = headers(&[("x-forwarded-for", "::ffff:203.0.113.7, ::ffff:10.1.1.1")]);
        assert_eq!(lb().resolve(ip("::ffff:10.0.0.1"), &h), ip("203.0.113.7"));
        // An untrusted mapped peer is reported as IPv4.
        assert_eq!(
            lb().resolve(ip("::ffff:198.51.100.1"), &h),
            ip("198.51.100.1")
        );
        let h = headers(&[("x-real-ip", "::ffff:203.0.113.8")]);
        assert_eq!(lb().resolve(ip("10.0.0.1"), &h), ip("203.0.113.8"));
        // A trusted network written in mapped form matches IPv4 peers.
        let mapped = ClientIp::new(parse_trusted_proxies("::ffff:192.168.0.0/112").unwrap());
        let h = headers(&[("x-forwarded-for", "203.0.113.7")]);
        assert_eq!(mapped.resolve(ip("192.168.3.4"), &h), ip("203.0.113.7"));
    }

    #[test]
    fn parses_trusted_proxies() {
        let nets = parse_trusted_proxies(" 10.0.0.0/8,192.168.1.7  fd00::/8 ,, ::1 ").unwrap();
        let want: Vec<IpNet> = ["10.0.0.0/8", "192.168.1.7/32", "fd00::/8", "::1/128"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(nets, want);
        assert_eq!(parse_trusted_proxies("").unwrap(), Vec::<IpNet>::new());
        assert_eq!(parse_trusted_proxies("  ").unwrap(), Vec::<IpNet>::new());
        // Host bits are cleared; mapped networks become IPv4.
        assert_eq!(
            parse_trusted_proxies("10.1.2.3/8 ::ffff:172.16.0.0/108").unwrap(),
            vec![
                "10.0.0.0/8".parse::<IpNet>().unwrap(),
                "172.16.0.0/12".parse().unwrap()
            ]
        );
    }

    #[test]
    fn bad_trusted_proxy_is_named() {
        for bad in ["10.0.0.0/33", "lb.example.com", "10.0.0.0/", "1.2.3.4.5"] {
            let err = parse_trusted_proxies(&format!("10.0.0.0/8 {bad}")).unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
    }
}
