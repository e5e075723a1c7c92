//! Watching connections and tunnels for two things: no traffic either way for the idle timeout,
//! and a client that stopped reading (no byte could be written to it for the send timeout).
//!
//! The I/O wrapper [`Tracked`] bumps relaxed atomic counters as bytes move and marks when a
//! write to the client could not proceed; no clock is read on the data path. The [`Watch`] ticks
//! eight times per timeout and fires after eight quiet ticks, so a quiet or stalled connection
//! is closed between 1 and 1.125 times its timeout.
//!
//! An HTTP/2 connection is watched by its streams instead ([`Watch::by_streams`]): it is quiet
//! while no request is open and none started or finished. Its bytes cannot tell: the edge's
//! keep-alive PINGs and the client's answers are bytes too, and would keep an idle connection
//! open for ever.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{interval_at, Instant, Interval, MissedTickBehavior};

const TICKS: u32 = 8;

/// What the wrappers of one connection (or both sides of a tunnel) record.
#[derive(Debug, Default)]
pub struct Activity {
    /// Reads and writes that moved bytes, either side.
    moved: AtomicU64,
    /// Writes to the client that moved bytes.
    written: AtomicU64,
    /// The last write (or flush) to the client could not proceed.
    write_blocked: AtomicBool,
    /// HTTP/2: requests started plus responses finished.
    stream_events: AtomicU64,
    /// HTTP/2: requests whose response is not finished.
    streams_open: AtomicU64,
}

impl Activity {
    /// Marks a request started on the connection; dropping the guard marks its response
    /// finished (for [`Watch::by_streams`] and [`Activity::idle_mark`]).
    pub fn stream(self: &Arc<Self>) -> StreamGuard {
        self.stream_events.fetch_add(1, Ordering::Relaxed);
        self.streams_open.fetch_add(1, Ordering::Relaxed);
        StreamGuard(self.clone())
    }
}

/// The traffic a connection had seen at one moment; two equal marks mean it stayed quiet
/// between them (see [`Activity::idle_mark`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    moved: u64,
    stream_events: u64,
}

impl Mark {
    /// Requests started plus responses finished (counted by [`Activity::stream`]).
    pub fn stream_events(&self) -> u64 {
        self.stream_events
    }
}

impl Activity {
    /// Requests started plus responses finished so far.
    pub fn stream_events(&self) -> u64 {
        self.stream_events.load(Ordering::Relaxed)
    }

    /// A mark of the traffic so far; `None` while a request is open or the last write to the
    /// client could not proceed.
    pub fn idle_mark(&self) -> Option<Mark> {
        if self.streams_open.load(Ordering::Relaxed) > 0
            || self.write_blocked.load(Ordering::Relaxed)
        {
            return None;
        }
        Some(Mark {
            moved: self.moved.load(Ordering::Relaxed),
            stream_events: self.stream_events.load(Ordering::Relaxed),
        })
    }
}

/// A request in progress on a connection watched by its streams; see [`Activity::stream`].
#[derive(Debug)]
pub struct StreamGuard(Arc<Activity>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.streams_open.fetch_sub(1, Ordering::Relaxed);
        self.0.stream_events.fetch_add(1, Ordering::Relaxed);
    }
}

/// Which side of the edge an I/O object faces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client: its writes are the ones the send timeout watches.
    Client,
    /// Mattermost: only counts for idleness.
    Upstream,
}

/// I/O that records its traffic into a shared [`Activity`].
#[derive(Debug)]
pub struct Tracked<T> {
    inner: T,
    activity: Arc<Activity>,
    side: Side,
}

impl<T> Tracked<T> {
    /// Wraps the client side of a connection; returns it with the activity a [`Watch`] reads.
    pub fn client(inner: T) -> (Self, Arc<Activity>) {
        let activity = Arc::new(Activity::default());
        let tracked = Self {
            inner,
            activity: activity.clone(),
            side: Side::Client,
        };
        (tracked, activity)
    }

    /// Wraps another I/O object recording into an existing activity (the upstream side of a
    /// tunnel shares the client side's).
    pub fn with_activity(inner: T, activity: Arc<Activity>, side: Side) -> Self {
        Self {
            inner,
            activity,
            side,
        }
    }

    /// The wrapped I/O.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    fn wrote<R>(&self, res: &Poll<io::Result<R>>, moved: impl Fn(&R) -> bool) {
        match res {
            Poll::Ready(Ok(r)) if moved(r) => {
                self.activity.moved.fetch_add(1, Ordering::Relaxed);
                if self.side == Side::Client {
                    self.activity.written.fetch_add(1, Ordering::Relaxed);
                    if self.activity.write_blocked.load(Ordering::Relaxed) {
                        self.activity.write_blocked.store(false, Ordering::Relaxed);
                    }
                }
            }
            Poll::Pending if self.side == Side::Client => {
                self.activity.write_blocked.store(true, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() != before {
            this.activity.moved.fetch_add(1, Ordering::Relaxed);
        }
        res
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.wrote(&res, |&n| n > 0);
        res
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.wrote(&res, |&n| n > 0);
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_flush(cx);
        // A flush moves no bytes by itself; only its blocking matters.
        this.wrote(&res, |_| false);
        res
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Why a [`Watch`] fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// No byte moved either way for the idle timeout.
    Idle,
    /// Writes to the client have been blocked, with no byte written, for the send timeout.
    SendStalled,
}

/// Fires when an [`Activity`] has been idle, or stalled on writing to the client, too long.
#[derive(Debug)]
pub struct Watch {
    activity: Arc<Activity>,
    ticks: Interval,
    idle_ticks: u64,
    send_ticks: u64,
    last_moved: u64,
    quiet: u64,
    last_written: u64,
    stalled: u64,
    /// Quiet means no stream open or started/finished, not no byte moved.
    by_streams: bool,
    last_stream_events: u64,
}

impl Watch {
    /// Watches `activity` for `idle` (no traffic) and `send` (client not reading) timeouts.
    pub fn new(activity: Arc<Activity>, idle: Duration, send: Duration) -> Self {
        Self::waking_for(activity, idle, send, idle)
    }

    /// Like [`Watch::new`], and while it is polled it also wakes its task at least eight times
    /// per `wake` (for deadlines that are only checked when the task runs).
    pub fn waking_for(
        activity: Arc<Activity>,
        idle: Duration,
        send: Duration,
        wake: Duration,
    ) -> Self {
        let period = (idle.min(send).min(wake) / TICKS).max(Duration::from_millis(1));
        let ticks_of = |d: Duration| {
            (d.as_nanos() / period.as_nanos().max(1))
                .try_into()
                .unwrap_or(u64::MAX)
                .max(1)
        };
        let mut ticks = interval_at(Instant::now() + period, period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            last_moved: activity.moved.load(Ordering::Relaxed),
            last_written: activity.written.load(Ordering::Relaxed),
            activity,
            ticks,
            idle_ticks: ticks_of(idle),
            send_ticks: ticks_of(send),
            quiet: 0,
            stalled: 0,
            by_streams: false,
            last_stream_events: 0,
        }
    }

    /// Counts the connection idle while it has no stream open and none started or finished,
    /// whatever bytes move (HTTP/2: pings and their answers).
    pub fn by_streams(mut self) -> Self {
        self.by_streams = true;
        self.last_stream_events = self.activity.stream_events.load(Ordering::Relaxed);
        self
    }

    /// Resolves when the connection has been idle or stalled for its timeout. Cancel-safe.
    pub async fn expired(&mut self) -> Expiry {
        loop {
            self.ticks.tick().await;
            let moved = self.activity.moved.load(Ordering::Relaxed);
            let written = self.activity.written.load(Ordering::Relaxed);
            let busy = if self.by_streams {
                let events = self.activity.stream_events.load(Ordering::Relaxed);
                let busy = events != self.last_stream_events
                    || self.activity.streams_open.load(Ordering::Relaxed) > 0;
                self.last_stream_events = events;
                busy
            } else {
                moved != self.last_moved
            };
            self.last_moved = moved;
            if busy {
                self.quiet = 0;
            } else {
                self.quiet += 1;
            }
            if written == self.last_written && self.activity.write_blocked.load(Ordering::Relaxed) {
                self.stalled += 1;
            } else {
                self.last_written = written;
                self.stalled = 0;
            }
            if self.stalled >= self.send_ticks {
                return Expiry::SendStalled;
            }
            if self.quiet >= self.idle_ticks {
                return Expiry::Idle;
            }
        }
    }
}
