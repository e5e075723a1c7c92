//! The response filters, applied to every response whatever answered it (Mattermost or the
//! edge): CORS headers, `X-RateLimit-*` headers, HSTS, the request id.

use http::header::{self, HeaderMap, HeaderValue};

use super::ctx::RequestCtx;
use crate::edge::cors::Cors;
use crate::proxy::headers::X_REQUEST_ID;

/// The filters' settings, built once.
#[derive(Debug)]
pub struct Filters {
    /// `Strict-Transport-Security`, sent over TLS (`None`: off).
    pub hsts: Option<HeaderValue>,
}

impl Filters {
    /// Applies every filter to `headers`.
    pub fn apply(&self, cors: Option<&Cors>, ctx: &mut RequestCtx, headers: &mut HeaderMap) {
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
        request_id(ctx, headers);
    }
}

/// Mattermost's `X-Request-Id` is the request's id; without one (the edge answered, or the
/// endpoint sends none) the edge's is used: a trusted proxy's, or a new one in Mattermost's
/// shape, sent to the client.
///
/// The id is unique per response, so it is marked sensitive: HTTP/2 sends it as a literal that
/// is never added to the HPACK table (where each would push out a header that repeats).
fn request_id(ctx: &mut RequestCtx, headers: &mut HeaderMap) {
    if let Some(id) = headers.get_mut(X_REQUEST_ID) {
        id.set_sensitive(true);
        ctx.request_id = Some(id.clone());
        return;
    }
    let mut id = ctx.request_id.take().unwrap_or_else(new_request_id);
    id.set_sensitive(true);
    headers.insert(X_REQUEST_ID, id.clone());
    ctx.request_id = Some(id);
}

/// The alphabet of Mattermost's ids (`model.NewId`: 16 random bytes, base32, 26 characters).
const ID_ALPHABET: &[u8; 32] = b"ybndrfg8ejkmcpqxot1uwisza345h769";

/// A new id shaped like Mattermost's: 26 characters of its base32 alphabet, 128 random bits.
pub fn new_request_id() -> HeaderValue {
    let mut bits = fastrand::u128(..);
    let mut id = [0u8; 26];
    for c in id.iter_mut() {
        *c = ID_ALPHABET[(bits & 31) as usize];
        bits >>= 5;
    }
    HeaderValue::from_bytes(&id).unwrap_or(HeaderValue::from_static("ybndrfg8ejkmcpqxot1uwisza3"))
}
