//! Lending over a real socket: messages buffered behind the first of a
//! burst are lent to the route by `lend_buffered` and answered in order
//! with the rest (a ping and a fragmented message among them), and invalid
//! UTF-8 in a lent message closes with 1007.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use duplex::{Message, Server, ServerSocket};

/// Answers text in capitals and binary reversed; after the first message
/// of each batch, the rest are lent from the read buffer (counted).
async fn shout(mut ws: ServerSocket, lent: Arc<AtomicUsize>) {
    fn answer(message: duplex::MessageRef<'_>, outbox: &mut duplex::Outbox<'_>) {
        let _ = match message {
            duplex::MessageRef::Text(text) => {
                outbox.send(duplex::MessageRef::Text(&text.to_uppercase()))
            }
            duplex::MessageRef::Binary(data) => {
                let reversed: Vec<u8> = data.iter().rev().copied().collect();
                outbox.send(duplex::MessageRef::Binary(&reversed))
            }
        };
    }
    while let Some(Ok(message)) = ws.recv().await {
        let reply = match message {
            Message::Text(text) => Message::text(text.to_uppercase()),
            Message::Binary(data) => {
                Message::binary(data.iter().rev().copied().collect::<Vec<_>>())
            }
            _ => continue,
        };
        if ws.feed(reply).is_err() {
            break;
        }
        match ws.lend_buffered(answer) {
            Ok(n) => lent.fetch_add(n, Ordering::SeqCst),
            Err(_) => break,
        };
        if ws.flush().await.is_err() {
            break;
        }
    }
    let _ = ws.flush().await;
}

#[tokio::test]
async fn lent_messages_are_answered_in_order_with_the_rest() {
    within(TEST, "lending a burst", async {
        let lent = Arc::new(AtomicUsize::new(0));
        let counter = lent.clone();
        let server = Server::new().route("/shout", move |ws, _req| shout(ws, counter.clone()));
        let running = Running::start(server).await;
        let mut client = RawClient::open(running.addr, "/shout").await;
        // One write: lendable messages around a ping and a fragmented one.
        let mut burst = masked(0x81, b"first");
        burst.extend(masked(0x81, "κόσμε".as_bytes()));
        burst.extend(masked(0x82, &[1, 2, 3]));
        burst.extend(masked(0x89, b"ping"));
        burst.extend(masked(0x01, b"frag"));
        burst.extend(masked(0x80, b"mented"));
        burst.extend(masked(0x81, b"last"));
        client.send(&burst).await;
        let expected: [(u8, &[u8]); 6] = [
            (0x1, b"FIRST"),
            (0x1, "ΚΌΣΜΕ".as_bytes()),
            (0x2, &[3, 2, 1]),
            (0xa, b"ping"),
            (0x1, b"FRAGMENTED"),
            (0x1, b"LAST"),
        ];
        for (opcode, payload) in expected {
            let frame = client.read_frame().await.expect("an answer");
            assert_eq!((frame.opcode, &frame.payload[..]), (opcode, payload));
        }
        assert!(
            lent.load(Ordering::SeqCst) >= 2,
            "the buffered messages were lent"
        );
        // Invalid UTF-8 in a lent text message closes with 1007.
        let mut bad = masked(0x81, b"ok");
        bad.extend(masked(0x81, &[0xce, 0xba, 0xff]));
        client.send(&bad).await;
        let (close, before) = client.expect_close(TEST).await;
        assert_eq!(close.close_code(), 1007);
        assert_eq!(before.len(), 1, "the valid message was answered first");
        drop(client);
        running.stop().await;
    })
    .await;
}
