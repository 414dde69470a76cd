//! The loop that runs a [`Handler`] over a connection: incoming messages
//! to its callbacks, the session's outbound queue to the socket.

use duplex_proto::Message;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::handler::Handler;
use crate::queue::{QueuedClose, SendQueue};
use crate::session::Session;
use crate::websocket::WebSocket;

/// Where the connection is in its close.
#[derive(Default)]
struct Closing {
    /// Set when a close is decided; the peer must be done by then.
    deadline: Option<Instant>,
    /// Whether the close frame was handed to the engine.
    fed: bool,
}

impl Closing {
    /// A close was decided (now, unless earlier): its deadline, the
    /// queue's close timeout from now.
    fn decide(&mut self, queue: &SendQueue) -> Instant {
        *self
            .deadline
            .get_or_insert_with(|| Instant::now() + queue.close_timeout())
    }

    /// Hands the close to the engine: after what was fed, or ahead of what
    /// is not written yet (counting the messages it overtakes as dropped).
    fn feed<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        ws: &mut WebSocket<S>,
        queue: &SendQueue,
        close: QueuedClose,
    ) {
        self.decide(queue);
        self.fed = true;
        if close.ahead {
            queue.count_dropped(ws.close_now(close.frame));
        } else {
            let _ = ws.feed(Message::Close(Some(close.frame)));
        }
    }
}

/// Writes what is queued. A write that makes no progress is given up by
/// the I/O loop after the connection's write timeout
/// ([`Timeouts::write`](crate::Timeouts::write)); this gives up too once a
/// close is decided (before or during the write) at the close deadline,
/// or when the connection is abandoned. A
/// close that replaces the queue (the slow-consumer close) is handed to the
/// engine as soon as it is decided, to overtake what this write has not
/// started.
async fn write<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocket<S>,
    queue: &SendQueue,
    closing: &mut Closing,
) -> Result<()> {
    loop {
        let deadline = closing.deadline;
        tokio::select! {
            biased;
            written = ws.flush() => return written,
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                return Err(Error::Timeout("the peer stopped reading"));
            }
            _ = queue.abandoned() => return Err(Error::Timeout("the shutdown grace ran out")),
            _ = queue.close_notified(), if closing.deadline.is_none() => {
                closing.decide(queue);
                if let Some(frame) = queue.close_ahead() {
                    closing.feed(ws, queue, QueuedClose { frame, ahead: true });
                }
            }
        }
    }
}

/// Runs a handler over a connection until it is over.
///
/// The outbound queue is served first (`biased`), and the task yields to
/// the scheduler as it handles incoming messages, so that a burst relayed
/// by one connection cannot starve the others' writers. Writes are
/// time-bounded by the write timeout; once a close is queued (by the application, the slow
/// consumer policy or a shutdown), the peer has the close timeout (a
/// server's shutdown grace, if longer) to take what is queued and answer. At the end, whatever was accepted
/// and not written is counted in
/// [`QueueStats::unsent`](crate::QueueStats::unsent).
pub(crate) async fn drive<S, H>(mut ws: WebSocket<S>, mut handler: H, session: Session)
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: Handler,
{
    handler.on_open(&session).await;
    let queue = session.queue();
    let mut batch = Vec::new();
    let mut closing = Closing::default();
    loop {
        let deadline = closing.deadline.unwrap_or_else(Instant::now);
        tokio::select! {
            biased;
            _ = queue.notified() => {
                if queue.is_abandoned() {
                    break;
                }
                if closing.fed {
                    // Nothing more goes out: the close is on its way.
                    continue;
                }
                let close = queue.drain(&mut batch);
                // The engine refuses messages once it is closing (a close
                // from outside): those are never sent.
                let mut refused = 0;
                for message in batch.drain(..) {
                    if refused > 0 || ws.feed(message).is_err() {
                        refused += 1;
                    }
                }
                queue.count_unsent(refused);
                if let Some(close) = close {
                    closing.feed(&mut ws, queue, close);
                }
                if let Err(error) = write(&mut ws, queue, &mut closing).await {
                    handler.on_error(&session, &error).await;
                    break;
                }
            }
            _ = tokio::time::sleep_until(deadline), if closing.deadline.is_some() => break,
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
    // Nothing more will be sent: refuse further messages, and count what
    // was accepted and not written.
    queue.finish(ws.unsent_messages());
    let frame = ws.close_frame();
    let reason = frame.as_ref().map_or("", |f| f.reason.as_str());
    handler.on_close(&session, ws.close_code(), reason).await;
    session.leave_all_rooms();
}
