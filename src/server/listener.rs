//! The listeners, as a list: each one a socket, the setting that named its address, whether it
//! speaks TLS, and its role (the TLS listener, the plain one).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use super::proxy_header::ProxyHeader;
use crate::config::{spec, Setting, Settings};
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
/// metrics listener when configured. With `MM_EDGE_PROXY_PROTOCOL` on, connections to the
/// HTTPS and HTTP listeners begin with a PROXY header; the metrics listener is never behind the
/// load balancer, so its connections never do.
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

/// Binds every listener, or names the first that cannot be bound.
pub fn bind(settings: &Settings, specs: Vec<Spec>) -> Result<Vec<Bound>, BindError> {
    specs
        .into_iter()
        .map(|s| {
            let err = |source| BindError {
                setting: settings.describe(s.setting),
                source,
            };
            let socket = bind_one(s.addr).map_err(err)?;
            let addr = socket.local_addr().map_err(err)?;
            Ok(Bound {
                socket,
                role: s.role,
                tls: s.tls,
                addr,
                proxy_header: s.proxy_header,
            })
        })
        .collect()
}

fn bind_one(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}
