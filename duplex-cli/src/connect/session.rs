//! One connection of `duplex connect`: reading stdin, printing, `--echo`,
//! and the exit status from the close.

use duplex::{CloseCode, Message};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::output::print_message;

pub(super) async fn echo(mut ws: duplex::ClientSocket) -> Result<(), String> {
    while let Some(item) = ws.recv().await {
        match item {
            Ok(message) if message.is_data() => {
                if ws.send(message).await.is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    finish(&ws)
}

pub(super) async fn interactive(ws: duplex::ClientSocket) -> Result<(), String> {
    let (mut reader, mut writer) = ws.split();
    let printer = tokio::spawn(async move {
        let mut out = std::io::stdout();
        while let Some(item) = reader.recv().await {
            match item {
                Ok(message) => print_message(&mut out, &message),
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(reader)
    });
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut printer = printer;
    let result = loop {
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(line)) => {
                    if writer.send(Message::text(line)).await.is_err() {
                        break None;
                    }
                }
                Ok(None) | Err(_) => {
                    let _ = writer.close(None).await;
                    break None;
                }
            },
            done = &mut printer => break Some(done),
        }
    };
    let done = match result {
        Some(done) => done,
        None => match tokio::time::timeout(duplex::DEFAULT_CLOSE_TIMEOUT, printer).await {
            Ok(done) => done,
            Err(_) => return Err("timed out waiting for the server's close".into()),
        },
    };
    let reader = done.map_err(|e| e.to_string())??;
    let ws = duplex::WebSocket::reunite(reader, writer).ok_or("internal: halves do not match")?;
    finish(&ws)
}

/// Exit status from how the connection ended: a normal close (1000, or
/// 1001 when the server shuts down) is success.
fn finish(ws: &duplex::ClientSocket) -> Result<(), String> {
    match ws.close_code() {
        CloseCode::Normal | CloseCode::Away | CloseCode::NoStatus => Ok(()),
        CloseCode::Abnormal => Err("connection closed abnormally (no close frame)".into()),
        code => {
            let reason = ws.close_frame().map(|f| f.reason).unwrap_or_default();
            Err(format!("server closed the connection with {code} {reason}")
                .trim_end()
                .to_string())
        }
    }
}
