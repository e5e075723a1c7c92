//! mm-edge: an HTTPS edge proxy for self-hosted Mattermost.
//!
//! The module tree follows a request: [`config`] (settings) -> [`tls`] (certificates) ->
//! [`server`] (listeners, connections, shutdown) -> [`edge`] (client IP, CORS, rate limit) ->
//! [`proxy`] (forwarding, headers, WebSocket tunnel) -> [`upstream`] (Mattermost servers).
//! [`mattermost`] writes Mattermost's configuration to match; [`app`] wires it all together.
#![forbid(unsafe_code)]

pub mod app;
pub mod config;
pub mod edge;
pub mod healthcheck;
pub mod idle;
pub mod mattermost;
pub mod proxy;
pub mod server;
pub mod tls;
pub mod upstream;
