//! Echo round trips over 127.0.0.1: every message size, with and without
//! `permessage-deflate`, against servers with compression on and off, and
//! large frames that arrive in pieces.

mod common;

use std::time::Duration;

use common::*;
use duplex::{ClientBuilder, CloseCode, Config, Message};

const SIZES: [usize; 7] = [0, 1, 125, 126, 65535, 65536, 16 << 20];

async fn round_trips(url: &str, config: Config, compressed: bool) {
    let mut ws = ClientBuilder::new(url)
        .config(config)
        .connect()
        .await
        .unwrap();
    assert_eq!(ws.is_compressed(), compressed, "compression negotiated");
    for (i, size) in SIZES.into_iter().enumerate() {
        let text = Message::text(text_of(size, i as u64));
        ws.send(text.clone()).await.unwrap();
        let back = ws.recv().await.unwrap().unwrap();
        assert!(back == text, "text of {size} bytes came back different");
        let binary = Message::binary(binary_of(size, i as u64));
        ws.send(binary.clone()).await.unwrap();
        let back = ws.recv().await.unwrap().unwrap();
        assert!(back == binary, "binary of {size} bytes came back different");
    }
    ws.close(None).await.unwrap();
    assert_eq!(ws.close_code(), CloseCode::Normal);
    assert!(ws.recv().await.is_none(), "recv after the close is None");
}

#[tokio::test]
async fn echo_round_trips_every_size_with_and_without_compression() {
    let running = Running::start(echo_server()).await;
    let url = running.url("/echo");
    within(TEST, "round trips", async {
        round_trips(&url, Config::default(), true).await;
        round_trips(&url, no_deflate(), false).await;
    })
    .await;
    running.stop().await;
}

#[tokio::test]
async fn server_without_compression_is_not_compressed() {
    let running = Running::start(echo_server().config(no_deflate())).await;
    let url = running.url("/echo");
    within(
        TEST,
        "round trips",
        round_trips(&url, Config::default(), false),
    )
    .await;
    running.stop().await;
}

/// Large frames that arrive slowly, in pieces smaller and larger than the
/// socket's wake-up mark, and a large frame followed at once by small ones
/// in the same write: all come back whole and in order (the read path
/// sizes its wake-ups by the frame in progress).
#[tokio::test]
async fn large_frames_arriving_in_pieces_come_back_whole() {
    within(TEST, "large frames in pieces", async {
        let running = Running::start(echo_server()).await;
        let mut client = RawClient::open(running.addr, "/echo").await;
        let big: Vec<u8> = (0..(1usize << 20) + 7).map(|i| (i % 251) as u8).collect();
        let wire = masked(0x82, &big);
        for piece in wire.chunks(100 * 1024) {
            client.send(piece).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let echo = client
            .read_frame()
            .await
            .expect("the echo of the slow frame");
        assert_eq!(echo.opcode, 0x2);
        assert!(echo.payload == big, "the slow frame came back changed");

        let mut burst = masked(0x82, &big[..300 * 1024]);
        burst.extend(masked(0x81, b"small one"));
        burst.extend(masked(0x81, b"small two"));
        client.send(&burst).await;
        let first = client.read_frame().await.expect("the large echo");
        assert!(
            first.payload == big[..300 * 1024],
            "the large frame came back changed"
        );
        for expected in [&b"small one"[..], b"small two"] {
            let small = client.read_frame().await.expect("a small echo");
            assert_eq!(small.payload, expected);
        }
        drop(client);
        running.stop().await;
    })
    .await;
}
