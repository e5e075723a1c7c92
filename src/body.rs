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
use std::time::Duration;

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

/// After answering an HTTP/1.1 request whose body was not read (413, 429...), the edge keeps
/// reading and discarding it for at most this many bytes...
pub const LINGER_BYTES: u64 = 8 << 20;
/// ...and this long (nginx's lingering close), so that the client, still sending, reads the
/// answer instead of a connection reset.
pub const LINGER_TIME: Duration = Duration::from_secs(5);

/// Reads and discards the rest of a request body in the background, within [`LINGER_BYTES`]
/// and [`LINGER_TIME`]; then drops it (and hyper closes the connection if it is not done).
pub fn linger<B>(body: B)
where
    B: Body + Send + Unpin + 'static,
{
    if body.is_end_stream() {
        return;
    }
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    rt.spawn(async move {
        let mut body = body;
        let mut read = 0u64;
        let drain = async {
            while read < LINGER_BYTES {
                match std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
                    Some(Ok(frame)) => {
                        if let Some(d) = frame.data_ref() {
                            read += d.remaining() as u64;
                        }
                    }
                    _ => return,
                }
            }
        };
        let _ = tokio::time::timeout(LINGER_TIME, drain).await;
    });
}

/// A client's request body on its way to Mattermost: cut off at `limit` bytes, counted into a
/// shared counter (only bodies that are not empty get one, so a GET allocates nothing). When the
/// limit trips on an HTTP/1.1 request, the rest of the body is drained ([`linger`]) once the
/// upstream request is dropped, while the 413 goes out.
#[derive(Debug)]
pub struct RequestBody<B> {
    /// `None`: an empty body (made for a request sent a second time).
    inner: Option<B>,
    remaining: u64,
    limit: u64,
    counted: Option<Arc<AtomicU64>>,
    /// Set when the limit tripped: what drains the rest.
    linger_on_drop: Option<fn(B)>,
    tripped: bool,
}

impl<B> Default for RequestBody<B> {
    /// An empty body.
    fn default() -> Self {
        Self {
            inner: None,
            remaining: 0,
            limit: 0,
            counted: None,
            linger_on_drop: None,
            tripped: false,
        }
    }
}

impl<B> Drop for RequestBody<B> {
    fn drop(&mut self) {
        if self.tripped {
            if let (Some(drain), Some(inner)) = (self.linger_on_drop, self.inner.take()) {
                drain(inner);
            }
        }
    }
}

impl<B: Body + Send + Unpin + 'static> RequestBody<B> {
    /// Wraps `inner` with a limit (`linger`: drain it when the limit trips, for HTTP/1.x);
    /// returns the counter of bytes read when the body is not empty.
    pub fn new(inner: B, limit: u64, linger: bool) -> (Self, Option<Arc<AtomicU64>>) {
        let counted = (!inner.is_end_stream()).then(|| Arc::new(AtomicU64::new(0)));
        let body = Self {
            inner: Some(inner),
            remaining: limit,
            limit,
            counted: counted.clone(),
            linger_on_drop: linger.then_some(self::linger::<B> as fn(B)),
            tripped: false,
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
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(RequestBodyError::Client(e.into())))),
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.remaining() as u64;
                    if len > this.remaining {
                        this.remaining = 0;
                        this.tripped = true;
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
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let Some(inner) = self.inner.as_ref() else {
            return SizeHint::with_exact(0);
        };
        let mut hint = inner.size_hint();
        if hint.lower() > self.remaining {
            // Let the limit trip in poll_frame rather than announce an impossible length.
            hint = SizeHint::default();
        } else if hint.upper().is_none_or(|u| u > self.remaining) {
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
        let (body, counter) =
            RequestBody::new(Full::new(Bytes::from_static(b"0123456789")), 10, false);
        let counter = counter.expect("non-empty body is counted");
        let got = body.collect().await.expect("within the limit").to_bytes();
        assert_eq!(&got[..], b"0123456789");
        assert_eq!(counter.load(Ordering::Relaxed), 10);

        let (body, _) = RequestBody::new(Full::new(Bytes::from_static(b"0123456789")), 9, true);
        match body.collect().await {
            Err(RequestBodyError::TooLarge(9)) => {}
            other => panic!("expected TooLarge(9), got {other:?}"),
        }
        let (_, counter) = RequestBody::new(Full::new(Bytes::new()), 9, false);
        assert!(counter.is_none(), "an empty body allocates no counter");
    }
}
