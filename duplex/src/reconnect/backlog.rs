//! [`Backlog`]: the messages of a reconnecting client that the server has
//! not confirmed yet.
//!
//! A message stays here until the server has confirmed it (see the module
//! docs of [`reconnect`](super)); until then every new connection writes it
//! again. Each message has a sequence number, so that a confirmation
//! ("everything before number N") drains exactly what it covers.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use duplex_proto::Message;
use tokio::sync::Notify;

use crate::error::{Error, Result};

/// Messages waiting to be written or confirmed, kept across reconnects.
pub(super) struct Backlog {
    state: Mutex<State>,
    /// Wakes the connection task: a message was queued, or a close asked.
    pub(super) notify: Notify,
    /// Wakes senders waiting for room.
    room: Notify,
    limit: usize,
}

/// What `try_push` did.
enum Push {
    Queued,
    Closed,
    /// Full: the message is handed back.
    Full(Message),
}

#[derive(Default)]
struct State {
    /// Unconfirmed messages, oldest first.
    messages: VecDeque<Message>,
    /// The sequence number of `messages[0]`.
    first: u64,
    /// No more messages are accepted.
    closing: bool,
}

impl Backlog {
    /// A backlog of at most `limit` unconfirmed messages.
    pub(super) fn new(limit: usize) -> Backlog {
        Backlog {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            room: Notify::new(),
            limit,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn try_push(&self, message: Message) -> Push {
        let mut state = self.lock();
        if state.closing {
            return Push::Closed;
        }
        if state.messages.len() >= self.limit {
            return Push::Full(message);
        }
        state.messages.push_back(message);
        drop(state);
        self.notify.notify_one();
        Push::Queued
    }

    /// Queues a message; fails when closing or full.
    pub(super) fn push(&self, message: Message) -> Result<()> {
        match self.try_push(message) {
            Push::Queued => Ok(()),
            Push::Closed => Err(Error::Closed),
            Push::Full(_) => Err(Error::QueueFull),
        }
    }

    /// Queues a message, waiting for room instead of failing when full.
    pub(super) async fn push_when_room(&self, mut message: Message) -> Result<()> {
        loop {
            // Created before the check: `notify_waiters` reaches it.
            let room = self.room.notified();
            match self.try_push(message) {
                Push::Queued => return Ok(()),
                Push::Closed => return Err(Error::Closed),
                Push::Full(refused) => message = refused,
            }
            room.await;
        }
    }

    /// No more messages are accepted; the connection task is woken to
    /// deliver what is left.
    pub(super) fn close(&self) {
        self.lock().closing = true;
        self.notify.notify_one();
        self.room.notify_waiters();
    }

    /// Whether [`Backlog::close`] (or [`Backlog::stop`]) was called.
    pub(super) fn is_closing(&self) -> bool {
        self.lock().closing
    }

    /// Whether every message was confirmed.
    pub(super) fn is_empty(&self) -> bool {
        self.lock().messages.is_empty()
    }

    /// The sequence number of the oldest unconfirmed message: where a new
    /// connection starts writing.
    pub(super) fn first(&self) -> u64 {
        self.lock().first
    }

    /// Clones the messages from sequence number `from` on into `into`;
    /// returns the number after the last one.
    pub(super) fn since(&self, from: u64, into: &mut Vec<Message>) -> u64 {
        let state = self.lock();
        let skip = usize::try_from(from.saturating_sub(state.first)).unwrap_or(usize::MAX);
        into.extend(state.messages.iter().skip(skip).cloned());
        state.first + state.messages.len() as u64
    }

    /// The server confirmed every message before number `end`: they leave
    /// the backlog. Returns how many did.
    pub(super) fn confirm(&self, end: u64) -> usize {
        let mut state = self.lock();
        let confirmed = usize::try_from(end.saturating_sub(state.first))
            .unwrap_or(usize::MAX)
            .min(state.messages.len());
        state.messages.drain(..confirmed);
        state.first += confirmed as u64;
        drop(state);
        if confirmed > 0 {
            self.room.notify_waiters();
        }
        confirmed
    }

    /// The client stops: refuses further messages and hands back the
    /// unconfirmed ones (under one lock, so none can slip in and be lost).
    pub(super) fn stop(&self) -> Vec<Message> {
        let mut state = self.lock();
        state.closing = true;
        let undelivered = state.messages.drain(..).collect();
        drop(state);
        self.room.notify_waiters();
        undelivered
    }
}
