//! Keep-alive HTTP/1.1 connections to one Mattermost server.
//!
//! A stack of idle connections per server: a request takes the most recently used one (warm,
//! least likely to have been closed by Mattermost), and gives it back when its response body has
//! been read to the end, from the body itself, so no task is spawned per request and no pool key
//! is hashed (hyper-util's legacy client does both; measured in bench (a)).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::body::{Body, Frame, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tracing::debug;

use crate::body::BoxError;

/// Most idle connections kept per server.
const MAX_IDLE: usize = 1024;

type Sender<B> = SendRequest<B>;

/// Why a request could not be sent to Mattermost or got no answer.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No TCP connection could be made (refused, unreachable, timed out).
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    /// The connection failed while sending the request or reading the response head.
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

impl UpstreamError {
    /// Whether the server could not be reached at all (safe to mark it down).
    pub fn is_connect(&self) -> bool {
        matches!(self, UpstreamError::Connect(_))
    }
}

/// The idle connections to one server; `B` is the request body type sent.
#[derive(Debug)]
pub struct ServerPool<B> {
    addr: String,
    connect_timeout: Duration,
    idle_timeout: Duration,
    idle: Mutex<VecDeque<(Sender<B>, Instant)>>,
}

impl<B> ServerPool<B> {
    /// A pool for `addr` (`host:port`).
    pub fn new(addr: String, connect_timeout: Duration, idle_timeout: Duration) -> Self {
        Self {
            addr,
            connect_timeout,
            idle_timeout,
            idle: Mutex::new(VecDeque::new()),
        }
    }

    fn take_idle(&self) -> Option<Sender<B>> {
        let mut idle = self.idle.lock();
        while let Some((sender, since)) = idle.pop_back() {
            if !sender.is_closed() && since.elapsed() < self.idle_timeout {
                return Some(sender);
            }
        }
        None
    }

    fn put_back(&self, sender: Sender<B>) {
        if sender.is_closed() {
            return;
        }
        let now = Instant::now();
        let mut idle = self.idle.lock();
        // The oldest sit at the front: drop the expired ones and keep the stack bounded.
        while let Some((_, since)) = idle.front() {
            if now.duration_since(*since) >= self.idle_timeout || idle.len() >= MAX_IDLE {
                idle.pop_front();
            } else {
                break;
            }
        }
        idle.push_back((sender, now));
    }
}

impl<B> ServerPool<B>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    /// Sends `req` (origin-form URI, Host set) on an idle connection or a new one. A request
    /// that an idle connection turned out unable to take is retried on another connection.
    pub async fn send(
        self: &Arc<Self>,
        mut req: Request<B>,
    ) -> Result<Response<PooledBody<B>>, UpstreamError> {
        loop {
            let (mut sender, reused) = match self.take_idle() {
                Some(s) => (s, true),
                None => (self.connect().await?, false),
            };
            if let Err(e) = sender.ready().await {
                if reused {
                    continue;
                }
                return Err(e.into());
            }
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    // An upgraded connection becomes the tunnel; it never returns to the pool.
                    let ret = (resp.status() != StatusCode::SWITCHING_PROTOCOLS)
                        .then(|| (sender, self.clone()));
                    return Ok(resp.map(|inner| PooledBody { inner, ret }));
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) if reused => req = unsent,
                    _ => return Err(e.into_error().into()),
                },
            }
        }
    }

    async fn connect(&self) -> Result<Sender<B>, UpstreamError> {
        let stream = match tokio::time::timeout(
            self.connect_timeout,
            TcpStream::connect(&self.addr),
        )
        .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(UpstreamError::Connect(e)),
            Err(_) => {
                return Err(UpstreamError::Connect(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "no connection within {:?} ({})",
                        self.connect_timeout,
                        crate::config::spec::UPSTREAM_CONNECT_TIMEOUT.env
                    ),
                )))
            }
        };
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }
}

/// Mattermost's response body; gives its connection back to the pool once read to the end.
#[derive(Debug)]
pub struct PooledBody<B> {
    inner: Incoming,
    ret: Option<(Sender<B>, Arc<ServerPool<B>>)>,
}

impl<B> Body for PooledBody<B>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let res = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = res {
            if let Some((sender, pool)) = self.ret.take() {
                pool.put_back(sender);
            }
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for PooledBody<B> {
    fn drop(&mut self) {
        // A body dropped unread leaves the connection mid-message: it cannot be reused.
        if let Some((sender, pool)) = self.ret.take() {
            if self.inner.is_end_stream() {
                pool.put_back(sender);
            }
        }
    }
}
