//! Idle detection for connections and tunnels: a traffic counter bumped by the I/O wrapper and a
//! watch that fires once no byte has moved either way for the timeout.
//!
//! The counter costs one relaxed atomic add per read or write that moved bytes; no clock is read
//! on the data path. The watch ticks eight times per timeout and fires after eight quiet ticks,
//! so a quiet connection is closed between 1 and 1.125 times the timeout.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{interval_at, Instant, Interval, MissedTickBehavior};

const TICKS: u32 = 8;

/// I/O that counts its traffic into a shared counter.
#[derive(Debug)]
pub struct Tracked<T> {
    inner: T,
    traffic: Arc<AtomicU64>,
}

impl<T> Tracked<T> {
    /// Wraps `inner`; returns it with the counter a [`Watch`] reads.
    pub fn new(inner: T) -> (Self, Arc<AtomicU64>) {
        let traffic = Arc::new(AtomicU64::new(0));
        (
            Self {
                inner,
                traffic: traffic.clone(),
            },
            traffic,
        )
    }

    /// Wraps `inner`, counting into an existing counter (both halves of a tunnel share one).
    pub fn with_counter(inner: T, traffic: Arc<AtomicU64>) -> Self {
        Self { inner, traffic }
    }

    /// The wrapped I/O.
    pub fn get_ref(&self) -> &T {
        &self.inner
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
            this.traffic.fetch_add(1, Ordering::Relaxed);
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
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            this.traffic.fetch_add(1, Ordering::Relaxed);
        }
        res
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            this.traffic.fetch_add(1, Ordering::Relaxed);
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Fires when a counter has not moved for the timeout.
#[derive(Debug)]
pub struct Watch {
    traffic: Arc<AtomicU64>,
    last: u64,
    quiet: u32,
    ticks: Interval,
}

impl Watch {
    /// Watches `traffic` with `timeout`.
    pub fn new(traffic: Arc<AtomicU64>, timeout: Duration) -> Self {
        let period = (timeout / TICKS).max(Duration::from_millis(1));
        let mut ticks = interval_at(Instant::now() + period, period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            last: traffic.load(Ordering::Relaxed),
            traffic,
            quiet: 0,
            ticks,
        }
    }

    /// Resolves once the counter stayed still for the whole timeout. Cancel-safe.
    pub async fn expired(&mut self) {
        loop {
            self.ticks.tick().await;
            let now = self.traffic.load(Ordering::Relaxed);
            if now == self.last {
                self.quiet += 1;
                if self.quiet >= TICKS {
                    return;
                }
            } else {
                self.last = now;
                self.quiet = 0;
            }
        }
    }
}
