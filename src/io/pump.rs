//! Copying bytes both ways between two connections without holding a buffer while idle.
//!
//! `tokio::io::copy_bidirectional` keeps two 8 KiB buffers for the tunnel's whole life. A
//! Mattermost WebSocket is idle nearly all the time, and an edge holds thousands of them, so here
//! each direction reads into a buffer on the poll's stack and writes straight on; only bytes the
//! writer cannot take yet are kept, on the heap, until it can. An idle tunnel owns no buffer.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes read per poll; lives on the stack only during the poll.
const CHUNK: usize = 16 * 1024;

/// One direction of the copy.
#[derive(Debug, Default)]
struct Half {
    /// Bytes read but not yet written (only while the writer pushes back).
    pending: Vec<u8>,
    /// How much of `pending` was written.
    written: usize,
    /// Written since the last flush.
    need_flush: bool,
    /// The reader reached EOF and the writer was shut down.
    done: bool,
    /// The reader reached EOF; the writer still has to be shut down.
    eof: bool,
    /// Bytes written so far.
    moved: u64,
}

impl Half {
    fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        mut r: Pin<&mut R>,
        mut w: Pin<&mut W>,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + ?Sized,
        W: AsyncWrite + ?Sized,
    {
        loop {
            if self.done {
                return Poll::Ready(Ok(()));
            }
            // Drain what the writer could not take earlier.
            while self.written < self.pending.len() {
                let n = ready!(w.as_mut().poll_write(cx, &self.pending[self.written..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.written += n;
                self.moved += n as u64;
                self.need_flush = true;
            }
            if !self.pending.is_empty() {
                // Give the memory back: an idle tunnel holds no buffer.
                self.pending = Vec::new();
                self.written = 0;
            }
            if self.eof {
                ready!(w.as_mut().poll_shutdown(cx))?;
                self.done = true;
                continue;
            }
            let mut stack = [0u8; CHUNK];
            let mut buf = ReadBuf::new(&mut stack);
            match r.as_mut().poll_read(cx, &mut buf) {
                Poll::Pending => {
                    if self.need_flush {
                        ready!(w.as_mut().poll_flush(cx))?;
                        self.need_flush = false;
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
            let data = buf.filled();
            if data.is_empty() {
                self.eof = true;
                if self.need_flush {
                    ready!(w.as_mut().poll_flush(cx))?;
                    self.need_flush = false;
                }
                continue;
            }
            // Write as much as the writer takes now; keep only the rest.
            let mut off = 0;
            while off < data.len() {
                match w.as_mut().poll_write(cx, &data[off..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => {
                        off += n;
                        self.moved += n as u64;
                        self.need_flush = true;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {
                        self.pending = data[off..].to_vec();
                        self.written = 0;
                        return Poll::Pending;
                    }
                }
            }
        }
    }
}

/// Copies `a` -> `b` and `b` -> `a` until both directions reached EOF (each EOF is passed on as a
/// write shutdown), or an error occurs.
pub struct Pump<'a, A: ?Sized, B: ?Sized> {
    a: &'a mut A,
    b: &'a mut B,
    a_to_b: Half,
    b_to_a: Half,
    done_when_b_closes: bool,
}

impl<A: ?Sized, B: ?Sized> Pump<'_, A, B> {
    /// Ends the copy once `b` has closed and its EOF reached `a`, without waiting for `a` to
    /// close too (a WebSocket is over when the server closed it; a client that keeps its half
    /// open must not keep the tunnel).
    pub fn done_when_b_closes(mut self) -> Self {
        self.done_when_b_closes = true;
        self
    }

    /// Bytes copied so far: (`a` to `b`, `b` to `a`).
    pub fn transferred(&self) -> (u64, u64) {
        (self.a_to_b.moved, self.b_to_a.moved)
    }
}

/// Starts a [`Pump`] between two connections.
pub fn pump<'a, A, B>(a: &'a mut A, b: &'a mut B) -> Pump<'a, A, B>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    Pump {
        a,
        b,
        a_to_b: Half::default(),
        b_to_a: Half::default(),
        done_when_b_closes: false,
    }
}

impl<A, B> Future for Pump<'_, A, B>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let ab = this
            .a_to_b
            .poll_copy(cx, Pin::new(&mut *this.a), Pin::new(&mut *this.b))?;
        let ba = this
            .b_to_a
            .poll_copy(cx, Pin::new(&mut *this.b), Pin::new(&mut *this.a))?;
        if ba.is_ready() && (ab.is_ready() || this.done_when_b_closes) {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn copies_both_ways_through_back_pressure_and_passes_eof_on() {
        // Tiny duplex buffers force partial writes and the pending path.
        let (mut client, mut a) = duplex(64);
        let (mut b, mut server) = duplex(64);
        let task = tokio::spawn(async move {
            let mut p = pump(&mut a, &mut b);
            (&mut p).await.map(|()| p.transferred())
        });
        let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let expected = payload.clone();
        let writer = tokio::spawn(async move {
            client.write_all(&payload).await.expect("write");
            client.shutdown().await.expect("shutdown");
            let mut back = Vec::new();
            client.read_to_end(&mut back).await.expect("read back");
            back
        });
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.expect("read");
        assert_eq!(got, expected);
        server.write_all(b"reply").await.expect("reply");
        server.shutdown().await.expect("shutdown");
        assert_eq!(writer.await.expect("writer"), b"reply");
        let moved = task.await.expect("pump task").expect("pump ok");
        assert_eq!(moved, (200_000, 5), "bytes counted each way");
    }
}
