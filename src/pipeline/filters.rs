//! The response filters, applied to every response whatever answered it (Mattermost or the
//! edge): CORS headers, `X-RateLimit-*` headers, HSTS.

use http::header::{self, HeaderMap, HeaderValue};

use super::ctx::RequestCtx;
use crate::edge::cors::Cors;

/// The filters' settings, built once.
#[derive(Debug)]
pub struct Filters {
    /// `Strict-Transport-Security`, sent over TLS (`None`: off).
    pub hsts: Option<HeaderValue>,
}

impl Filters {
    /// Applies every filter to `headers`.
    pub fn apply(&self, cors: Option<&Cors>, ctx: &RequestCtx, headers: &mut HeaderMap) {
        // CORS: the edge is the only source of CORS headers once CORS is on.
        if let (Some(cors), Some(origin)) = (cors, &ctx.cors) {
            cors.apply_actual(&ctx.method, origin.as_ref(), headers);
        }
        if let Some(rate) = &ctx.rate {
            rate.apply(headers);
        }
        if ctx.tls.is_some() {
            if let Some(hsts) = &self.hsts {
                headers.insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
            }
        }
    }
}
