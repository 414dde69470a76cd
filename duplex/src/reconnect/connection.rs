//! One connection of a reconnecting client: writes the backlog, asks the
//! server to confirm it, hands received messages on, and closes when told.
//!
//! Confirmation is WebSocket's own: after writing, the client sends a ping
//! whose payload carries the sequence number after the last message
//! written. A server answers a ping once it has read every frame before it
//! (RFC 6455 §5.5.2; its engine parses in order, handing each message to
//! the application first), so the pong confirms them all. The close
//! handshake confirms the rest: the server answers our close after reading
//! what came before it.

use std::time::Duration;

use bytes::Bytes;
use duplex_proto::{CloseCode, CloseFrame, Message};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::backlog::Backlog;
use super::ClientEvent;
use crate::client::ClientSocket;

/// The start of a confirmation ping's payload; the sequence number
/// follows (8 bytes, big-endian).
const CONFIRM_PREFIX: &[u8] = b"duplex-confirm:";

fn confirm_ping(end: u64) -> Message {
    let mut payload = CONFIRM_PREFIX.to_vec();
    payload.extend_from_slice(&end.to_be_bytes());
    Message::Ping(Bytes::from(payload))
}

/// The sequence number a pong confirms, if it answers one of our pings.
fn confirmed_by(pong: &[u8]) -> Option<u64> {
    let number = pong.strip_prefix(CONFIRM_PREFIX)?;
    Some(u64::from_be_bytes(number.try_into().ok()?))
}

/// How a connection ended.
pub(super) struct Ended {
    /// The close code (the server's, or 1006).
    pub(super) code: CloseCode,
    /// The error, if it ended with one.
    pub(super) error: Option<String>,
    /// The application closed the client and everything was confirmed.
    pub(super) stop: bool,
    /// The connection lived: a message went either way, or it stayed open
    /// for the policy's `stable_after`. The backoff starts over after one.
    pub(super) lived: bool,
}

/// Runs one connection until it ends or the client is closed and every
/// message confirmed.
pub(super) async fn serve(
    mut ws: ClientSocket,
    hello: Vec<Message>,
    backlog: &Backlog,
    events: &mpsc::UnboundedSender<ClientEvent>,
    stable_after: Duration,
) -> Ended {
    let opened = Instant::now();
    let mut exchanged = false;
    let end = |ws: &ClientSocket, error: Option<String>, stop: bool, exchanged: bool| Ended {
        code: ws.close_code(),
        error,
        stop,
        lived: exchanged || opened.elapsed() >= stable_after,
    };
    for message in hello {
        if ws.feed(message).is_err() {
            break;
        }
    }
    // What was not confirmed on the last connection is written again.
    let mut written = backlog.first();
    // The number the ping in flight confirms, if one is.
    let mut asked: Option<u64> = None;
    let mut batch = Vec::new();
    loop {
        let queued = backlog.since(written, &mut batch);
        let mut fed = !batch.is_empty();
        for message in batch.drain(..) {
            if ws.feed(message).is_err() {
                break;
            }
        }
        written = queued;
        // One ping in flight at a time: at most one per round trip.
        if asked.is_none() && written > backlog.first() {
            let _ = ws.feed(confirm_ping(written));
            asked = Some(written);
            fed = true;
        }
        if fed {
            if let Err(e) = ws.flush().await {
                return end(&ws, Some(e.to_string()), false, exchanged);
            }
        }
        if backlog.is_closing() {
            // Everything is written: the server's answer to our close
            // confirms it.
            let closed = ws.close(Some(CloseFrame::new(CloseCode::Normal, ""))).await;
            if closed.is_ok() && ws.close_code() != CloseCode::Abnormal {
                exchanged |= backlog.confirm(written) > 0;
                return end(&ws, None, true, exchanged);
            }
            let error = closed.err().map(|e| e.to_string());
            return end(&ws, error, false, exchanged);
        }
        tokio::select! {
            item = ws.recv() => match item {
                Some(Ok(Message::Pong(payload))) => {
                    if let Some(number) = confirmed_by(&payload) {
                        if asked == Some(number) {
                            asked = None;
                        }
                        exchanged |= backlog.confirm(number) > 0;
                    }
                }
                Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                    exchanged = true;
                    let _ = events.send(ClientEvent::Message(message));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    // Drain to the end so the close code is known.
                    while ws.recv().await.is_some() {}
                    return end(&ws, Some(e.to_string()), false, exchanged);
                }
                None => return end(&ws, None, false, exchanged),
            },
            _ = backlog.notify.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_confirmation_ping_fits_a_control_frame_and_round_trips() {
        let Message::Ping(payload) = confirm_ping(u64::MAX - 1) else {
            unreachable!()
        };
        assert!(payload.len() <= 125);
        assert_eq!(confirmed_by(&payload), Some(u64::MAX - 1));
        assert_eq!(confirmed_by(b"keepalive"), None);
        assert_eq!(confirmed_by(b"duplex-confirm:short"), None);
    }
}
