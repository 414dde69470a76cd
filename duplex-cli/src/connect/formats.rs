//! How stdin lines become messages ([`InputArgs`]) and how received
//! messages are shown ([`OutputArgs`]): the options `duplex connect` and
//! `duplex listen` share.

use base64::Engine;
use bytes::Bytes;
use clap::{Args, ValueEnum};
use duplex::Message;

/// How each stdin line is read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum Encoding {
    /// The line as it is (a text message, or binary with --binary).
    #[default]
    Text,
    /// Hex digits (spaces allowed), sent as a binary message.
    Hex,
    /// Standard base64, sent as a binary message.
    Base64,
}

/// The input options.
#[derive(Args, Clone, Debug)]
pub(crate) struct InputArgs {
    /// Send each stdin line as a binary message (its UTF-8 bytes, without
    /// the newline) instead of text.
    #[arg(long)]
    pub(crate) binary: bool,
    /// How stdin lines are encoded: text, or hex / base64 for binary data.
    #[arg(long, value_enum, default_value_t = Encoding::Text, value_name = "FORMAT")]
    pub(crate) input: Encoding,
}

impl InputArgs {
    /// The message a stdin line stands for; an error saying why when the
    /// line is not in the chosen encoding.
    pub(crate) fn message(&self, line: String) -> Result<Message, String> {
        match self.input {
            Encoding::Text if self.binary => Ok(Message::Binary(Bytes::from(line.into_bytes()))),
            Encoding::Text => Ok(Message::text(line)),
            Encoding::Hex => decode_hex(&line)
                .map(|data| Message::Binary(data.into()))
                .ok_or_else(|| format!("not hex: {line:?}")),
            Encoding::Base64 => base64::engine::general_purpose::STANDARD
                .decode(line.trim())
                .map(|data| Message::Binary(data.into()))
                .map_err(|e| format!("not base64 ({e}): {line:?}")),
        }
    }
}

/// Hex digits in pairs, whitespace ignored.
fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

/// The output options.
#[derive(Args, Clone, Copy, Debug)]
pub(crate) struct OutputArgs {
    /// One JSON object per line for each message, e.g.
    /// {"type":"text","size":5,"text":"hello"}; binary data, pings and
    /// pongs as "base64"; the close as {"type":"close","code":1000,"reason":""}.
    #[arg(long)]
    pub(crate) jsonl: bool,
    /// Also print the pings, pongs and close frames that arrive.
    #[arg(long)]
    pub(crate) show_control: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_messages() {
        let args = |binary, input| InputArgs { binary, input };
        assert_eq!(
            args(false, Encoding::Text).message("hi".into()),
            Ok(Message::text("hi"))
        );
        assert_eq!(
            args(true, Encoding::Text).message("hi".into()),
            Ok(Message::binary(b"hi".to_vec()))
        );
        assert_eq!(
            args(false, Encoding::Hex).message("de ad BE ef".into()),
            Ok(Message::binary(vec![0xde, 0xad, 0xbe, 0xef]))
        );
        assert!(args(false, Encoding::Hex).message("abc".into()).is_err());
        assert!(args(false, Encoding::Hex).message("zz".into()).is_err());
        assert_eq!(
            args(false, Encoding::Base64).message("3q2+7w==".into()),
            Ok(Message::binary(vec![0xde, 0xad, 0xbe, 0xef]))
        );
        assert!(args(false, Encoding::Base64).message("***".into()).is_err());
    }
}
