//! The two halves of a split [`WebSocket`]: [`WsReader`] and [`WsWriter`].
//!
//! Both share the engine behind one short-held lock (never held across an
//! `.await`), and both are woken when the socket becomes writable, so the
//! pongs and close replies the reader queues never steal the writer's
//! wake-up. [`WebSocket::reunite`] puts them back together.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use duplex_proto::{CloseCode, CloseFrame, Message};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::{Error, Result};
use crate::io::{feed, poll_close, poll_flush, poll_ready, poll_recv, Inner};
use crate::signals::Link;
use crate::websocket::WebSocket;

/// The engine of a split connection, shared by its two halves.
struct Shared<S> {
    inner: Mutex<Inner<S>>,
    link: Link,
    protocol: Option<String>,
}

impl<S> Shared<S> {
    /// Runs `f` on the engine under the lock.
    fn with<T>(&self, f: impl FnOnce(&mut Inner<S>, &Link) -> T) -> T {
        // A panic while holding the lock leaves the engine in a consistent
        // state between calls, so a poisoned lock is still usable.
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut inner, &self.link)
    }
}

/// Splitting lives here, beside the halves it makes.
impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Splits into a reader and a writer that can be used from different
    /// tasks.
    ///
    /// ```no_run
    /// # async fn example() -> duplex::Result<()> {
    /// let ws = duplex::connect("ws://127.0.0.1:8080/echo").await?;
    /// let (mut reader, mut writer) = ws.split();
    /// tokio::spawn(async move {
    ///     for i in 0..3 {
    ///         let _ = writer.send(format!("tick {i}")).await;
    ///     }
    ///     let _ = writer.close(None).await;
    /// });
    /// while let Some(message) = reader.recv().await {
    ///     println!("{:?}", message?);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn split(self) -> (WsReader<S>, WsWriter<S>) {
        let shared = Arc::new(Shared {
            inner: Mutex::new(*self.inner),
            link: self.link,
            protocol: self.protocol,
        });
        (
            WsReader {
                shared: shared.clone(),
            },
            WsWriter { shared },
        )
    }

    /// Puts a split connection back together; `None` if the halves are of
    /// different connections.
    pub fn reunite(reader: WsReader<S>, writer: WsWriter<S>) -> Option<WebSocket<S>> {
        if !Arc::ptr_eq(&reader.shared, &writer.shared) {
            return None;
        }
        drop(reader);
        let shared = Arc::try_unwrap(writer.shared).ok()?;
        Some(WebSocket {
            inner: Box::new(shared.inner.into_inner().unwrap_or_else(|p| p.into_inner())),
            link: shared.link,
            protocol: shared.protocol,
        })
    }
}

/// The receiving half of a split [`WebSocket`].
pub struct WsReader<S> {
    shared: Arc<Shared<S>>,
}

impl<S> std::fmt::Debug for WsReader<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsReader").finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsReader<S> {
    /// Receives the next message, like [`WebSocket::recv`]. Cancellation-safe.
    pub async fn recv(&mut self) -> Option<Result<Message>> {
        poll_fn(|cx| self.shared.with(|inner, link| poll_recv(inner, link, cx))).await
    }

    /// The subprotocol agreed in the handshake.
    pub fn protocol(&self) -> Option<&str> {
        self.shared.protocol.as_deref()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WsReader<S> {
    type Item = Result<Message>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.shared.with(|inner, link| poll_recv(inner, link, cx))
    }
}

/// The sending half of a split [`WebSocket`].
pub struct WsWriter<S> {
    shared: Arc<Shared<S>>,
}

impl<S> std::fmt::Debug for WsWriter<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsWriter").finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsWriter<S> {
    /// Queues a message and writes everything queued.
    pub async fn send(&mut self, message: impl Into<Message>) -> Result<()> {
        self.feed(message)?;
        self.flush().await
    }

    /// Queues a message without writing it.
    pub fn feed(&mut self, message: impl Into<Message>) -> Result<()> {
        let message = message.into();
        self.shared.with(|inner, _| feed(inner, message))
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<()> {
        poll_fn(|cx| self.shared.with(|inner, link| poll_flush(inner, link, cx))).await
    }

    /// Sends a close frame (1000 if `None`); the reader sees the peer's
    /// answer and then the end of the stream.
    pub async fn close(&mut self, frame: Option<CloseFrame>) -> Result<()> {
        let frame = frame.unwrap_or_else(|| CloseFrame::new(CloseCode::Normal, ""));
        self.feed(Message::Close(Some(frame)))?;
        self.flush().await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WsWriter<S> {
    type Error = Error;
    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.shared.with(|inner, link| poll_ready(inner, link, cx))
    }
    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<()> {
        self.shared.with(|inner, _| feed(inner, item))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.shared.with(|inner, link| poll_flush(inner, link, cx))
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.shared.with(|inner, link| poll_close(inner, link, cx))
    }
}
