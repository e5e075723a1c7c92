//! Body types on both sides of the proxy: streamed, never buffered whole.

use bytes::Bytes;
use http_body_util::{Either, Full, Limited};
use hyper::body::Incoming;

pub use crate::upstream::PooledBody;

/// A client's request body on its way to Mattermost, cut off at the body-size limit.
pub type RequestBody = Limited<Incoming>;

/// A response: Mattermost's streamed body, or a short one made at the edge.
pub type ResponseBody = Either<PooledBody, Full<Bytes>>;

/// A body made at the edge.
pub fn local(bytes: impl Into<Bytes>) -> ResponseBody {
    Either::Right(Full::new(bytes.into()))
}

/// Whether an error chain is the body-size limit tripping.
pub fn is_over_limit(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cur = e.source();
    }
    false
}
