//! A chat member for the backplane tests: joins `/chat/<room>` on a node
//! with the library's client, sends numbered messages `sender:seq`, and
//! records what it receives, with the checks every member must pass.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use duplex::{ClientBuilder, CloseCode, MaybeTlsStream, Message, WsWriter};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How a member's connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// The server sent a close frame with this code (then the stream ended).
    Closed(Option<CloseCode>),
    /// A read failed.
    Failed(String),
    /// The stream ended without a close frame.
    Eof,
}

/// One received message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub sender: String,
    pub seq: u64,
    pub at: Instant,
}

/// Everything a member received.
#[derive(Debug, Default)]
pub struct Inbox {
    /// In arrival order.
    pub messages: Vec<Received>,
    /// What is not a `sender:seq` text message.
    pub strays: Vec<String>,
    /// How the connection ended, once it did.
    pub end: Option<End>,
}

impl Inbox {
    /// The sequence numbers received from `sender`, in arrival order.
    pub fn seqs_from(&self, sender: &str) -> Vec<u64> {
        self.messages
            .iter()
            .filter(|m| m.sender == sender)
            .map(|m| m.seq)
            .collect()
    }

    /// How many messages came from `sender`.
    pub fn count_from(&self, sender: &str) -> usize {
        self.messages.iter().filter(|m| m.sender == sender).count()
    }

    /// Whether `sender`'s message `seq` arrived.
    pub fn has(&self, sender: &str, seq: u64) -> bool {
        self.messages
            .iter()
            .any(|m| m.sender == sender && m.seq == seq)
    }
}

/// A connected member of a room.
pub struct ChatClient {
    /// Its name, the `sender` part of its messages (no `:` in it).
    pub name: String,
    /// The room it joined.
    pub room: String,
    /// The index of the node it is connected to (the test's numbering).
    pub node: usize,
    writer: WsWriter<MaybeTlsStream>,
    /// When each of its messages was sent, by sequence number.
    sent_at: Vec<Instant>,
    inbox: Arc<Mutex<Inbox>>,
    reader: JoinHandle<()>,
}

/// The text of `sender`'s message `seq`.
pub fn message(sender: &str, seq: u64) -> String {
    format!("{sender}:{seq}")
}

impl ChatClient {
    /// Joins `room` at `base` (`ws://HOST:PORT`), as `name`, on node
    /// number `node`; panics when the connection fails.
    pub async fn join(base: &str, node: usize, room: &str, name: &str) -> ChatClient {
        assert!(!name.contains(':'), "a member name has no ':'");
        let url = format!("{base}/chat/{room}");
        let ws = ClientBuilder::new(&url)
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{name}: connect {url}: {e}"));
        let (mut reader, writer) = ws.split();
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let record = inbox.clone();
        let reader = tokio::spawn(async move {
            let mut closed = None;
            let end = loop {
                let item = reader.recv().await;
                let mut inbox = record.lock().unwrap_or_else(|e| e.into_inner());
                match item {
                    Some(Ok(Message::Text(text))) => match parse(text.as_str()) {
                        Some((sender, seq)) => inbox.messages.push(Received {
                            sender: sender.to_string(),
                            seq,
                            at: Instant::now(),
                        }),
                        None => inbox.strays.push(text.to_string()),
                    },
                    Some(Ok(Message::Close(frame))) => closed = Some(frame.map(|f| f.code)),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(other)) => inbox.strays.push(format!("{other:?}")),
                    Some(Err(e)) => break End::Failed(e.to_string()),
                    None => break closed.map_or(End::Eof, End::Closed),
                }
            };
            record.lock().unwrap_or_else(|e| e.into_inner()).end = Some(end);
        });
        ChatClient {
            name: name.to_string(),
            room: room.to_string(),
            node,
            writer,
            sent_at: Vec::new(),
            inbox,
            reader,
        }
    }

    /// Sends its next numbered message.
    pub async fn send_next(&mut self) -> duplex::Result<()> {
        let seq = self.sent_at.len() as u64;
        self.writer.send(message(&self.name, seq)).await?;
        self.sent_at.push(Instant::now());
        Ok(())
    }

    /// Sends its next `n` numbered messages; panics when a send fails.
    pub async fn send_numbered(&mut self, n: u64) {
        for _ in 0..n {
            if let Err(e) = self.send_next().await {
                panic!("{}: send {}: {e}", self.name, self.sent());
            }
        }
    }

    /// How many messages it sent (its sequence numbers are `0..sent`).
    pub fn sent(&self) -> u64 {
        self.sent_at.len() as u64
    }

    /// When message `seq` was sent.
    pub fn sent_at(&self, seq: u64) -> Instant {
        self.sent_at[seq as usize]
    }

    /// The first sequence number it sent at or after `t` (`sent()` when
    /// none yet).
    pub fn first_sent_after(&self, t: Instant) -> u64 {
        self.sent_at.partition_point(|&at| at < t) as u64
    }

    /// Runs `f` on what it received so far.
    pub fn inbox<T>(&self, f: impl FnOnce(&Inbox) -> T) -> T {
        f(&self.inbox.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// How its connection ended, if it did.
    pub fn end(&self) -> Option<End> {
        self.inbox(|i| i.end.clone())
    }

    /// Waits until `done` holds for what it received, at most `limit`;
    /// returns whether it did.
    pub async fn wait_until(&self, limit: Duration, done: impl Fn(&Inbox) -> bool) -> bool {
        let start = Instant::now();
        loop {
            if self.inbox(&done) {
                return true;
            }
            if start.elapsed() > limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until its connection ends, at most `limit`.
    pub async fn wait_end(&self, limit: Duration) -> Option<End> {
        self.wait_until(limit, |i| i.end.is_some()).await;
        self.end()
    }

    /// Leaves the room with a normal close and waits for the end.
    pub async fn leave(mut self) {
        let _ = self.writer.close(None).await;
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.reader).await;
    }

    /// Panics unless everything it received is well-formed, from a
    /// member of `members` other than itself (so nothing from another
    /// room), and each sender's messages came in the order sent with none
    /// twice.
    pub fn assert_clean(&self, members: &[String]) {
        // Copied out first: a failed check must not poison the inbox.
        let (messages, strays) = self.inbox(|i| (i.messages.clone(), i.strays.clone()));
        assert!(
            strays.is_empty(),
            "{}: unexpected messages {:?}",
            self.name,
            &strays[..strays.len().min(5)]
        );
        let mut last: HashMap<&str, u64> = HashMap::new();
        for m in &messages {
            assert_ne!(
                m.sender, self.name,
                "{}: got its own message {}",
                self.name, m.seq
            );
            assert!(
                members.contains(&m.sender),
                "{} (room {}): a message from {}, not of its room",
                self.name,
                self.room,
                m.sender
            );
            if let Some(&prev) = last.get(m.sender.as_str()) {
                assert!(
                    m.seq > prev,
                    "{}: from {}, {} after {} (out of order or twice)",
                    self.name,
                    m.sender,
                    m.seq,
                    prev
                );
            }
            last.insert(&m.sender, m.seq);
        }
    }

    /// The sequence numbers of `sender`'s first `sent` messages that it
    /// did not receive.
    pub fn missing_from(&self, sender: &str, sent: u64) -> Vec<u64> {
        let got: std::collections::HashSet<u64> =
            self.inbox(|i| i.seqs_from(sender).into_iter().collect());
        (0..sent).filter(|s| !got.contains(s)).collect()
    }
}

impl Drop for ChatClient {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// `(sender, seq)` of a `sender:seq` message.
fn parse(text: &str) -> Option<(&str, u64)> {
    let (sender, seq) = text.rsplit_once(':')?;
    Some((sender, seq.parse().ok()?))
}
