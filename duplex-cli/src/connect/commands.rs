//! Slash commands typed on stdin (`--slash`, or by default on a
//! terminal), as wscat offers them: `/ping [data]`, `/pong [data]`,
//! `/close [code [reason]]`. A line starting with `//` sends the rest
//! after one `/` as a message, so `//help` sends `/help`.

use bytes::Bytes;
use duplex::{CloseCode, CloseFrame};

/// What a stdin line asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// Send this line as a message (in the input encoding).
    Send(String),
    /// Send a ping with this payload.
    Ping(Bytes),
    /// Send an unsolicited pong with this payload.
    Pong(Bytes),
    /// Close with this frame and wait for the server's answer.
    Close(CloseFrame),
}

/// Reads `line`: a command when `slash` is on and it starts with one `/`.
pub(crate) fn parse(line: String, slash: bool) -> Result<Line, String> {
    if !slash || !line.starts_with('/') {
        return Ok(Line::Send(line));
    }
    if let Some(literal) = line.strip_prefix("//") {
        return Ok(Line::Send(format!("/{literal}")));
    }
    let (word, rest) = match line[1..].split_once(' ') {
        Some((word, rest)) => (word, rest),
        None => (&line[1..], ""),
    };
    let payload = |rest: &str| -> Result<Bytes, String> {
        if rest.len() > 125 {
            return Err(format!("/{word}: at most 125 bytes of data"));
        }
        Ok(Bytes::from(rest.as_bytes().to_vec()))
    };
    match word {
        "ping" => Ok(Line::Ping(payload(rest)?)),
        "pong" => Ok(Line::Pong(payload(rest)?)),
        "close" => {
            let rest = rest.trim_start();
            let (code, reason) = match rest.split_once(' ') {
                Some((code, reason)) => (code, reason),
                None => (rest, ""),
            };
            let code = if code.is_empty() {
                CloseCode::Normal
            } else {
                let number: u16 = code
                    .parse()
                    .map_err(|_| format!("/close: {code:?} is not a close code"))?;
                let code = CloseCode::from(number);
                if !code.is_sendable() {
                    return Err(format!(
                        "/close: {number} cannot be sent (use 1000-1003, 1007-1014 or 3000-4999)"
                    ));
                }
                code
            };
            if reason.len() > 123 {
                return Err("/close: the reason is at most 123 bytes".into());
            }
            Ok(Line::Close(CloseFrame::new(code, reason)))
        }
        _ => Err(format!(
            "unknown command /{word} (commands: /ping [data], /pong [data], /close [code [reason]]; //text sends /text)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_literals() {
        let p = |s: &str, slash| parse(s.to_string(), slash);
        assert_eq!(p("/ping", false), Ok(Line::Send("/ping".into())));
        assert_eq!(p("hello", true), Ok(Line::Send("hello".into())));
        assert_eq!(p("//ping", true), Ok(Line::Send("/ping".into())));
        assert_eq!(p("/ping", true), Ok(Line::Ping(Bytes::new())));
        assert_eq!(
            p("/ping a b", true),
            Ok(Line::Ping(Bytes::from_static(b"a b")))
        );
        assert_eq!(p("/pong x", true), Ok(Line::Pong(Bytes::from_static(b"x"))));
        assert_eq!(
            p("/close", true),
            Ok(Line::Close(CloseFrame::new(CloseCode::Normal, "")))
        );
        assert_eq!(
            p("/close 4000 see you", true),
            Ok(Line::Close(CloseFrame::new(
                CloseCode::Other(4000),
                "see you"
            )))
        );
        assert!(p("/close 1006", true).is_err());
        assert!(p("/close x", true).is_err());
        assert!(p("/nope", true).is_err());
    }
}
