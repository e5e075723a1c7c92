//! I/O that first gives back bytes already read from it: what hyper had buffered when an
//! HTTP/1.1 session ended (the start of the next request, or a WebSocket's first frames).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `inner`, with `prefix` read before anything `inner` gives.
#[derive(Debug)]
pub struct Rewind<T> {
    prefix: Bytes,
    inner: T,
    /// `shutdown` only flushes: the owner closes `inner` itself, or goes on with it.
    keep_open: bool,
}

impl<T> Rewind<T> {
    /// Reads `prefix` first, then `inner`.
    pub fn new(inner: T, prefix: Bytes) -> Self {
        Self {
            prefix,
            inner,
            keep_open: false,
        }
    }

    /// Like [`Rewind::new`], but shutting it down only flushes: `inner` stays open for whoever
    /// takes it back with [`Rewind::into_parts`].
    pub fn keep_open(inner: T, prefix: Bytes) -> Self {
        Self {
            prefix,
            inner,
            keep_open: true,
        }
    }

    /// The inner I/O, and what its owner had buffered (`more`) followed by what of the prefix
    /// it had not read yet. The bytes are copied out, so that `more`'s buffer (hyper's whole
    /// read buffer, even when nothing is left in it) is freed.
    pub fn into_parts(self, more: Bytes) -> (T, Bytes) {
        let rest = match (more.is_empty(), self.prefix.is_empty()) {
            (true, true) => Bytes::new(),
            (false, true) => Bytes::copy_from_slice(&more),
            (true, false) => self.prefix,
            (false, false) => {
                let mut all = Vec::with_capacity(more.len() + self.prefix.len());
                all.extend_from_slice(&more);
                all.extend_from_slice(&self.prefix);
                Bytes::from(all)
            }
        };
        (self.inner, rest)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.prefix.is_empty() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let n = this.prefix.len().min(buf.remaining());
        buf.put_slice(&this.prefix[..n]);
        this.prefix.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.keep_open {
            Pin::new(&mut this.inner).poll_flush(cx)
        } else {
            Pin::new(&mut this.inner).poll_shutdown(cx)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn prefix_then_inner() {
        let inner: &[u8] = b" world";
        let mut r = Rewind::new(inner, Bytes::from_static(b"hello"));
        let mut out = String::new();
        r.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "hello world");
    }

    #[tokio::test]
    async fn unread_prefix_follows_what_was_buffered() {
        let inner: &[u8] = b"";
        let mut r = Rewind::new(inner, Bytes::from_static(b"abcdef"));
        let mut two = [0u8; 2];
        r.read_exact(&mut two).await.unwrap();
        let (_, rest) = r.into_parts(Bytes::copy_from_slice(&two));
        assert_eq!(&rest[..], b"abcdef");
        let r = Rewind::new(inner, Bytes::new());
        assert_eq!(&r.into_parts(Bytes::from_static(b"x")).1[..], b"x");
    }
}
