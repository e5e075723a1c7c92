//! The WebSocket tunnel: after Mattermost answers 101, bytes flow both ways until either side
//! closes, the tunnel idles past its timeout, or the edge shuts down.

use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use tracing::debug;

use crate::idle::{Tracked, Watch};

/// Joins the client's and Mattermost's upgraded connections in a background task.
pub fn spawn_tunnel(
    client: OnUpgrade,
    upstream: OnUpgrade,
    idle_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(e) => {
                debug!(error = %e, "websocket upgrade did not complete");
                return;
            }
        };
        let (mut client, traffic) = Tracked::new(TokioIo::new(client));
        let mut upstream = Tracked::with_counter(TokioIo::new(upstream), traffic.clone());
        let mut idle = Watch::new(traffic, idle_timeout);
        tokio::select! {
            res = super::pump::pump(&mut client, &mut upstream) => {
                if let Err(e) = res {
                    debug!(error = %e, "websocket tunnel ended with an error");
                }
            }
            _ = idle.expired() => debug!(timeout = ?idle_timeout, "websocket tunnel idle, closed"),
            _ = crate::server::stopping(&mut shutdown) => debug!("websocket tunnel closed for shutdown"),
        }
    });
}
