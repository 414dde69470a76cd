//! How received messages are printed.

use std::io::Write;

use duplex::Message;

/// Prints a text message as its text, a binary one marked with its size
/// and a hex preview; control frames are not shown.
pub(super) fn print_message(out: &mut std::io::Stdout, message: &Message) {
    match message {
        Message::Text(text) => {
            let _ = writeln!(out, "{text}");
        }
        Message::Binary(data) => {
            let _ = writeln!(out, "<binary {} bytes: {}>", data.len(), hex_preview(data));
        }
        _ => return,
    }
    let _ = out.flush();
}

fn hex_preview(data: &[u8]) -> String {
    let mut text: String = data.iter().take(32).map(|b| format!("{b:02x}")).collect();
    if data.len() > 32 {
        text.push('…');
    }
    text
}
