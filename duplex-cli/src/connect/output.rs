//! How received messages are printed, one line each on stdout.
//!
//! Plain (the default, DESIGN.md's contract): a text message as its text;
//! a binary one as `<binary N bytes: HEX>` (the first 32 bytes, `…` after
//! more). With `--show-control` also `<ping N bytes: HEX>`,
//! `<pong N bytes: HEX>` and `<close CODE REASON>` (`<close>` without a
//! code). With `--jsonl`, one JSON object per message, so that a text with
//! a newline stays one line: `type`, `size`, and `text` or `base64`; the
//! close frame (always printed there) has `code` (null without one) and
//! `reason`. `duplex listen` adds `client`, the client's number.

use std::io::Write;

use base64::Engine;
use duplex::{CloseFrame, Message};
use serde_json::{json, Map, Value};

use super::formats::OutputArgs;

/// Prints messages as the output options ask.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Printer {
    options: OutputArgs,
}

impl Printer {
    /// A printer for `options`.
    pub(crate) fn new(options: OutputArgs) -> Printer {
        Printer { options }
    }

    /// Prints `message` (from client number `client` in `duplex listen`),
    /// if these options show it.
    pub(crate) fn print(&self, message: &Message, client: Option<u64>) {
        let line = if self.options.jsonl {
            self.json(message, client).map(|v| v.to_string())
        } else {
            self.plain(message)
        };
        if let Some(line) = line {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }

    fn plain(&self, message: &Message) -> Option<String> {
        let control = self.options.show_control;
        Some(match message {
            Message::Text(text) => text.to_string(),
            Message::Binary(data) => {
                format!("<binary {} bytes: {}>", data.len(), hex_preview(data))
            }
            Message::Ping(data) if control => {
                format!("<ping {} bytes: {}>", data.len(), hex_preview(data))
            }
            Message::Pong(data) if control => {
                format!("<pong {} bytes: {}>", data.len(), hex_preview(data))
            }
            Message::Close(frame) if control => match frame {
                Some(CloseFrame { code, reason }) => {
                    format!("<close {} {reason}", u16::from(*code))
                        .trim_end()
                        .to_string()
                        + ">"
                }
                None => "<close>".into(),
            },
            _ => return None,
        })
    }

    fn json(&self, message: &Message, client: Option<u64>) -> Option<Value> {
        let mut object = Map::new();
        let control = self.options.show_control;
        let base64 = |data: &[u8]| base64::engine::general_purpose::STANDARD.encode(data);
        match message {
            Message::Text(text) => {
                object.insert("type".into(), json!("text"));
                object.insert("size".into(), json!(text.len()));
                object.insert("text".into(), json!(&**text));
            }
            Message::Binary(data) => {
                object.insert("type".into(), json!("binary"));
                object.insert("size".into(), json!(data.len()));
                object.insert("base64".into(), json!(base64(data)));
            }
            Message::Ping(data) | Message::Pong(data) if control => {
                let kind = if matches!(message, Message::Ping(_)) {
                    "ping"
                } else {
                    "pong"
                };
                object.insert("type".into(), json!(kind));
                object.insert("size".into(), json!(data.len()));
                object.insert("base64".into(), json!(base64(data)));
            }
            Message::Close(frame) => {
                object.insert("type".into(), json!("close"));
                object.insert(
                    "code".into(),
                    json!(frame.as_ref().map(|f| u16::from(f.code))),
                );
                let reason = frame.as_ref().map(|f| f.reason.as_str()).unwrap_or("");
                object.insert("reason".into(), json!(reason));
            }
            _ => return None,
        }
        if let Some(client) = client {
            object.insert("client".into(), json!(client));
        }
        Some(Value::Object(object))
    }
}

/// The first 32 bytes in hex, `…` when there are more.
fn hex_preview(data: &[u8]) -> String {
    let mut text: String = data.iter().take(32).map(|b| format!("{b:02x}")).collect();
    if data.len() > 32 {
        text.push('…');
    }
    text
}
