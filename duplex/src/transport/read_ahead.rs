//! [`ReadAhead`]: reads a socket in large chunks for a layer above that
//! asks for small ones.
//!
//! rustls pulls ciphertext 4 KiB at a time, so without this a 16 KiB
//! message over TLS costs four or five `recv` calls; with it, one. The
//! buffer is held only while data flows: it goes back to a small
//! per-thread pool as soon as it is drained and the socket has nothing
//! more, so idle connections pay nothing for it.

use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::buffer_pool::{self, READ_AHEAD_SIZE as CHUNK};

/// A stream whose reads are served from a read-ahead buffer; writes pass
/// straight through.
#[derive(Debug)]
pub struct ReadAhead<S> {
    inner: S,
    buffer: BytesMut,
}

impl<S> ReadAhead<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> ReadAhead<S> {
        ReadAhead {
            inner,
            buffer: BytesMut::new(),
        }
    }

    /// The stream underneath.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadAhead<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.buffer.is_empty() {
            if out.remaining() >= CHUNK {
                // A large read gains nothing from the buffer.
                return Pin::new(&mut this.inner).poll_read(cx, out);
            }
            // Drained: read into the whole buffer again.
            if !this.buffer.try_reclaim(CHUNK) {
                this.buffer = buffer_pool::take_read_ahead();
            }
            match tokio_util::io::poll_read_buf(Pin::new(&mut this.inner), cx, &mut this.buffer) {
                Poll::Pending => {
                    // Idle: hold no buffer while waiting.
                    buffer_pool::give_read_ahead(std::mem::take(&mut this.buffer));
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(0)) => {
                    buffer_pool::give_read_ahead(std::mem::take(&mut this.buffer));
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(Ok(_)) => {}
            }
        }
        let n = out.remaining().min(this.buffer.len());
        out.put_slice(&this.buffer[..n]);
        this.buffer.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadAhead<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn small_reads_are_served_from_one_large_read() {
        let (mut writer, reader) = tokio::io::duplex(1 << 20);
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        writer.write_all(&data).await.unwrap();
        drop(writer);
        let mut reader = ReadAhead::new(reader);
        let mut got = Vec::new();
        let mut small = [0u8; 4096];
        loop {
            let n = reader.read(&mut small).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&small[..n]);
        }
        assert_eq!(got, data);
        assert_eq!(reader.buffer.capacity(), 0, "no buffer kept at the end");
    }
}
