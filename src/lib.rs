//! mm-edge: an HTTPS edge proxy for self-hosted Mattermost.
//!
//! The module tree follows a request: [`config`] (settings) -> [`tls`] (certificates) ->
//! [`server`] (listeners, connections, shutdown) -> [`pipeline`] (one request's phases, in
//! order) -> [`edge`] (client IP, CORS, rate limit) -> [`proxy`] (forwarding, headers, WebSocket
//! tunnel) -> [`upstream`] (Mattermost servers). [`mattermost`] writes Mattermost's configuration
//! to match; [`app`] wires it all together.
//!
//! Leaves everything above may use: [`answer`] (the edge's own answers and its one error type),
//! [`body`] (body types), [`conn`] (what a connection tells its requests), [`io`] (I/O wrappers),
//! [`lifecycle`] (shutdown and background tasks), [`atomic_file`] (crash-safe file writes),
//! [`observe`] (the access log's writer, the metrics).
#![forbid(unsafe_code)]

pub mod answer;
pub mod app;
pub mod atomic_file;
pub mod body;
pub mod config;
pub mod conn;
pub mod edge;
pub mod healthcheck;
pub mod io;
pub mod lifecycle;
pub mod mattermost;
pub mod observe;
pub mod pipeline;
pub mod proxy;
pub mod reload;
pub mod server;
pub mod tls;
pub mod upstream;
