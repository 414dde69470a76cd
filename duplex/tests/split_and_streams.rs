//! A socket used in other shapes than one task calling `send` and `recv`:
//! split halves on different tasks, `recv` cancelled by `select!` without
//! losing or corrupting a message, and the `Stream`/`Sink` implementations
//! (of the socket and of its halves).

mod common;

use std::time::Duration;

use common::*;
use duplex::{ClientBuilder, CloseCode, Config, Message, Server, ServerSocket, UpgradeRequest};
use futures_util::{SinkExt, StreamExt};

#[tokio::test]
async fn split_halves_work_from_different_tasks() {
    let running = Running::start(echo_server()).await;
    let ws = duplex::connect(&running.url("/echo")).await.unwrap();
    let (mut reader, mut writer) = ws.split();
    const N: usize = 500;
    let writer_task = tokio::spawn(async move {
        for i in 0..N {
            if i % 2 == 0 {
                writer.send(format!("message {i}")).await.unwrap();
            } else {
                writer.send(binary_of(i * 10, i as u64)).await.unwrap();
            }
        }
        writer.close(None).await.unwrap();
        writer
    });
    let reader_task = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(item) = reader.recv().await {
            got.push(item.unwrap());
        }
        (reader, got)
    });
    let writer = within(TEST, "writer", writer_task).await.unwrap();
    let (reader, got) = within(TEST, "reader", reader_task).await.unwrap();
    assert_eq!(got.len(), N + 1, "N echoes and the close");
    for (i, message) in got[..N].iter().enumerate() {
        let expected = if i % 2 == 0 {
            Message::text(format!("message {i}"))
        } else {
            Message::binary(binary_of(i * 10, i as u64))
        };
        assert!(*message == expected, "message {i} differs");
    }
    assert!(matches!(&got[N], Message::Close(Some(f)) if f.code == CloseCode::Normal));
    let ws = duplex::WebSocket::reunite(reader, writer).expect("halves of one socket");
    assert_eq!(ws.close_code(), CloseCode::Normal);
    running.stop().await;
}

/// Message `i` of the burst: text or binary, sizes from 0 to ~100 KB so
/// that many messages span several reads.
fn burst_message(i: usize) -> Message {
    let size = if i.is_multiple_of(10) {
        100_000 + i
    } else {
        (i * 37) % 3000
    };
    if i.is_multiple_of(3) {
        Message::binary(binary_of(size, i as u64))
    } else {
        let mut text = format!("#{i}:");
        text.push_str(&text_of(size, i as u64));
        Message::text(text)
    }
}

const BURST: usize = 2000;

async fn burst(mut ws: ServerSocket, _req: UpgradeRequest) {
    for i in 0..BURST {
        if ws.feed(burst_message(i)).is_err() {
            return;
        }
        if i % 16 == 15 && ws.flush().await.is_err() {
            return;
        }
    }
    let _ = ws.close(None).await;
}

async fn receive_burst_with_select(config: Config) {
    let running = Running::start(Server::new().config(config.clone()).route("/burst", burst)).await;
    let mut ws = ClientBuilder::new(running.url("/burst"))
        .config(config)
        .connect()
        .await
        .unwrap();
    let mut received = 0usize;
    let mut timer_won = 0usize;
    let mut ready_won = 0usize;
    let mut iteration = 0usize;
    within(TEST, "receiving the burst", async {
        loop {
            iteration += 1;
            tokio::select! {
                item = ws.recv() => match item {
                    Some(Ok(Message::Close(frame))) => {
                        assert_eq!(frame.map(|f| f.code), Some(CloseCode::Normal));
                    }
                    Some(Ok(message)) => {
                        let expected = burst_message(received);
                        assert!(
                            message == expected,
                            "message {received} lost or corrupted (got {} bytes, expected {})",
                            message.len(),
                            expected.len()
                        );
                        received += 1;
                    }
                    Some(Err(e)) => panic!("recv failed after {received} messages: {e}"),
                    None => break,
                },
                _ = tokio::time::sleep(Duration::from_micros(100)) => timer_won += 1,
                _ = std::future::ready(()), if iteration.is_multiple_of(3) => ready_won += 1,
            }
        }
    })
    .await;
    assert_eq!(received, BURST, "every message arrived exactly once");
    assert!(
        timer_won + ready_won > 0,
        "the other branches never won: recv was never cancelled"
    );
    running.stop().await;
}

#[tokio::test]
async fn recv_is_cancellation_safe() {
    receive_burst_with_select(Config::default()).await;
}

#[tokio::test]
async fn recv_is_cancellation_safe_without_compression() {
    receive_burst_with_select(no_deflate()).await;
}

#[tokio::test]
async fn stream_and_sink() {
    let running = Running::start(echo_server()).await;
    within(TEST, "stream and sink", async {
        let mut ws = duplex::connect(&running.url("/echo")).await.unwrap();
        SinkExt::send(&mut ws, Message::text("one")).await.unwrap();
        assert_eq!(
            StreamExt::next(&mut ws).await.unwrap().unwrap(),
            Message::text("one")
        );
        let messages: Vec<Message> = (0..100)
            .map(|i| Message::text(format!("item {i}")))
            .collect();
        let mut source = futures_util::stream::iter(messages.clone()).map(Ok);
        ws.send_all(&mut source).await.unwrap();
        let back: Vec<Message> = (&mut ws)
            .take(100)
            .map(|m| m.unwrap())
            .collect::<Vec<_>>()
            .await;
        assert_eq!(back, messages);

        // The halves are a Stream and a Sink too.
        let (reader, mut writer) = ws.split();
        let mut source = futures_util::stream::iter(messages.clone()).map(Ok);
        writer.send_all(&mut source).await.unwrap();
        SinkExt::close(&mut writer).await.unwrap();
        let all: Vec<Message> = reader.map(|m| m.unwrap()).collect().await;
        assert_eq!(all.len(), 101, "100 echoes and the server's close");
        assert_eq!(&all[..100], &messages[..]);
        assert!(matches!(&all[100], Message::Close(Some(f)) if f.code == CloseCode::Normal));
    })
    .await;
    running.stop().await;
}
