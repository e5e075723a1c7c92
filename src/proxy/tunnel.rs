//! The WebSocket tunnel: after Mattermost answers 101, bytes flow both ways until either side
//! closes, the tunnel idles past its timeout, or the edge shuts down.

use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tracing::debug;

use crate::io::pump::pump;
use crate::io::tracked::{Expiry, Side, Tracked, Watch};
use crate::io::upgrade::ClientUpgrade;
use crate::lifecycle::Shutdown;
use crate::upstream::ConnPermit;

/// How a tunnel ended, for whoever logs it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TunnelStats {
    /// Bytes from the client to Mattermost.
    pub client_to_upstream: u64,
    /// Bytes from Mattermost to the client.
    pub upstream_to_client: u64,
    /// Why it ended.
    pub end: TunnelEnd,
}

/// Why a tunnel ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TunnelEnd {
    /// Both sides closed.
    #[default]
    Closed,
    /// One side failed (reset, broken pipe).
    Error,
    /// No traffic either way for the idle timeout.
    Idle,
    /// The client took no byte for the send timeout.
    SendStalled,
    /// The edge shut down.
    Shutdown,
    /// The upgrade did not complete on one side.
    NotUpgraded,
}

/// Told once when a tunnel ends.
pub trait OnClose: Send + 'static {
    /// The tunnel is gone; `stats` says how it went.
    fn closed(self, stats: TunnelStats);
}

/// The tunnel's timeouts.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// No traffic either way.
    pub idle: Duration,
    /// The client takes no byte.
    pub send: Duration,
}

/// Joins the client's and Mattermost's upgraded connections in a background task; `on_close`
/// hears how it ended. `permit` (the upstream connection's share of its server's limit) is held
/// until then.
pub fn spawn(
    client: ClientUpgrade,
    upstream: OnUpgrade,
    timeouts: Timeouts,
    permit: Option<ConnPermit>,
    mut shutdown: Shutdown,
    on_close: impl OnClose,
) {
    tokio::spawn(async move {
        let upstream = async { upstream.await.map_err(|e| e.to_string()) };
        let client = async { client.connection().await.map_err(|e| e.to_string()) };
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(e) => {
                debug!(error = %e, "websocket upgrade did not complete");
                on_close.closed(TunnelStats {
                    end: TunnelEnd::NotUpgraded,
                    ..TunnelStats::default()
                });
                return;
            }
        };
        let _permit = permit;
        let (mut client, activity) = Tracked::client(client);
        let mut upstream =
            Tracked::with_activity(TokioIo::new(upstream), activity.clone(), Side::Upstream);
        let mut watch = Watch::new(activity, timeouts.idle, timeouts.send);
        let mut copy = pump(&mut client, &mut upstream).done_when_b_closes();
        let end = tokio::select! {
            res = &mut copy => match res {
                Ok(()) => TunnelEnd::Closed,
                Err(e) => {
                    debug!(error = %e, "websocket tunnel ended with an error");
                    TunnelEnd::Error
                }
            },
            expiry = watch.expired() => match expiry {
                Expiry::Idle => {
                    debug!(timeout = ?timeouts.idle, "websocket tunnel idle, closed");
                    TunnelEnd::Idle
                }
                Expiry::SendStalled => {
                    debug!(timeout = ?timeouts.send, "websocket client took nothing for the send timeout, closed");
                    TunnelEnd::SendStalled
                }
            },
            _ = shutdown.requested() => {
                debug!("websocket tunnel closed for shutdown");
                TunnelEnd::Shutdown
            }
        };
        let (client_to_upstream, upstream_to_client) = copy.transferred();
        on_close.closed(TunnelStats {
            client_to_upstream,
            upstream_to_client,
            end,
        });
    });
}
