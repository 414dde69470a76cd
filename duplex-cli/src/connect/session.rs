//! One connection of `duplex connect`: stdin lines (and slash commands)
//! out, received messages printed, `--once`, `--echo`, and the exit status
//! from the close.

use duplex::{CloseCode, Message};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use super::commands::{self, Line};
use super::formats::InputArgs;
use super::output::Printer;

/// How the session reads stdin and prints.
pub(super) struct Session {
    pub(super) printer: Printer,
    pub(super) input: InputArgs,
    /// Slash commands are read.
    pub(super) slash: bool,
    /// `--once`: close after as many data replies as messages were sent
    /// (at least one), once stdin has ended.
    pub(super) once: bool,
}

/// `--echo`: every data message goes straight back, same type.
pub(super) async fn echo(mut ws: duplex::ClientSocket, printer: Printer) -> Result<(), String> {
    while let Some(item) = ws.recv().await {
        match item {
            Ok(message) if message.is_data() => {
                if ws.send(message).await.is_err() {
                    break;
                }
            }
            Ok(control) => printer.print(&control, None),
            Err(e) => return Err(e.to_string()),
        }
    }
    finish(&ws, false)
}

/// Reads stdin and prints what arrives, until the end of stdin (then a
/// close 1000), `/close`, the server's close, or with `--once` the replies.
pub(super) async fn interactive(ws: duplex::ClientSocket, session: Session) -> Result<(), String> {
    let (mut reader, mut writer) = ws.split();
    let printer = session.printer;
    // One token per data message received, for --once.
    let (data_tx, mut data_rx) = mpsc::unbounded_channel::<()>();
    let mut printer_task = tokio::spawn(async move {
        while let Some(item) = reader.recv().await {
            match item {
                Ok(message) => {
                    printer.print(&message, None);
                    if message.is_data() {
                        let _ = data_tx.send(());
                    }
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(reader)
    });
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    let mut sent = 0usize;
    let mut received = 0usize;
    let mut counting = session.once;
    // We asked for the close (end of stdin, /close, --once): the server's
    // answer then ends the session successfully, whatever code it echoes.
    let mut we_closed = false;
    let result = loop {
        if session.once && !stdin_open && received >= sent.max(1) {
            let _ = writer.close(None).await;
            we_closed = true;
            break None;
        }
        tokio::select! {
            line = lines.next_line(), if stdin_open => match line {
                Ok(Some(line)) => {
                    let message = match commands::parse(line, session.slash) {
                        Ok(Line::Send(line)) => match session.input.message(line) {
                            Ok(message) => message,
                            Err(why) => {
                                eprintln!("duplex: line not sent: {why}");
                                continue;
                            }
                        },
                        Ok(Line::Ping(data)) => Message::Ping(data),
                        Ok(Line::Pong(data)) => Message::Pong(data),
                        Ok(Line::Close(frame)) => {
                            let _ = writer.close(Some(frame)).await;
                            we_closed = true;
                            break None;
                        }
                        Err(why) => {
                            eprintln!("duplex: {why}");
                            continue;
                        }
                    };
                    let data = message.is_data();
                    if writer.send(message).await.is_err() {
                        break None;
                    }
                    sent += usize::from(data);
                }
                Ok(None) | Err(_) => {
                    stdin_open = false;
                    if !session.once {
                        let _ = writer.close(None).await;
                        we_closed = true;
                        break None;
                    }
                }
            },
            token = data_rx.recv(), if counting => match token {
                Some(()) => received += 1,
                None => counting = false,
            },
            done = &mut printer_task => break Some(done),
        }
    };
    let done = match result {
        Some(done) => done,
        None => match tokio::time::timeout(duplex::DEFAULT_CLOSE_TIMEOUT, printer_task).await {
            Ok(done) => done,
            Err(_) => return Err("timed out waiting for the server's close".into()),
        },
    };
    let reader = done.map_err(|e| e.to_string())??;
    let ws = duplex::WebSocket::reunite(reader, writer).ok_or("internal: halves do not match")?;
    finish(&ws, we_closed)
}

/// Exit status from how the connection ended: a normal close (1000, or
/// 1001 when the server shuts down) is success, and so is the server's
/// answer to a close we sent.
fn finish(ws: &duplex::ClientSocket, we_closed: bool) -> Result<(), String> {
    match ws.close_code() {
        CloseCode::Abnormal => Err("connection closed abnormally (no close frame)".into()),
        _ if we_closed => Ok(()),
        CloseCode::Normal | CloseCode::Away | CloseCode::NoStatus => Ok(()),
        code => {
            let reason = ws.close_frame().map(|f| f.reason).unwrap_or_default();
            Err(format!("server closed the connection with {code} {reason}")
                .trim_end()
                .to_string())
        }
    }
}
