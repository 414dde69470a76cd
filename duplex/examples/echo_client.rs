//! An echo client, the Rust twin of the classic Java-WebSocket / Node `ws`
//! examples: it connects, sends `Hello, server!`, prints what comes back
//! (the server's greeting and the echo) and closes normally.
//!
//! ```text
//! cargo run --example echo_client -- [URL]       (default ws://127.0.0.1:8080)
//! ```
//!
//! Start `cargo run --example echo_server` first (or `duplex serve` and
//! use `ws://127.0.0.1:8080/echo`).

use std::time::Duration;

use duplex::{CloseCode, CloseFrame, Message};

#[tokio::main]
async fn main() -> duplex::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:8080".to_string());
    let mut ws = duplex::ClientBuilder::new(url.as_str())
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await?;
    println!("connected to {url}");

    ws.send("Hello, server!").await?;
    println!("sent: Hello, server!");

    // Print text until the echo of our message has come back: a greeting
    // server (like echo_server) sends its welcome first.
    let reply = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(message) = ws.recv().await {
            match message? {
                Message::Text(text) => {
                    println!("received: {text}");
                    if text.contains("Hello, server!") {
                        return Ok(true);
                    }
                }
                Message::Binary(data) => println!("received {} bytes of binary", data.len()),
                Message::Close(frame) => {
                    println!("server closed: {frame:?}");
                    return Ok(false);
                }
                _ => {}
            }
        }
        Ok::<_, duplex::Error>(false)
    })
    .await
    .map_err(|_| duplex::Error::Timeout("waiting for the echo"))??;
    if !reply {
        eprintln!("the connection ended before the echo arrived");
        std::process::exit(1);
    }

    ws.close(Some(CloseFrame::new(CloseCode::Normal, "done")))
        .await?;
    println!("closed ({})", ws.close_code());
    Ok(())
}
