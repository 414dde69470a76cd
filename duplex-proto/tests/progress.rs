//! What the engine tells the I/O layer about a message in progress
//! (`is_receiving`, `messages_received`), which the layer times, and
//! `fail`, with which it gives a connection up for its own reasons.

mod common;

use common::masked;
use duplex_proto::{
    CloseCode, CloseFrame, Config, Connection, Message, Role, SendError, State, TransportStep,
};

fn server() -> Connection {
    Connection::new(Role::Server, Config::default())
}

/// Feeds `bytes` one at a time; returns the messages and, after each byte
/// that completed none, whether the engine said it was receiving.
fn byte_by_byte(conn: &mut Connection, bytes: &[u8]) -> (Vec<Message>, Vec<bool>) {
    let mut messages = Vec::new();
    let mut receiving = Vec::new();
    for b in bytes {
        conn.receive(&[*b]);
        match conn.next_message().unwrap() {
            Some(message) => messages.push(message),
            None => receiving.push(conn.is_receiving()),
        }
    }
    (messages, receiving)
}

#[test]
fn a_frame_is_in_progress_from_its_first_byte_to_its_last() {
    let mut conn = server();
    assert!(!conn.is_receiving());
    let (messages, receiving) = byte_by_byte(&mut conn, &masked(0x82, &[7; 300]));
    assert_eq!(messages, [Message::binary(vec![7; 300])]);
    // Header bytes and payload bytes alike count as started.
    assert!(receiving.iter().all(|r| *r), "{receiving:?}");
    assert!(!conn.is_receiving());
    assert_eq!(conn.messages_received(), 1);
}

#[test]
fn a_fragmented_message_stays_in_progress_across_its_frames_and_pings() {
    let mut conn = server();
    let mut bytes = masked(0x01, b"hel");
    bytes.extend(masked(0x89, b"ping"));
    bytes.extend(masked(0x00, b"lo"));
    bytes.extend(masked(0x80, b"!"));
    let (messages, receiving) = byte_by_byte(&mut conn, &bytes);
    assert_eq!(
        messages,
        [Message::Ping("ping".into()), Message::text("hello!")]
    );
    assert!(receiving.iter().all(|r| *r), "{receiving:?}");
    // The ping in the middle did not end the message: one message in all.
    assert_eq!(conn.messages_received(), 1);
    // A ping between messages is a message of its own.
    conn.receive(&masked(0x89, b""));
    assert_eq!(conn.next_message().unwrap(), Some(Message::Ping("".into())));
    assert_eq!(conn.messages_received(), 2);
    assert!(!conn.is_receiving());
}

#[test]
fn a_stream_of_messages_is_counted_even_when_a_frame_is_always_arriving() {
    let mut conn = server();
    let one = masked(0x81, b"abcdef");
    let stream: Vec<u8> = one.iter().cycle().take(one.len() * 5).copied().collect();
    // Chunks that end inside a frame every time.
    let mut counts = Vec::new();
    for chunk in stream.chunks(one.len() + 3) {
        conn.receive(chunk);
        while conn.next_message().unwrap().is_some() {}
        counts.push((conn.messages_received(), conn.is_receiving()));
    }
    assert_eq!(
        counts,
        [(1, true), (2, true), (3, true), (5, false)],
        "(messages received, receiving) after each chunk"
    );
}

#[test]
fn lent_messages_are_counted() {
    let mut conn = server();
    conn.receive(&masked(0x81, b"a"));
    conn.receive(&masked(0x82, b"b"));
    conn.receive(&masked(0x81, b"c")[..3]);
    assert_eq!(conn.lend_buffered(|_, _| {}).unwrap(), 2);
    assert_eq!(conn.messages_received(), 2);
    assert!(conn.is_receiving());
}

#[test]
fn fail_sends_the_close_and_winds_down_without_waiting_for_the_peer() {
    let mut conn = server();
    conn.receive(&masked(0x82, &[1; 1000])[..20]);
    assert_eq!(conn.next_message().unwrap(), None);
    assert!(conn.is_receiving());
    let frame = CloseFrame::new(CloseCode::Policy, "message timeout");
    conn.fail(frame.clone()).unwrap();
    assert_eq!(conn.state(), State::Failed);
    assert!(!conn.is_receiving(), "what arrived is dropped");
    let mut expected = vec![0x88, 17, 0x03, 0xf0];
    expected.extend_from_slice(b"message timeout");
    assert_eq!(conn.take_output(), expected);
    // Whoever fails closes first and drains; nothing more is parsed.
    conn.receive(&[0; 100]);
    assert_eq!(conn.next_message().unwrap(), None);
    assert_eq!(conn.transport_step(), TransportStep::ShutDown);
    conn.transport_shut_down();
    assert_eq!(conn.transport_step(), TransportStep::Drain);
    // Once failed, it cannot fail again, and nothing can be sent.
    assert_eq!(conn.fail(frame), Err(SendError::Closed));
    assert_eq!(conn.send(Message::text("late")), Err(SendError::Closed));
}

#[test]
fn fail_after_our_close_sends_no_second_close_frame() {
    let mut conn = server();
    conn.close(Some(CloseFrame::new(CloseCode::Away, "idle")))
        .unwrap();
    let close = conn.take_output();
    assert_eq!(&close[..4], &[0x88, 6, 0x03, 0xe9]);
    conn.fail(CloseFrame::new(CloseCode::Policy, "")).unwrap();
    assert_eq!(conn.state(), State::Failed);
    assert!(conn.take_output().is_empty());
}

#[test]
fn fail_refuses_a_code_that_may_not_be_sent() {
    let mut conn = server();
    assert_eq!(
        conn.fail(CloseFrame::new(CloseCode::Abnormal, "")),
        Err(SendError::InvalidCloseCode(1006))
    );
    assert_eq!(conn.state(), State::Open);
}
