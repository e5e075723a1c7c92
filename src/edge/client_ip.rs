//! Which address a request comes from.
//!
//! The TCP peer is the client unless the peer is one of the load balancers listed in
//! `client_ip.trusted_proxies`. Only then are `X-Forwarded-For` / `X-Real-IP` believed, so a client
//! talking to mm-edge directly cannot pick its own rate-limit bucket by sending those headers
//! (the hole Mattermost closed with `TrustedProxyIPHeader`).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use http::header::HeaderMap;
use ipnet::IpNet;

use crate::proxy::headers::{X_FORWARDED_FOR, X_REAL_IP};

#[cfg(test)]
mod tests;

/// Resolves the client address of a request from its TCP peer and, for trusted proxies, its
/// forwarding headers. Built once from settings and shared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientIp {
    trusted: Vec<IpNet>,
}

impl ClientIp {
    /// A resolver that believes forwarding headers only from peers inside `trusted` (networks
    /// in canonical form, as the `[client_ip]` settings hold them).
    pub fn new(trusted: &[IpNet]) -> Self {
        Self {
            trusted: trusted.to_vec(),
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

    /// Whether a peer is one of the trusted proxies (whose forwarding headers are believed).
    pub fn trusts(&self, peer: IpAddr) -> bool {
        self.is_trusted(peer.to_canonical())
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
