//! Property tests: however a byte stream is cut into reads, the engine
//! produces the same messages, whether they are taken out owned or lent;
//! and what one side encodes, the other decodes.

use duplex_proto::{Config, Connection, Message, Role};
use proptest::prelude::*;

/// How the decoded bytes are taken out of the engine.
#[derive(Clone, Copy, Debug)]
enum Drain {
    /// `next_message` alone.
    Owned,
    /// `lend_buffered` first, `next_message` for what it leaves.
    Lent,
}

fn decode_in_chunks(role: Role, bytes: &[u8], cuts: &[usize], drain: Drain) -> Vec<Message> {
    let mut conn = Connection::new(role, Config::default());
    let mut out = Vec::new();
    let mut last = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    points.push(bytes.len());
    for p in points {
        conn.receive(&bytes[last..p]);
        last = p;
        loop {
            if let Drain::Lent = drain {
                conn.lend_buffered(|m, _| out.push(m.to_message()))
                    .expect("valid stream");
            }
            match conn.next_message().expect("valid stream") {
                Some(m) => out.push(m),
                None => break,
            }
        }
    }
    out
}

fn arb_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        ".{0,200}".prop_map(Message::text),
        proptest::collection::vec(any::<u8>(), 0..70_000).prop_map(Message::binary),
        proptest::collection::vec(any::<u8>(), 0..125).prop_map(|p| Message::Ping(p.into())),
        proptest::collection::vec(any::<u8>(), 0..125).prop_map(|p| Message::Pong(p.into())),
    ]
}

fn encode(role: Role, messages: &[Message], frame_size: Option<usize>) -> Vec<u8> {
    let mut conn = Connection::new(role, Config::default());
    for m in messages {
        conn.send_fragmented(m.clone(), frame_size).unwrap();
    }
    conn.take_output()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn round_trip_client_to_server(messages in proptest::collection::vec(arb_message(), 0..8),
                                   frame_size in proptest::option::of(1usize..300),
                                   cuts in proptest::collection::vec(any::<usize>(), 0..20)) {
        let bytes = encode(Role::Client, &messages, frame_size);
        prop_assert_eq!(decode_in_chunks(Role::Server, &bytes, &cuts, Drain::Owned), messages.clone());
        prop_assert_eq!(decode_in_chunks(Role::Server, &bytes, &cuts, Drain::Lent), messages);
    }

    #[test]
    fn round_trip_server_to_client(messages in proptest::collection::vec(arb_message(), 0..8),
                                   cuts in proptest::collection::vec(any::<usize>(), 0..20)) {
        let bytes = encode(Role::Server, &messages, None);
        prop_assert_eq!(decode_in_chunks(Role::Client, &bytes, &cuts, Drain::Owned), messages.clone());
        prop_assert_eq!(decode_in_chunks(Role::Client, &bytes, &cuts, Drain::Lent), messages);
    }
}

/// Every single cut point and every byte-at-a-time feed of a stream that
/// mixes fragments, control frames, multi-byte text and a close.
#[test]
fn every_split_of_a_mixed_stream_gives_the_same_messages() {
    let mut client = Connection::new(Role::Client, Config::default());
    client
        .send_fragmented(Message::text("κόσμε, fragmented € 😀"), Some(3))
        .unwrap();
    client.send(Message::Ping("p".into())).unwrap();
    client.send(Message::binary(vec![1u8; 300])).unwrap();
    client.send(Message::text("κόσμε")).unwrap();
    client.send(Message::text("")).unwrap();
    client
        .close(Some(duplex_proto::CloseFrame::new(1000, "done")))
        .unwrap();
    let bytes = client.take_output();
    let whole = decode_in_chunks(Role::Server, &bytes, &[], Drain::Owned);
    assert_eq!(whole.len(), 6);
    let every: Vec<usize> = (0..bytes.len()).collect();
    for drain in [Drain::Owned, Drain::Lent] {
        for cut in 0..=bytes.len() {
            assert_eq!(
                decode_in_chunks(Role::Server, &bytes, &[cut], drain),
                whole,
                "cut at {cut}, {drain:?}"
            );
        }
        assert_eq!(decode_in_chunks(Role::Server, &bytes, &every, drain), whole);
    }
}
