//! TEMPORARY stub until the client-IP policy lands.
use std::net::IpAddr;
/// Resolves the client IP.
#[derive(Debug)]
pub struct ClientIp;
impl ClientIp {
    /// Builds the policy.
    pub fn new(_trusted: Vec<ipnet::IpNet>) -> Self {
        Self
    }
    /// The client's IP.
    pub fn resolve(&self, peer: IpAddr, _headers: &http::HeaderMap) -> IpAddr {
        match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        }
    }
}
