//! The client side of a WebSocket upgrade. hyper hands it over itself (plain listener, `auto`),
//! or the HTTPS HTTP/1.1 server does: it runs hyper without upgrades so that it keeps the
//! connection between requests, and gives the connection to the tunnel once the `101` is out.

use std::fmt;
use std::sync::{Arc, Mutex};

use http::Request;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;

/// A client connection after its upgrade: bytes both ways.
pub trait ClientIo: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> ClientIo for T {}

impl fmt::Debug for dyn ClientIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientIo")
    }
}

/// An upgraded client connection.
pub type Upgraded = Box<dyn ClientIo>;

/// Put into an upgrade request's extensions by a server that hands the connection over itself
/// (shared, as request extensions must be `Clone`; taken once).
#[derive(Debug, Clone)]
pub struct Handover(Arc<Mutex<Option<oneshot::Receiver<Upgraded>>>>);

/// The server's end of a [`Handover`]: sends the connection once the `101` is written.
pub type HandoverSender = oneshot::Sender<Upgraded>;

/// A [`Handover`] for a request, and the sender the server keeps.
pub fn handover() -> (HandoverSender, Handover) {
    let (tx, rx) = oneshot::channel();
    (tx, Handover(Arc::new(Mutex::new(Some(rx)))))
}

/// Where a request's upgraded client connection will come from.
#[derive(Debug)]
pub enum ClientUpgrade {
    /// From hyper.
    Hyper(OnUpgrade),
    /// From the server that served the request.
    Handed(oneshot::Receiver<Upgraded>),
}

/// The client connection was not upgraded.
#[derive(Debug)]
pub struct NotUpgraded(String);

impl fmt::Display for NotUpgraded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotUpgraded {}

impl ClientUpgrade {
    /// Takes the upgrade out of an upgrade request.
    pub fn take<B>(req: &mut Request<B>) -> Self {
        let handed = req
            .extensions_mut()
            .remove::<Handover>()
            .and_then(|Handover(rx)| {
                let mut rx = rx.lock().unwrap_or_else(|e| e.into_inner());
                rx.take()
            });
        match handed {
            Some(rx) => Self::Handed(rx),
            None => Self::Hyper(hyper::upgrade::on(req)),
        }
    }

    /// Waits for the connection: it comes once the `101` is written.
    pub async fn connection(self) -> Result<Upgraded, NotUpgraded> {
        match self {
            Self::Hyper(on) => match on.await {
                Ok(up) => Ok(Box::new(TokioIo::new(up))),
                Err(e) => Err(NotUpgraded(e.to_string())),
            },
            Self::Handed(rx) => rx
                .await
                .map_err(|_| NotUpgraded("the connection ended before its upgrade".into())),
        }
    }
}
