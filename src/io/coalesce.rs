//! Write coalescing for HTTP/2 client connections.
//!
//! The h2 crate flushes its frame buffer each time it queues a DATA frame of 256 bytes or more,
//! so with many streams on a connection every response becomes its own TLS record and its own
//! `writev` (measured: one per response in bench (c)). This wrapper takes the writes into a
//! buffer and defers the flush to the end of the scheduler's turn: the wake it asks for comes
//! once every other ready task has run and the I/O driver has been polled (tokio's `yield_now`
//! wake). Until that wake, flushes and reads leave the buffer alone, so every stream that
//! completes during the turn, those whose upstream answers arrive in it included, shares one
//! record and one system call. Then the first read or flush writes it all; past the high-water
//! mark a write goes through at once. Nothing is held back longer than one turn of the scheduler
//! (in tokio, at most 61 task polls).

use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::wake_flag::WakeFlag;

/// Past this many buffered bytes, writes go through before more are taken.
const HIGH_WATER: usize = 64 * 1024;

/// An I/O object whose flushes wait for the end of the scheduler's turn so that writes coalesce.
#[derive(Debug)]
pub struct Coalesce<T> {
    inner: T,
    buf: Vec<u8>,
    /// A flush was promised for the end of the scheduler's turn.
    deferred: bool,
    /// Set when that turn has ended.
    turn: WakeFlag,
}

impl<T> Coalesce<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            deferred: false,
            turn: WakeFlag::default(),
        }
    }

    /// Promises a flush at the end of the scheduler's turn and asks for the wake then.
    fn promise(&mut self, cx: &mut Context<'_>) {
        self.deferred = true;
        self.turn.take();
        self.turn.pass_to(cx);
        // The first poll of `yield_now` hands the waker to the scheduler's deferred list (or,
        // outside a runtime, wakes it at once) and returns Pending; dropping it cancels nothing.
        let mut turn_cx = Context::from_waker(self.turn.waker());
        let first = pin!(tokio::task::yield_now()).poll(&mut turn_cx);
        debug_assert!(first.is_pending());
    }

    /// Whether the buffered bytes are due: promised and the turn over, or never promised.
    fn due(&self) -> bool {
        if self.deferred {
            self.turn.fired()
        } else {
            !self.buf.is_empty()
        }
    }
}

impl<T: AsyncWrite + Unpin> Coalesce<T> {
    /// Writes out everything buffered and flushes the inner I/O.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut off = 0;
        while off < self.buf.len() {
            match Pin::new(&mut self.inner).poll_write(cx, &self.buf[off..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => off += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    self.buf.drain(..off);
                    return Poll::Pending;
                }
            }
        }
        self.buf.clear();
        if self.buf.capacity() > HIGH_WATER {
            // Do not keep a large buffer on an idle connection.
            self.buf = Vec::new();
        }
        ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
        self.deferred = false;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for Coalesce<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.due() {
            // The promised flush; if the socket is full, reading goes on and the write waker
            // brings the task back.
            if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
                return Poll::Ready(Err(e));
            }
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Coalesce<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.buf.len() >= HIGH_WATER {
            ready!(this.poll_drain(cx))?;
        }
        this.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.buf.len() >= HIGH_WATER {
            ready!(this.poll_drain(cx))?;
        }
        let mut n = 0;
        for b in bufs {
            this.buf.extend_from_slice(b);
            n += b.len();
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.buf.is_empty() && !this.deferred {
            return Pin::new(&mut this.inner).poll_flush(cx);
        }
        if !this.deferred {
            this.promise(cx);
            return Poll::Ready(Ok(()));
        }
        if !this.due() {
            // Promised already; the turn's wake brings the task back.
            return Poll::Ready(Ok(()));
        }
        this.poll_drain(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn flushes_wait_for_the_end_of_the_schedulers_turn() {
        let (a, mut b) = duplex(1 << 20);
        let mut c = Coalesce::new(a);
        c.write_all(b"one ").await.expect("write");
        c.flush().await.expect("deferred flush");
        c.write_all(b"two").await.expect("write");
        c.flush().await.expect("flush within the same turn");
        // Nothing has reached the peer yet: both writes wait in one buffer.
        let mut probe = [0u8; 16];
        let early = tokio::time::timeout(std::time::Duration::ZERO, b.read(&mut probe)).await;
        assert!(early.is_err(), "bytes went out before the turn ended");
        // The scheduler runs out of tasks, polls its driver and wakes what it deferred.
        tokio::task::yield_now().await;
        c.flush().await.expect("flush after the turn writes");
        let mut got = vec![0u8; 7];
        b.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"one two");
    }

    #[tokio::test]
    async fn the_high_water_mark_writes_at_once() {
        let (a, mut b) = duplex(4 * HIGH_WATER);
        let mut c = Coalesce::new(a);
        let block = vec![7u8; HIGH_WATER];
        c.write_all(&block).await.expect("write");
        c.flush().await.expect("deferred flush");
        c.write_all(b"x")
            .await
            .expect("a write past the mark drains first");
        let mut got = vec![0u8; HIGH_WATER];
        b.read_exact(&mut got)
            .await
            .expect("the first block arrived within the turn");
        assert_eq!(got, block);
    }

    #[tokio::test]
    async fn reading_delivers_what_was_deferred() {
        let (a, mut b) = duplex(1 << 20);
        let mut c = Coalesce::new(a);
        c.write_all(b"ping").await.expect("write");
        c.flush().await.expect("deferred flush");
        let peer = tokio::spawn(async move {
            let mut got = [0u8; 4];
            b.read_exact(&mut got).await.expect("read");
            b.write_all(b"pong").await.expect("write");
            got
        });
        let mut reply = [0u8; 4];
        c.read_exact(&mut reply).await.expect("read");
        assert_eq!(&reply, b"pong");
        assert_eq!(&peer.await.expect("peer"), b"ping");
    }
}
