//! HTTPS HTTP/1.1 between requests. hyper serves the requests in sessions. A connection that
//! stays quiet after a request (no request open, no byte moving, no write blocked) for
//! [`PARK_AFTER`] is parked: its session ends, which frees hyper's state (its read buffer, 16
//! KiB once grown past the first byte; its 8 KiB write buffer; the request future's slot), and
//! the connection waits for the client's next byte holding only its TLS session. That byte
//! starts a new session. Bytes hyper had read ahead are given back to the new session first,
//! so pipelined or half-sent requests are not lost. A session that began that way parks only
//! after it has answered a request, so a client trickling a request head cannot renew the
//! client header timeout by pausing.
//!
//! The sessions run without hyper's upgrade support, which would close the connection at the
//! session's end. An upgrade request gets a [`Handover`](crate::io::upgrade::Handover)
//! instead, and the connection goes to the tunnel once the `101` is written.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::HttpService;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{interval_at, Instant, MissedTickBehavior};
use tracing::debug;

use super::woken::{SideWakes, Woken};
use super::{side, OpenGauge, Serve, Side};
use crate::body::BoxError;
use crate::io::rewind::Rewind;
use crate::io::tracked::{Activity, Expiry, Watch};
use crate::io::upgrade::{handover, HandoverSender};

/// How long an HTTPS HTTP/1.1 connection stays quiet after a request before it is parked.
pub const PARK_AFTER: Duration = Duration::from_secs(1);

/// How an upgrade request's connection gets to the tunnel.
#[derive(Debug, Default)]
pub(super) struct Handoff {
    sender: Mutex<Option<HandoverSender>>,
    switched: AtomicBool,
}

impl Handoff {
    /// Before the handler: an upgrade request (hyper marks those) gets a `Handover`.
    pub(super) fn prepare<B>(&self, req: &mut Request<B>) {
        if req.extensions().get::<OnUpgrade>().is_some() {
            let (tx, rx) = handover();
            req.extensions_mut().insert(rx);
            *self.sender.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
        }
    }

    /// After the handler: a `101` ends the session with the upgrade.
    pub(super) fn answered(&self, status: StatusCode) {
        if status == StatusCode::SWITCHING_PROTOCOLS {
            self.switched.store(true, Ordering::Relaxed);
        }
    }

    /// The session ended with a `101`: the connection goes to the tunnel (or is dropped when
    /// the tunnel is gone).
    fn hand_over<IO: AsyncRead + AsyncWrite + Send + Unpin + 'static>(&self, io: IO, rest: Bytes) {
        let sender = self.sender.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(tx) = sender {
            if tx.send(Box::new(Rewind::new(io, rest))).is_err() {
                debug!("websocket tunnel gone before the client's connection came");
            }
        }
    }
}

/// How a session ended.
enum End<P> {
    /// Quiet and idle: park the connection and go on.
    Park(P),
    /// Done (the client closed, asked to, or the edge did): close it.
    Close(P),
    /// Failed or stalled: drop it.
    Drop,
}

impl Serve {
    /// Serves an HTTPS HTTP/1.1 connection to its end, parked between requests.
    pub(super) async fn h1_parking<IO, S, B>(
        &self,
        mut io: IO,
        mut service: S,
        mut watch: Watch,
        activity: &Activity,
        handoff: &Handoff,
        peer: SocketAddr,
    ) where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
        S: HttpService<Incoming, ResBody = B> + Unpin,
        S::Error: Into<BoxError>,
        B: Body + 'static,
        B::Error: Into<BoxError>,
    {
        let mut ahead = Bytes::new();
        let mut first = true;
        loop {
            if ahead.is_empty() {
                match self.wait_for_bytes(&mut io, &mut watch, first, peer).await {
                    Some(bytes) => ahead = bytes,
                    None => return,
                }
            }
            first = false;
            let session_io = TokioIo::new(Rewind::keep_open(io, ahead));
            let session = self.h1.serve_connection(session_io, service);
            // Boxed: hyper's connection lives on the heap for the session only, so the parked
            // connection's task is not sized for it.
            let (park, parts) =
                match Box::pin(self.session(session, &mut watch, activity, peer)).await {
                    End::Park(parts) => (true, parts),
                    End::Close(parts) => (false, parts),
                    End::Drop => return,
                };
            let (mut inner, rest) = parts.io.into_inner().into_parts(parts.read_buf);
            if handoff.switched.swap(false, Ordering::Relaxed) {
                handoff.hand_over(inner, rest);
                return;
            }
            if !park {
                self.close(&mut inner).await;
                return;
            }
            debug!(%peer, ahead = rest.len(), "connection parked");
            (io, ahead, service) = (inner, rest, parts.service);
        }
    }

    /// Runs one hyper session until it ends, parks, or has to close.
    async fn session<I, S, B>(
        &self,
        mut conn: http1::Connection<I, S>,
        watch: &mut Watch,
        activity: &Activity,
        peer: SocketAddr,
    ) -> End<http1::Parts<I, S>>
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin,
        S: HttpService<Incoming, ResBody = B> + Unpin,
        S::Error: Into<BoxError>,
        B: Body + 'static,
        B::Error: Into<BoxError>,
    {
        let mut shutdown = self.shutdown.clone();
        let mut ticks = interval_at(Instant::now() + PARK_AFTER, PARK_AFTER);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let begun = activity.stream_events();
        let mut last = None;
        let mut closing = false;
        let mut wakes = SideWakes::default();
        loop {
            let side = std::pin::pin!(side(watch, &mut shutdown, !closing, Some(&mut ticks)));
            let side = Woken::new(wakes.round(), side);
            tokio::select! {
                biased;
                res = &mut conn => return match res {
                    Ok(()) => End::Close(conn.into_parts()),
                    Err(e) => {
                        debug!(%peer, error = %e, "connection ended with an error");
                        End::Drop
                    }
                },
                side = side => match side {
                    Side::Expired(Expiry::SendStalled) => {
                        debug!(%peer, timeout = ?self.send_timeout, "client took no response byte for the send timeout: connection closed");
                        return End::Drop;
                    }
                    Side::Expired(Expiry::Idle) if !closing => {
                        debug!(%peer, "idle connection closed");
                        closing = true;
                        Pin::new(&mut conn).graceful_shutdown();
                    }
                    Side::Expired(Expiry::Idle) => {}
                    Side::Shutdown => {
                        closing = true;
                        Pin::new(&mut conn).graceful_shutdown();
                    }
                    Side::Tick => {
                        let mark = activity.idle_mark();
                        let quiet = mark.is_some() && mark == last;
                        if quiet && mark.is_some_and(|m| m.stream_events() > begun) {
                            closing = true;
                            Pin::new(&mut conn).graceful_shutdown();
                            // Idle in hyper's eyes, the session ends at once. Otherwise hyper
                            // was still in a request: it finishes that one, and the
                            // connection closes.
                            let now = std::future::poll_fn(|cx| {
                                Poll::Ready(Pin::new(&mut conn).poll(cx))
                            })
                            .await;
                            match now {
                                Poll::Ready(Ok(())) => return End::Park(conn.into_parts()),
                                Poll::Ready(Err(e)) => {
                                    debug!(%peer, error = %e, "connection ended with an error");
                                    return End::Drop;
                                }
                                Poll::Pending => {}
                            }
                        }
                        last = mark;
                    }
                },
            }
        }
    }

    /// Waits, holding nothing but the connection, for the client's next byte. `None`: the
    /// connection is done (and closed, when that is owed to the client). The wait counts in
    /// the client header timeout (from its start) and in the keep-alive timeout (from the last
    /// byte moved), as hyper's wait for a request head does.
    async fn wait_for_bytes<IO>(
        &self,
        io: &mut IO,
        watch: &mut Watch,
        first: bool,
        peer: SocketAddr,
    ) -> Option<Bytes>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let _parked = match (&self.counters, first) {
            (Some(c), false) => Some(OpenGauge::new(&c.parked)),
            _ => None,
        };
        let mut shutdown = self.shutdown.clone();
        let deadline = Instant::now() + self.header_timeout;
        let mut byte = [0u8; 1];
        tokio::select! {
            read = io.read(&mut byte) => match read {
                Ok(1) => return Some(Bytes::copy_from_slice(&byte)),
                Ok(_) => {}
                Err(e) => {
                    debug!(%peer, error = %e, "connection ended with an error");
                    return None;
                }
            },
            expiry = watch.expired() => match expiry {
                Expiry::Idle => debug!(%peer, "idle connection closed"),
                Expiry::SendStalled => return None,
            },
            _ = shutdown.requested() => {}
            _ = tokio::time::sleep_until(deadline) => {
                debug!(%peer, "no request within the client header timeout: connection closed");
            }
        }
        self.close(io).await;
        None
    }

    /// Closes the connection: TLS close_notify and FIN, for at most the send timeout.
    async fn close<IO: AsyncWrite + Unpin>(&self, io: &mut IO) {
        let _ = tokio::time::timeout(self.send_timeout, io.shutdown()).await;
    }
}
