//! The RFC 6455 §5.7 examples and the protocol errors of §5-§7, fed to a
//! connection byte stream by byte stream.

mod common;

use common::{masked, MASK};
use duplex_proto::{CloseCode, CloseFrame, Config, Connection, Message, ProtocolError, Role};

fn server() -> Connection {
    Connection::new(Role::Server, Config::default())
}

fn messages(conn: &mut Connection, bytes: &[u8]) -> Result<Vec<Message>, ProtocolError> {
    conn.receive(bytes);
    let mut out = Vec::new();
    while let Some(m) = conn.next_message()? {
        out.push(m);
    }
    Ok(out)
}

fn fails_with(bytes: &[u8], code: CloseCode) {
    let mut conn = server();
    let err = messages(&mut conn, bytes).expect_err("must fail");
    assert_eq!(err.close_code(), code, "{err}");
    let out = conn.take_output();
    // A close frame with that code was queued.
    assert_eq!(out[0], 0x88);
    assert_eq!(u16::from_be_bytes([out[2], out[3]]), u16::from(code));
    assert!(conn.is_closed());
}

#[test]
fn single_frame_unmasked_text_on_a_client() {
    let mut client = Connection::new(Role::Client, Config::default());
    let got = messages(&mut client, &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]).unwrap();
    assert_eq!(got, vec![Message::text("Hello")]);
}

#[test]
fn single_frame_masked_text_on_a_server() {
    let got = messages(
        &mut server(),
        &[
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ],
    )
    .unwrap();
    assert_eq!(got, vec![Message::text("Hello")]);
}

#[test]
fn fragmented_unmasked_text_on_a_client() {
    let mut client = Connection::new(Role::Client, Config::default());
    let got = messages(
        &mut client,
        &[0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f],
    )
    .unwrap();
    assert_eq!(got, vec![Message::text("Hello")]);
}

#[test]
fn ping_is_answered_with_the_same_payload() {
    let mut conn = server();
    let got = messages(&mut conn, &masked(0x89, b"Hello")).unwrap();
    assert_eq!(got, vec![Message::Ping("Hello".into())]);
    // RFC 6455 §5.7: unmasked pong "Hello".
    assert_eq!(
        conn.take_output(),
        vec![0x8a, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
    );
}

#[test]
fn server_sends_the_rfc_frames() {
    let mut conn = server();
    conn.send(Message::text("Hello")).unwrap();
    assert_eq!(
        conn.take_output(),
        vec![0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
    );
    conn.send(Message::binary(vec![0u8; 256])).unwrap();
    assert_eq!(&conn.take_output()[..4], &[0x82, 0x7E, 0x01, 0x00]);
    conn.send(Message::binary(vec![0u8; 65536])).unwrap();
    assert_eq!(
        &conn.take_output()[..10],
        &[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]
    );
}

#[test]
fn client_frames_are_masked_and_decode_on_a_server() {
    let mut client = Connection::new(Role::Client, Config::default());
    client.send(Message::text("Hello")).unwrap();
    let bytes = client.take_output();
    assert_eq!(bytes[1], 0x85);
    assert_ne!(&bytes[6..], b"Hello");
    assert_eq!(
        messages(&mut server(), &bytes).unwrap(),
        vec![Message::text("Hello")]
    );
}

#[test]
fn control_frames_interleave_with_fragments() {
    let mut bytes = masked(0x01, b"Hel");
    bytes.extend(masked(0x89, b"p"));
    bytes.extend(masked(0x80, b"lo"));
    let got = messages(&mut server(), &bytes).unwrap();
    assert_eq!(got, vec![Message::Ping("p".into()), Message::text("Hello")]);
}

#[test]
fn close_is_echoed_once_and_ends_reading() {
    let mut conn = server();
    let mut bytes = masked(0x88, &[0x03, 0xe8, b'b', b'y', b'e']);
    bytes.extend(masked(0x81, b"after close"));
    let got = messages(&mut conn, &bytes).unwrap();
    assert_eq!(
        got,
        vec![Message::Close(Some(CloseFrame::new(1000, "bye")))]
    );
    assert_eq!(conn.take_output(), vec![0x88, 0x02, 0x03, 0xe8]);
    assert!(conn.is_closed());
    assert_eq!(conn.close_code(), CloseCode::Normal);
    assert!(conn.send(Message::text("x")).is_err());
}

#[test]
fn our_close_then_theirs_completes_the_handshake() {
    let mut conn = server();
    conn.close(Some(CloseFrame::new(CloseCode::Away, "shutdown")))
        .unwrap();
    assert!(!conn.is_closed());
    let out = conn.take_output();
    assert_eq!(&out[..4], &[0x88, 10, 0x03, 0xe9]);
    messages(&mut conn, &masked(0x88, &[0x03, 0xe9])).unwrap();
    assert!(conn.is_closed());
    assert!(conn.take_output().is_empty(), "no second close frame");
}

#[test]
fn protocol_errors_close_with_1002() {
    fails_with(
        &[0x81, 0x05, b'H', b'e', b'l', b'l', b'o'],
        CloseCode::Protocol,
    ); // unmasked
    fails_with(&masked(0x83, b""), CloseCode::Protocol); // reserved opcode
    fails_with(&masked(0x8b, b""), CloseCode::Protocol); // reserved control opcode
    fails_with(&masked(0xc1, b"x"), CloseCode::Protocol); // RSV1 without extension
    fails_with(&masked(0xa1, b"x"), CloseCode::Protocol); // RSV2
    fails_with(&masked(0x91, b"x"), CloseCode::Protocol); // RSV3
    fails_with(&masked(0x89, &[0u8; 126]), CloseCode::Protocol); // long ping
    fails_with(&masked(0x09, b"x"), CloseCode::Protocol); // fragmented ping
    fails_with(&masked(0x80, b"x"), CloseCode::Protocol); // continuation first
    let mut restart = masked(0x01, b"a");
    restart.extend(masked(0x81, b"b"));
    fails_with(&restart, CloseCode::Protocol); // new message inside a fragmented one
    fails_with(&masked(0x88, &[0x03]), CloseCode::Protocol); // 1-byte close
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
        fails_with(&masked(0x88, &code.to_be_bytes()), CloseCode::Protocol);
    }
}

#[test]
fn a_masked_server_frame_fails_a_client() {
    let mut client = Connection::new(Role::Client, Config::default());
    let err = messages(&mut client, &masked(0x81, b"x")).unwrap_err();
    assert_eq!(err, ProtocolError::MaskedFrame);
}

#[test]
fn invalid_utf8_closes_with_1007_as_soon_as_seen() {
    fails_with(&masked(0x81, &[0xce, 0xba, 0xff]), CloseCode::InvalidData);
    fails_with(&masked(0x88, &[0x03, 0xe8, 0xff]), CloseCode::InvalidData);
    // Split across fragments: the bad byte is in the second fragment.
    let mut split = masked(0x01, &[0xce]);
    split.extend(masked(0x80, &[0xff]));
    fails_with(&split, CloseCode::InvalidData);
    // Fail fast: a partial frame whose start is already invalid fails
    // before the rest of the frame arrives.
    let frame = masked(0x81, &[0xf4, 0x90, 0x80, 0x80, b'a', b'b', b'c']);
    let mut conn = server();
    let err = messages(&mut conn, &frame[..frame.len() - 3]).unwrap_err();
    assert_eq!(err, ProtocolError::InvalidUtf8);
    // Incomplete at the end of the message.
    fails_with(&masked(0x81, &[0xe2, 0x82]), CloseCode::InvalidData);
}

#[test]
fn sizes_are_enforced_from_the_header() {
    // 2^62 claimed: answered with 1009 from the header alone.
    let mut huge = vec![0x82, 0xff];
    huge.extend_from_slice(&(1u64 << 62).to_be_bytes());
    huge.extend_from_slice(&MASK);
    fails_with(&huge, CloseCode::TooBig);
    // The top bit set is a protocol error.
    let mut top = vec![0x82, 0xff];
    top.extend_from_slice(&(1u64 << 63).to_be_bytes());
    top.extend_from_slice(&MASK);
    fails_with(&top, CloseCode::Protocol);
    // A small message limit counts fragments together.
    let mut conn = Connection::new(
        Role::Server,
        Config {
            max_message_size: 10,
            ..Config::default()
        },
    );
    let mut bytes = masked(0x02, &[0u8; 6]);
    bytes.extend(masked(0x80, &[0u8; 6]));
    let err = messages(&mut conn, &bytes).unwrap_err();
    assert_eq!(err.close_code(), CloseCode::TooBig);
}

#[test]
fn sixteen_mib_in_one_frame_arrives_whole() {
    let payload: Vec<u8> = (0..16 << 20).map(|i: u32| (i % 251) as u8).collect();
    let mut conn = server();
    let got = messages(&mut conn, &masked(0x82, &payload)).unwrap();
    assert_eq!(got, vec![Message::binary(payload)]);
}

#[test]
fn fragmented_send_reassembles() {
    let mut client = Connection::new(Role::Client, Config::default());
    client
        .send_fragmented(Message::text("Hello, fragments!"), Some(4))
        .unwrap();
    let bytes = client.take_output();
    assert_eq!(bytes[0], 0x01); // first fragment: text, no FIN
    assert_eq!(
        messages(&mut server(), &bytes).unwrap(),
        vec![Message::text("Hello, fragments!")]
    );
}

#[test]
fn sending_an_invalid_close_code_is_refused() {
    let mut conn = server();
    assert!(conn.close(Some(CloseFrame::new(1005, ""))).is_err());
    assert!(conn.close(Some(CloseFrame::new(4000, "ok"))).is_ok());
}
