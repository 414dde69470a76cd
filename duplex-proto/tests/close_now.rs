//! `Connection::close_now`: the close overtakes the queued output. Cut
//! at every byte of a queue of mixed frames (small and large payloads, a
//! fragmented message, a pong), the peer still parses a valid stream:
//! a prefix of the messages, whole, then the close with its code; and
//! every message is either received or counted as dropped.

use bytes::{Buf, Bytes};
use duplex_proto::{CloseCode, CloseFrame, Config, Connection, Message, Role, SendError};

/// The messages queued before the close, the fragmented one included.
fn messages() -> Vec<Message> {
    vec![
        Message::text("a"),
        Message::Binary(Bytes::from(vec![1u8; 200])),
        // Large enough to be queued by reference (a chunk of its own).
        Message::Binary(Bytes::from(vec![2u8; 5000])),
        Message::text("fragmented into three frames"),
        Message::text("z"),
    ]
}

fn no_deflate() -> Config {
    #[allow(unused_mut)]
    let mut config = Config::default();
    #[cfg(feature = "deflate")]
    {
        config.deflate = None;
    }
    config
}

fn peer_of(role: Role) -> Role {
    match role {
        Role::Client => Role::Server,
        Role::Server => Role::Client,
    }
}

/// Queues the messages on a `role` connection, writes `cut` bytes, closes
/// now with 1013, and hands the whole wire stream to a peer. Returns what
/// the peer received and how many messages the close dropped.
fn cut_and_close(role: Role, cut: usize) -> (Vec<Message>, usize) {
    let mut conn = Connection::new(role, no_deflate());
    for (i, message) in messages().into_iter().enumerate() {
        let frame_size = (i == 3).then_some(10);
        conn.send_fragmented(message, frame_size).unwrap();
        if i == 3 {
            conn.send(Message::Pong(Bytes::from_static(b"p"))).unwrap();
        }
    }
    let mut wire = Vec::new();
    let mut left = cut;
    while left > 0 {
        let output = conn.output();
        let chunk = output.chunk();
        let n = chunk.len().min(left);
        wire.extend_from_slice(&chunk[..n]);
        output.advance(n);
        left -= n;
    }
    let frame = CloseFrame::new(CloseCode::TryAgainLater, "slow");
    let dropped = conn.close_now(Some(frame)).unwrap();
    // Nothing can be sent after the close.
    assert_eq!(conn.send(Message::text("late")), Err(SendError::Closed));
    wire.extend(conn.take_output());

    let mut peer = Connection::new(peer_of(role), no_deflate());
    peer.receive(&wire);
    let mut received = Vec::new();
    loop {
        match peer.next_message() {
            Ok(Some(Message::Pong(_))) => {}
            Ok(Some(message)) => received.push(message),
            Ok(None) => break,
            Err(e) => panic!("{role:?} cut at {cut}: the peer failed: {e}"),
        }
    }
    (received, dropped)
}

fn check_every_cut(role: Role) {
    let mut whole = Connection::new(role, no_deflate());
    let total: usize = {
        for (i, message) in messages().into_iter().enumerate() {
            whole
                .send_fragmented(message, (i == 3).then_some(10))
                .unwrap();
            if i == 3 {
                whole.send(Message::Pong(Bytes::from_static(b"p"))).unwrap();
            }
        }
        whole.output().remaining()
    };
    let sent = messages();
    for cut in 0..total {
        let (received, dropped) = cut_and_close(role, cut);
        let close = received.last().expect("a close frame");
        match close {
            Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::TryAgainLater),
            other => panic!("{role:?} cut at {cut}: ended with {other:?}"),
        }
        let data = &received[..received.len() - 1];
        assert_eq!(data, &sent[..data.len()], "{role:?} cut at {cut}");
        assert_eq!(
            data.len() + dropped,
            sent.len(),
            "{role:?} cut at {cut}: received + dropped"
        );
    }
    // Cut before anything went out: everything dropped, only the close.
    assert_eq!(cut_and_close(role, 0).1, sent.len());
}

#[test]
fn a_server_close_overtakes_the_queue_at_every_cut() {
    check_every_cut(Role::Server);
}

#[test]
fn a_client_close_overtakes_the_queue_at_every_cut() {
    check_every_cut(Role::Client);
}

#[test]
fn unsent_messages_counts_what_is_not_written_whole() {
    let mut conn = Connection::new(Role::Server, no_deflate());
    assert_eq!(conn.unsent_messages(), 0);
    conn.send(Message::text("one")).unwrap();
    conn.send(Message::Ping(Bytes::new())).unwrap();
    conn.send(Message::text("two")).unwrap();
    assert_eq!(conn.unsent_messages(), 2);
    // "one" is 5 bytes on the wire: 4 of them leave it unsent.
    conn.output().advance(4);
    assert_eq!(conn.unsent_messages(), 2);
    conn.output().advance(1);
    assert_eq!(conn.unsent_messages(), 1);
    let rest = conn.pending_output().remaining();
    conn.output().advance(rest);
    assert_eq!(conn.unsent_messages(), 0);
}

#[test]
fn close_now_after_a_close_is_refused() {
    let mut conn = Connection::new(Role::Server, no_deflate());
    conn.send(Message::text("queued")).unwrap();
    conn.close(None).unwrap();
    assert_eq!(conn.close_now(None), Err(SendError::Closed));
    // The earlier close and what was before it are untouched.
    let out = conn.take_output();
    assert_eq!(out, [0x81, 6, b'q', b'u', b'e', b'u', b'e', b'd', 0x88, 0]);
}
