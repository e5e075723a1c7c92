//! The listeners, as a list: each one a socket, the setting that named its address, whether it
//! speaks TLS, and its role (the TLS listener, the plain one).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use rustix::io::Errno;
use tokio::net::{TcpListener, TcpSocket};
use tracing::info;

use super::proxy_header::ProxyHeader;
use crate::config::{spec, Setting, Settings, Source};
use crate::conn::Listener as Role;

/// Connections waiting to be accepted per listener (the kernel's accept queue).
const BACKLOG: u32 = 4096;

/// Why a listener could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: cannot listen there ({source}); pick a free port or stop what holds it (ports below 1024 need root or CAP_NET_BIND_SERVICE)")]
pub struct BindError {
    /// The setting naming the address, as the user gave it.
    pub setting: String,
    /// The OS error.
    pub source: std::io::Error,
}

/// A listener to bind.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The setting naming its address.
    pub setting: &'static Setting,
    /// The address.
    pub addr: SocketAddr,
    /// Its role.
    pub role: Role,
    /// TLS, when it terminates TLS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The PROXY header reader, when its connections begin with one.
    pub proxy_header: Option<Arc<ProxyHeader>>,
}

/// The listeners the settings ask for: HTTPS (when TLS is terminated here), HTTP, and the
/// metrics listener when configured. With the PROXY protocol on (`listen.proxy_protocol`),
/// connections to the HTTPS and HTTP listeners begin with a PROXY header; the metrics listener
/// is never behind the load balancer, so its connections never do.
pub fn specs(settings: &Settings, tls: Option<Arc<rustls::ServerConfig>>) -> Vec<Spec> {
    let mut out = Vec::with_capacity(2);
    let proxy_header = settings
        .listen
        .proxy_protocol
        .then(|| Arc::new(ProxyHeader::new(&settings.client_ip.trusted_proxies)));
    if let Some(config) = tls {
        out.push(Spec {
            setting: &spec::HTTPS_LISTEN,
            addr: settings.listen.https,
            role: Role::Https,
            tls: Some(config),
            proxy_header: proxy_header.clone(),
        });
    }
    out.push(Spec {
        setting: &spec::HTTP_LISTEN,
        addr: settings.listen.http,
        role: Role::Http,
        tls: None,
        proxy_header,
    });
    if let Some(addr) = settings.metrics.listen {
        out.push(Spec {
            setting: &spec::METRICS_LISTEN,
            addr,
            role: Role::Metrics,
            tls: None,
            proxy_header: None,
        });
    }
    out
}

/// A bound listener.
#[derive(Debug)]
pub struct Bound {
    /// The socket.
    pub socket: TcpListener,
    /// Its role.
    pub role: Role,
    /// TLS, when it terminates TLS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The address actually bound (port 0 resolved).
    pub addr: SocketAddr,
    /// The PROXY header reader, when its connections begin with one.
    pub proxy_header: Option<Arc<ProxyHeader>>,
}

/// Binds every listener, or names the first that cannot be bound. A listener left at its
/// default, `[::]` (IPv6 and IPv4), binds `0.0.0.0` on a host without IPv6 instead (one log
/// line says so); an address the user gave is bound as given or is an error.
pub fn bind(settings: &Settings, specs: Vec<Spec>) -> Result<Vec<Bound>, BindError> {
    let mut ipv4_only = Vec::new();
    let bound = specs
        .into_iter()
        .map(|s| {
            let err = |source| BindError {
                setting: settings.describe(s.setting),
                source,
            };
            let default = settings.layers().get(s.setting).source == Source::Default;
            let socket = match bind_one(s.addr) {
                Err(e) if default && lacks_ipv6(s.addr, &e) => {
                    ipv4_only.push(s.setting.env);
                    bind_one(SocketAddr::from((Ipv4Addr::UNSPECIFIED, s.addr.port())))
                }
                other => other,
            }
            .map_err(err)?;
            let addr = socket.local_addr().map_err(err)?;
            Ok(Bound {
                socket,
                role: s.role,
                tls: s.tls,
                addr,
                proxy_header: s.proxy_header,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !ipv4_only.is_empty() {
        info!(
            listeners = ?ipv4_only,
            "no IPv6 on this host: the default listeners take IPv4 only (0.0.0.0)"
        );
    }
    Ok(bound)
}

/// Whether binding `addr` failed because the host has no IPv6 (a container or a kernel
/// without it: the socket family is not supported, or `::` is not an address here).
fn lacks_ipv6(addr: SocketAddr, e: &io::Error) -> bool {
    let no_ipv6 = [
        Errno::AFNOSUPPORT,
        Errno::ADDRNOTAVAIL,
        Errno::PROTONOSUPPORT,
    ];
    addr.ip() == IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        && e.raw_os_error()
            .is_some_and(|code| no_ipv6.iter().any(|n| n.raw_os_error() == code))
}

/// Binds and listens.
fn bind_one(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = socket_for(addr)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// A listening socket for `addr`, not yet bound. An IPv6 one takes IPv4 too (IPV6_V6ONLY off,
/// whatever the host's `net.ipv6.bindv6only`) when bound to `[::]`: IPv4 clients arrive as
/// `::ffff:a.b.c.d`, which `ConnInfo` turns back into IPv4.
fn socket_for(addr: SocketAddr) -> io::Result<TcpSocket> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => {
            let socket = TcpSocket::new_v6()?;
            socket2::SockRef::from(&socket).set_only_v6(false)?;
            socket
        }
    };
    socket.set_reuseaddr(true)?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_missing_ipv6_on_the_any_address_falls_back() {
        let any6: SocketAddr = "[::]:443".parse().expect("addr");
        let os = |e: Errno| io::Error::from_raw_os_error(e.raw_os_error());
        assert!(lacks_ipv6(any6, &os(Errno::AFNOSUPPORT)));
        assert!(lacks_ipv6(any6, &os(Errno::ADDRNOTAVAIL)));
        // A port in use or a privileged port is the user's to fix, on IPv6 as on IPv4.
        assert!(!lacks_ipv6(any6, &os(Errno::ADDRINUSE)));
        assert!(!lacks_ipv6(any6, &os(Errno::ACCESS)));
        let other: SocketAddr = "[2001:db8::1]:443".parse().expect("addr");
        assert!(!lacks_ipv6(other, &os(Errno::ADDRNOTAVAIL)));
    }

    #[test]
    fn ipv6_listeners_take_ipv4_too() {
        // Checked before binding: tests bind loopback only, and Linux turns IPV6_V6ONLY on by
        // itself when a socket is bound to one IPv6 address such as ::1.
        let Ok(socket) = socket_for("[::]:0".parse().expect("addr")) else {
            eprintln!("skipping: no IPv6 sockets here");
            return;
        };
        assert_eq!(socket2::SockRef::from(&socket).only_v6().ok(), Some(false));
    }
}
