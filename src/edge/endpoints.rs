//! The edge's own endpoints, answered before any other policy and never forwarded.

/// The edge's health endpoint; a path no Mattermost route or team name can take.
pub const HEALTH_PATH: &str = "/.mm-edge/healthz";

/// An endpoint the edge answers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /.mm-edge/healthz` (any method): `200 ok`.
    Health,
}

/// The edge's own endpoint at `path`, if any.
pub fn lookup(path: &str) -> Option<Endpoint> {
    (path == HEALTH_PATH).then_some(Endpoint::Health)
}
