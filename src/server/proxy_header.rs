//! The PROXY protocol (HAProxy's text v1 and binary v2 headers): a layer-4 load balancer in
//! front (an AWS NLB, a DigitalOcean or Hetzner load balancer, HAProxy in TCP mode) writes the
//! client's address before the client's first byte, so each client keeps its own address (and
//! rate-limit bucket) instead of sharing the balancer's.
//!
//! The header is read before anything else (the TLS handshake on the HTTPS listener), and
//! exactly up to its end: the socket is peeked, and only the header's own bytes are consumed,
//! so what follows (a TLS ClientHello, an HTTP request) stays in the socket for the connection.
//! Headers are believed only from the trusted proxies (`client_ip.trusted_proxies`); a
//! connection from anyone else, or without a valid header, is closed.

use std::io;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use parking_lot::Mutex;
use ppp::v1;
use ppp::v2;
use ppp::PartialResult;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::Throttled;
use crate::config::spec;

/// Longest header accepted, bytes. A v1 header is at most 107 bytes (the spec's limit); a v2
/// header is 16 bytes plus addresses (at most 216) plus TLVs: the spec's 536-byte buffer covers
/// the addresses, and what balancers add as TLVs (AWS's VPC endpoint id, Azure's link id, a
/// unique id, ALPN or SNI) fits well within the rest of 1 KiB.
pub const MAX_HEADER_BYTES: usize = 1024;

/// Reads PROXY headers on the listeners that expect one; built once from settings, shared.
#[derive(Debug)]
pub struct ProxyHeader {
    /// The load balancers allowed to send a header (canonical networks).
    trusted: Vec<IpNet>,
    /// Refusals, logged at most once a second.
    refusals: Mutex<Throttled>,
}

/// A v2 `LOCAL` header without addresses: what `mm-edge healthcheck` sends first when the
/// listeners expect a header.
pub const V2_LOCAL: [u8; V2_FIXED] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x20, 0x00, 0x00, 0x00,
];

/// Why a connection's header was refused (the connection is closed).
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The peer is not a trusted load balancer.
    #[error("the peer is not in {}", spec::TRUSTED_PROXIES.env)]
    Untrusted,
    /// The peer sent no complete header within the client header timeout.
    #[error("no complete PROXY header within {}", spec::CLIENT_HEADER_TIMEOUT.env)]
    TimedOut,
    /// The peer closed the connection within (or before) the header.
    #[error("connection closed before the end of the PROXY header")]
    Closed {
        /// Header bytes received before the close (0: a bare TCP health check).
        received: usize,
    },
    /// What arrived is not a PROXY header (a client talking to mm-edge directly, say).
    #[error("not a PROXY protocol header: {0}")]
    Malformed(String),
    /// A v2 header longer than [`MAX_HEADER_BYTES`].
    #[error("PROXY header of {0} bytes, more than the {MAX_HEADER_BYTES} accepted")]
    TooLong(usize),
    /// The socket failed.
    #[error("reading the PROXY header failed: {0}")]
    Io(#[from] io::Error),
}

impl ProxyHeader {
    /// Believes headers from peers inside `trusted` (networks in canonical form, as the
    /// `[client_ip]` settings hold them).
    pub fn new(trusted: &[IpNet]) -> Self {
        Self {
            trusted: trusted.to_vec(),
            refusals: Mutex::new(Throttled::default()),
        }
    }

    /// Reads the header of a new connection from `peer` before `deadline`: the client's address,
    /// or `peer` itself when the header says the connection is the balancer's own (v2 `LOCAL`,
    /// a health check) or carries no address (v1 `UNKNOWN`, v2 `UNSPEC` or a Unix socket).
    pub async fn read(
        &self,
        stream: &mut TcpStream,
        peer: SocketAddr,
        deadline: Instant,
    ) -> Result<SocketAddr, Refused> {
        let ip = peer.ip().to_canonical();
        let trusted = self.trusted.iter().any(|net| net.contains(&ip));
        // A process on this host (`mm-edge healthcheck`) may send a header that names no
        // address (v2 LOCAL): it claims nothing, so it needs no trust.
        if !trusted && !ip.is_loopback() {
            return Err(Refused::Untrusted);
        }
        match tokio::time::timeout_at(deadline, read_header(stream)).await {
            Ok(Ok(None)) => Ok(peer),
            Ok(Ok(Some(_))) if !trusted => Err(Refused::Untrusted),
            Ok(Ok(Some(source))) => Ok(source),
            Ok(Err(refused)) => Err(refused),
            Err(_) => Err(Refused::TimedOut),
        }
    }

    /// Logs a refusal: at warn, at most once a second with how many there were; a connection
    /// closed before its first byte (a balancer's TCP health check) only at debug.
    pub fn log_refused(&self, peer: SocketAddr, why: &Refused) {
        if let Refused::Closed { received: 0 } = why {
            debug!(%peer, "connection closed before a PROXY header");
            return;
        }
        if let Some(times) = self.refusals.lock().due() {
            warn!(%peer, reason = %why, times, "PROXY header refused: connection closed");
        }
    }
}

/// Reads one header off the socket, consuming exactly its bytes; `None` = no client address
/// in it (use the peer's).
async fn read_header(stream: &mut TcpStream) -> Result<Option<SocketAddr>, Refused> {
    let mut buf = [0u8; MAX_HEADER_BYTES];
    // Bytes of the header consumed so far (buf[..have]); peeks land after them.
    let mut have = 0;
    loop {
        if have == buf.len() {
            return Err(Refused::TooLong(have));
        }
        let n = stream.peek(&mut buf[have..]).await?;
        if n == 0 {
            return Err(Refused::Closed { received: have });
        }
        let seen = have + n;
        match parse(&buf[..seen]) {
            Parsed::Header { len, source } => {
                // The header ends within what was peeked: take its bytes, leave the rest.
                stream.read_exact(&mut buf[have..len]).await?;
                return Ok(source);
            }
            Parsed::Incomplete => {
                // No end yet, so every byte seen belongs to the header: take them, so the next
                // peek waits for new bytes instead of returning these again.
                stream.read_exact(&mut buf[have..seen]).await?;
                have = seen;
            }
            Parsed::TooLong(len) => return Err(Refused::TooLong(len)),
            Parsed::Invalid(why) => return Err(Refused::Malformed(why)),
        }
    }
}

/// What the bytes received so far make.
#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    /// A whole header of `len` bytes, with the client's address if it carries one.
    Header {
        len: usize,
        source: Option<SocketAddr>,
    },
    /// The start of a header: more bytes are needed.
    Incomplete,
    /// A v2 header announcing this many bytes, more than [`MAX_HEADER_BYTES`].
    TooLong(usize),
    /// Not a PROXY header.
    Invalid(String),
}

/// Parses the start of a connection as a v1 or v2 header.
fn parse(bytes: &[u8]) -> Parsed {
    // v2 begins with its binary signature (`\r\n\r\n\0\r\nQUIT\n`), v1 with `PROXY `.
    if bytes.first() == Some(&v2::PROTOCOL_PREFIX[0]) {
        return match v2::Header::try_from(bytes) {
            Ok(h) => Parsed::Header {
                len: h.len(),
                source: match (h.command, h.addresses) {
                    (v2::Command::Local, _) => None,
                    (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
                        Some(SocketAddr::new(IpAddr::V4(a.source_address), a.source_port))
                    }
                    (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
                        Some(SocketAddr::new(IpAddr::V6(a.source_address), a.source_port))
                    }
                    (v2::Command::Proxy, _) => None,
                },
            },
            Err(v2::ParseError::Partial(_, length)) if V2_FIXED + length > MAX_HEADER_BYTES => {
                Parsed::TooLong(V2_FIXED + length)
            }
            Err(e) if e.is_incomplete() => Parsed::Incomplete,
            Err(e) => Parsed::Invalid(format!("v2: {e}")),
        };
    }
    // ppp's v1 parser cannot tell a cut line from a bad one (`PROXY TCP4 1.2.3.4 5.6.7.8 80 `
    // is "invalid port", `PROXY TCP4 nonsense\r\n` "incomplete"): a v1 header is complete at
    // its CRLF, judged then, and until then only needs to begin like one.
    let Some(end) = bytes.windows(2).position(|w| w == b"\r\n") else {
        let prefix = &V1_PREFIX[..bytes.len().min(V1_PREFIX.len())];
        return if !bytes.starts_with(prefix) {
            Parsed::Invalid("does not begin with PROXY".into())
        } else if bytes.contains(&b'\n') {
            Parsed::Invalid("v1: the line ends without CRLF".into())
        } else if bytes.len() >= V1_MAX {
            Parsed::Invalid(format!("v1: no CRLF within {V1_MAX} bytes"))
        } else {
            Parsed::Incomplete
        };
    };
    match v1::Header::try_from(&bytes[..end + 2]) {
        Ok(h) => Parsed::Header {
            len: h.header.len(),
            source: match h.addresses {
                v1::Addresses::Tcp4(a) => {
                    Some(SocketAddr::new(IpAddr::V4(a.source_address), a.source_port))
                }
                v1::Addresses::Tcp6(a) => {
                    Some(SocketAddr::new(IpAddr::V6(a.source_address), a.source_port))
                }
                v1::Addresses::Unknown => None,
            },
        },
        Err(e) => Parsed::Invalid(format!("v1: {e}")),
    }
}

/// How a v1 header begins.
const V1_PREFIX: &[u8] = b"PROXY ";
/// The longest v1 header, CRLF included (the spec's limit).
const V1_MAX: usize = 107;

/// A v2 header's fixed part: signature, version and command, family, length.
const V2_FIXED: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(command: u8, family: u8, addresses: &[u8], tlvs: &[u8]) -> Vec<u8> {
        let mut h = v2::PROTOCOL_PREFIX.to_vec();
        h.push(0x20 | command);
        h.push(family);
        let len = u16::try_from(addresses.len() + tlvs.len()).expect("short");
        h.extend(len.to_be_bytes());
        h.extend(addresses);
        h.extend(tlvs);
        h
    }

    fn addr(s: &str) -> Option<SocketAddr> {
        Some(s.parse().expect("address"))
    }

    #[test]
    fn v1_headers_give_the_source_and_their_exact_length() {
        let line = b"PROXY TCP4 203.0.113.7 10.0.0.5 51234 443\r\n";
        let mut input = line.to_vec();
        input.extend(b"\x16\x03\x01 TLS bytes that follow");
        assert_eq!(
            parse(&input),
            Parsed::Header {
                len: line.len(),
                source: addr("203.0.113.7:51234"),
            }
        );
        let line = b"PROXY TCP6 2001:db8::7 2001:db8::1 4711 80\r\n";
        assert_eq!(
            parse(line),
            Parsed::Header {
                len: line.len(),
                source: addr("[2001:db8::7]:4711"),
            }
        );
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\nGET /"),
            Parsed::Header {
                len: 15,
                source: None
            }
        );
    }

    #[test]
    fn v2_headers_give_the_source_and_local_means_the_peer() {
        let ipv4 = [203, 0, 113, 7, 10, 0, 0, 5, 0xC8, 0x22, 1, 187];
        let tlv = [0x04, 0, 2, 0xAB, 0xCD]; // NOOP, 2 bytes
        let mut input = v2(1, 0x11, &ipv4, &tlv);
        let len = input.len();
        input.extend(b"GET / HTTP/1.1\r\n");
        assert_eq!(
            parse(&input),
            Parsed::Header {
                len,
                source: addr("203.0.113.7:51234"),
            }
        );
        let mut ipv6 = Vec::new();
        ipv6.extend(
            "2001:db8::7"
                .parse::<std::net::Ipv6Addr>()
                .expect("ip")
                .octets(),
        );
        ipv6.extend([0; 16]);
        ipv6.extend([0x12, 0x67, 0, 80]);
        assert_eq!(
            parse(&v2(1, 0x21, &ipv6, &[])),
            Parsed::Header {
                len: 16 + 36,
                source: addr("[2001:db8::7]:4711"),
            }
        );
        // LOCAL: the balancer's own connection (a health check), addresses or not.
        assert_eq!(V2_LOCAL.to_vec(), v2(0, 0x00, &[], &[]));
        assert_eq!(
            parse(&V2_LOCAL),
            Parsed::Header {
                len: 16,
                source: None
            }
        );
        assert_eq!(
            parse(&v2(0, 0x11, &ipv4, &[])),
            Parsed::Header {
                len: 28,
                source: None
            }
        );
    }

    #[test]
    fn every_prefix_of_a_header_asks_for_more() {
        let v1 = b"PROXY TCP4 203.0.113.7 10.0.0.5 51234 443\r\n".to_vec();
        let v2 = v2(1, 0x11, &[203, 0, 113, 7, 10, 0, 0, 5, 0, 1, 0, 2], &[]);
        for header in [v1, v2] {
            for cut in 1..header.len() {
                assert_eq!(parse(&header[..cut]), Parsed::Incomplete, "{cut} bytes");
            }
        }
    }

    #[test]
    fn anything_else_is_refused_at_once() {
        for input in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"\x16\x03\x01\x02\x00\x01",
            b"PROXY TCP4 nonsense\r\n",
            b"PROXY TCP4 203.0.113.7 10.0.0.5 51234 443\n",
            b"\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x0c",
            b"\r\n\r\n\x00\r\nQUIX\n",
            b"PROXY TCP4 203.0.113.7 10.0.0.5 51234 443 and more and more and more and more and more and more and more and more",
        ] {
            assert!(
                matches!(parse(input), Parsed::Invalid(_)),
                "{:?}: {:?}",
                String::from_utf8_lossy(input),
                parse(input)
            );
        }
        // A v2 header announcing more than the bound is refused before it is read.
        let mut big = v2::PROTOCOL_PREFIX.to_vec();
        big.extend([0x21, 0x11, 0x10, 0x00]);
        assert_eq!(parse(&big), Parsed::TooLong(16 + 4096));
    }
}
