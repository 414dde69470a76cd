//! `Connection::lend_buffered`: whole single-frame messages lent from the
//! read buffer, everything else left to `next_message`, in order.

mod common;

use common::masked;
use duplex_proto::{
    CloseCode, CloseFrame, Config, Connection, Message, MessageRef, ProtocolError, Role,
};

/// RFC 6455 §5.7: a single-frame masked text message, "Hello".
const MASKED_HELLO: [u8; 11] = [
    0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
];
/// RFC 6455 §5.7: the same message unmasked, as a server sends it.
const HELLO: [u8; 7] = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];

fn server() -> Connection {
    Connection::new(Role::Server, Config::default())
}

/// Every message of what is buffered: lent ones (copied, to compare)
/// and the others from `next_message`, alternating as an echo loop does.
fn drain(conn: &mut Connection) -> Result<Vec<Message>, ProtocolError> {
    let mut out = Vec::new();
    loop {
        conn.lend_buffered(|message, _| out.push(message.to_message()))?;
        match conn.next_message()? {
            Some(message) => out.push(message),
            None => return Ok(out),
        }
    }
}

#[test]
fn the_rfc_hello_is_lent_and_echoed() {
    let mut conn = server();
    conn.receive(&MASKED_HELLO);
    conn.receive(&MASKED_HELLO);
    let mut seen = Vec::new();
    let lent = conn
        .lend_buffered(|message, outbox| {
            seen.push(message.to_message());
            outbox.send(message).unwrap();
        })
        .unwrap();
    assert_eq!(lent, 2);
    assert_eq!(seen, vec![Message::text("Hello"), Message::text("Hello")]);
    assert_eq!(conn.take_output(), [HELLO, HELLO].concat());
    assert_eq!(conn.next_message().unwrap(), None);
}

#[test]
fn binary_is_lent_as_binary_and_a_client_masks_its_replies() {
    let mut client = Connection::new(Role::Client, Config::default());
    // RFC 6455 §5.7: 256 bytes of binary data in a single unmasked frame.
    let mut frame = vec![0x82, 0x7e, 0x01, 0x00];
    frame.extend(std::iter::repeat_n(0xab, 256));
    client.receive(&frame);
    client
        .lend_buffered(|message, outbox| {
            assert_eq!(message, MessageRef::Binary(&[0xab; 256]));
            outbox.send(message).unwrap();
        })
        .unwrap();
    // A client's reply is masked: decode it as a server would.
    let mut server = server();
    server.receive(&client.take_output());
    assert_eq!(
        server.next_message().unwrap(),
        Some(Message::binary(vec![0xab; 256]))
    );
}

#[test]
fn control_frames_and_fragments_are_left_in_order_for_next_message() {
    let mut client = Connection::new(Role::Client, Config::default());
    client.send(Message::text("one")).unwrap();
    client.send(Message::Ping("p".into())).unwrap();
    client.send(Message::binary(vec![2u8; 10])).unwrap();
    client
        .send_fragmented(Message::text("three, in fragments"), Some(4))
        .unwrap();
    client.send(Message::text("four")).unwrap();
    let mut conn = server();
    conn.receive(&client.take_output());

    let mut lent = Vec::new();
    assert_eq!(
        conn.lend_buffered(|m, _| lent.push(m.to_message()))
            .unwrap(),
        1
    );
    assert_eq!(lent, vec![Message::text("one")]);
    // The ping stopped the lending; it comes from next_message, answered.
    assert_eq!(
        conn.next_message().unwrap(),
        Some(Message::Ping("p".into()))
    );
    assert_eq!(conn.take_output(), [0x8a, 0x01, b'p']);
    let rest = drain(&mut conn).unwrap();
    assert_eq!(
        rest,
        vec![
            Message::binary(vec![2u8; 10]),
            Message::text("three, in fragments"),
            Message::text("four"),
        ]
    );
}

#[test]
fn a_frame_still_arriving_is_not_lent() {
    let mut conn = server();
    conn.receive(&MASKED_HELLO[..6]);
    assert_eq!(conn.lend_buffered(|_, _| panic!("not whole")).unwrap(), 0);
    // next_message may take over the partial frame; lending then waits.
    assert_eq!(conn.next_message().unwrap(), None);
    conn.receive(&MASKED_HELLO[6..]);
    assert_eq!(conn.lend_buffered(|_, _| panic!("in progress")).unwrap(), 0);
    assert_eq!(conn.next_message().unwrap(), Some(Message::text("Hello")));
}

#[test]
fn invalid_utf8_fails_with_1007() {
    let mut conn = server();
    // "κ" followed by a byte that can never appear in UTF-8.
    conn.receive(&masked(0x81, &[0xce, 0xba, 0xff]));
    let err = conn.lend_buffered(|_, _| panic!("invalid")).unwrap_err();
    assert_eq!(err, ProtocolError::InvalidUtf8);
    let out = conn.take_output();
    assert_eq!(out[0], 0x88);
    assert_eq!(
        u16::from_be_bytes([out[2], out[3]]),
        u16::from(CloseCode::InvalidData)
    );
    assert!(conn.is_closed());
}

#[test]
fn protocol_errors_are_left_to_next_message() {
    let mut conn = server();
    // An unmasked client frame: §5.1 says fail with 1002.
    conn.receive(&HELLO);
    assert_eq!(conn.lend_buffered(|_, _| panic!("bad")).unwrap(), 0);
    assert_eq!(conn.next_message(), Err(ProtocolError::UnmaskedFrame));
}

#[test]
fn nothing_is_sent_or_lent_after_a_close() {
    let mut conn = server();
    conn.close(Some(CloseFrame::new(CloseCode::Normal, "")))
        .unwrap();
    conn.take_output();
    conn.receive(&MASKED_HELLO);
    // Data may still arrive after our close (§5.5.1) and is lent...
    let result = conn
        .lend_buffered(|_, outbox| {
            // ...but nothing more can be sent.
            assert!(outbox.send(MessageRef::Text("late")).is_err());
        })
        .unwrap();
    assert_eq!(result, 1);
    assert!(conn.take_output().is_empty());
}
