//! What a client connection tells every request made on it: who is on the other end, which
//! listener it came in on, and how (TLS, protocol). Made once per connection by `server`.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};

use http::HeaderValue;

/// Which listener a connection arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The TLS listener.
    Https,
    /// The plain listener (redirects to HTTPS when TLS is terminated here, else proxies).
    Http,
    /// The metrics listener: `GET /metrics` only, never forwarded.
    Metrics,
}

/// Facts about one client connection.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// TCP peer (an IPv4-mapped IPv6 address already turned into IPv4).
    pub peer: SocketAddr,
    /// The listener it arrived on.
    pub listener: Listener,
    /// The TLS version, when the connection is TLS.
    pub tls_version: Option<&'static str>,
    /// The peer's IP as a header value, made once per connection: most requests forward it.
    pub peer_ip_header: HeaderValue,
}

impl ConnInfo {
    /// Describes a new client connection.
    pub fn new(peer: SocketAddr, listener: Listener, tls_version: Option<&'static str>) -> Self {
        // IPv4-mapped IPv6 counts as IPv4 everywhere (client IP, rate-limit keys, logs).
        let ip = peer.ip().to_canonical();
        Self {
            peer: SocketAddr::new(ip, peer.port()),
            listener,
            tls_version,
            peer_ip_header: ip_header_value(ip),
        }
    }

    /// Whether the connection is TLS.
    pub fn is_tls(&self) -> bool {
        self.tls_version.is_some()
    }
}

/// An IP address as a header value (`X-Forwarded-For`, `X-Real-IP`), formatted on the stack.
pub fn ip_header_value(ip: IpAddr) -> HeaderValue {
    let mut buf = [0u8; 48];
    let len = {
        let mut cur = std::io::Cursor::new(&mut buf[..]);
        // An IPv6 address is at most 45 characters; the buffer cannot overflow.
        let _ = write!(cur, "{ip}");
        usize::try_from(cur.position()).unwrap_or(0)
    };
    HeaderValue::from_bytes(&buf[..len]).unwrap_or(HeaderValue::from_static("unknown"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_peers_become_ipv4() {
        let c = ConnInfo::new(
            "[::ffff:192.0.2.1]:4711".parse().expect("addr"),
            Listener::Https,
            Some("TLSv1.3"),
        );
        assert_eq!(c.peer, "192.0.2.1:4711".parse().expect("addr"));
        assert_eq!(c.peer_ip_header, "192.0.2.1");
        assert!(c.is_tls());
        assert_eq!(
            ip_header_value("2001:db8::1".parse().expect("ip")),
            "2001:db8::1"
        );
    }
}
