//! The loop that runs a [`Handler`] over a connection: incoming messages
//! to its callbacks, the session's outbound queue to the socket.

use duplex_proto::{CloseCode, CloseFrame, Message};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::handler::Handler;
use crate::queue::SendQueue;
use crate::session::Session;
use crate::websocket::{WebSocket, DEFAULT_CLOSE_TIMEOUT};

/// Writes what is queued. A write that makes no progress is given up by
/// the I/O loop after the connection's write timeout
/// ([`Timeouts::write`](crate::Timeouts::write)); once a close is decided
/// (before or during the write), the peer has until the close deadline.
async fn write<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocket<S>,
    queue: &SendQueue,
    close_deadline: &mut Option<Instant>,
) -> Result<()> {
    loop {
        let deadline = *close_deadline;
        tokio::select! {
            biased;
            written = ws.flush() => return written,
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                return Err(Error::Timeout("the peer stopped reading"));
            }
            _ = queue.close_notified(), if deadline.is_none() => {
                *close_deadline = Some(Instant::now() + DEFAULT_CLOSE_TIMEOUT);
            }
        }
    }
}

/// Runs a handler over a connection until it is over.
///
/// The outbound queue is served first (`biased`), and the task yields to
/// the scheduler as it handles incoming messages, so that a burst relayed
/// by one connection cannot starve the others' writers. Writes are
/// time-bounded by the write timeout; once a close is queued (by the
/// application or the slow consumer policy), the peer has the close
/// timeout to answer.
pub(crate) async fn drive<S, H>(mut ws: WebSocket<S>, mut handler: H, session: Session)
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: Handler,
{
    handler.on_open(&session).await;
    let queue = session.queue();
    let mut batch = Vec::new();
    // Set when a close is decided; the peer must be done by then.
    let mut close_deadline: Option<Instant> = None;
    let mut close_fed = false;
    loop {
        let deadline = close_deadline.unwrap_or_else(Instant::now);
        tokio::select! {
            biased;
            _ = queue.notified(), if !close_fed => {
                let close = queue.drain(&mut batch);
                for message in batch.drain(..) {
                    if ws.feed(message).is_err() {
                        break;
                    }
                }
                if let Some(frame) = close {
                    close_deadline.get_or_insert_with(|| Instant::now() + DEFAULT_CLOSE_TIMEOUT);
                    close_fed = true;
                    let _ = ws.feed(Message::Close(Some(frame)));
                }
                if let Err(error) = write(&mut ws, queue, &mut close_deadline).await {
                    handler.on_error(&session, &error).await;
                    break;
                }
            }
            _ = tokio::time::sleep_until(deadline), if close_deadline.is_some() => break,
            item = ws.recv() => match item {
                Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                    handler.on_message(&session, message).await;
                    tokio::task::consume_budget().await;
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => handler.on_error(&session, &error).await,
                None => break,
            },
        }
    }
    // Nothing more will be sent: refuse further messages.
    queue.close(CloseFrame::new(CloseCode::Normal, ""));
    let frame = ws.close_frame();
    let reason = frame.as_ref().map_or("", |f| f.reason.as_str());
    handler.on_close(&session, ws.close_code(), reason).await;
    session.leave_all_rooms();
}
