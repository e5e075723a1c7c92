//! Body types on both sides of the proxy: streamed, never buffered whole.
//!
//! A client's request body goes to Mattermost as a [`RequestBody`], which cuts it off at the
//! body-size limit, counts what passed and tells the client's errors from the limit tripping, so
//! a broken upload is never blamed on Mattermost.

use std::error::Error as StdError;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body_util::Full;
use hyper::body::{Body, Frame, SizeHint};

/// The error type bodies are boxed into.
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// A short body made at the edge.
pub type LocalBody = Full<Bytes>;

/// A body made at the edge.
pub fn local(bytes: impl Into<Bytes>) -> LocalBody {
    Full::new(bytes.into())
}

/// Why a client's request body stopped.
#[derive(Debug)]
pub enum RequestBodyError {
    /// It grew past the limit (bytes).
    TooLarge(u64),
    /// The client's side failed: malformed framing, or the connection closed mid-body.
    Client(BoxError),
}

impl fmt::Display for RequestBodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestBodyError::TooLarge(limit) => {
                write!(f, "request body larger than {limit} bytes")
            }
            RequestBodyError::Client(e) => write!(f, "client request body: {e}"),
        }
    }
}

impl StdError for RequestBodyError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            RequestBodyError::TooLarge(_) => None,
            RequestBodyError::Client(e) => Some(e.as_ref()),
        }
    }
}

impl RequestBodyError {
    /// The request-body error somewhere in an error's chain (hyper wraps a body's error when it
    /// could not send the request), if any.
    pub fn find<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a RequestBodyError> {
        let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
        while let Some(e) = cur {
            if let Some(found) = e.downcast_ref::<RequestBodyError>() {
                return Some(found);
            }
            cur = e.source();
        }
        None
    }
}

/// A client's request body on its way to Mattermost: cut off at `limit` bytes, counted into a
/// shared counter (only bodies that are not empty get one, so a GET allocates nothing).
#[derive(Debug)]
pub struct RequestBody<B> {
    inner: B,
    remaining: u64,
    limit: u64,
    counted: Option<Arc<AtomicU64>>,
}

impl<B: Body> RequestBody<B> {
    /// Wraps `inner` with a limit; returns the counter of bytes read when the body is not empty.
    pub fn new(inner: B, limit: u64) -> (Self, Option<Arc<AtomicU64>>) {
        let counted = (!inner.is_end_stream()).then(|| Arc::new(AtomicU64::new(0)));
        let body = Self {
            inner,
            remaining: limit,
            limit,
            counted: counted.clone(),
        };
        (body, counted)
    }
}

impl<B> Body for RequestBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = RequestBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, RequestBodyError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(RequestBodyError::Client(e.into())))),
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.remaining() as u64;
                    if len > this.remaining {
                        this.remaining = 0;
                        return Poll::Ready(Some(Err(RequestBodyError::TooLarge(this.limit))));
                    }
                    this.remaining -= len;
                    if let Some(c) = &this.counted {
                        c.fetch_add(len, Ordering::Relaxed);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.inner.size_hint();
        if hint.lower() > self.remaining {
            // Let the limit trip in poll_frame rather than announce an impossible length.
            hint = SizeHint::default();
        } else if hint.upper().map_or(true, |u| u > self.remaining) {
            hint.set_upper(self.remaining);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn counts_and_cuts_at_the_limit() {
        let (body, counter) = RequestBody::new(Full::new(Bytes::from_static(b"0123456789")), 10);
        let counter = counter.expect("non-empty body is counted");
        let got = body.collect().await.expect("within the limit").to_bytes();
        assert_eq!(&got[..], b"0123456789");
        assert_eq!(counter.load(Ordering::Relaxed), 10);

        let (body, _) = RequestBody::new(Full::new(Bytes::from_static(b"0123456789")), 9);
        match body.collect().await {
            Err(RequestBodyError::TooLarge(9)) => {}
            other => panic!("expected TooLarge(9), got {other:?}"),
        }
        let (_, counter) = RequestBody::new(Full::new(Bytes::new()), 9);
        assert!(counter.is_none(), "an empty body allocates no counter");
    }
}
