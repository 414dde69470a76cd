//! Incremental UTF-8 validation for text messages.
//!
//! A text message may arrive in many frames, and a frame in many reads; a
//! code point can be split anywhere. [`Utf8Validator`] checks each piece as
//! it arrives and fails as soon as the bytes seen so far can no longer be the
//! prefix of valid UTF-8 (RFC 6455 §8.1: "fail fast"), not only at the end.

use simdutf8::compat::from_utf8;

/// Validates a byte stream piece by piece.
///
/// ```
/// use duplex_proto::bench::Utf8Validator;
/// let mut v = Utf8Validator::default();
/// let euro = "€".as_bytes(); // e2 82 ac
/// assert!(v.feed(&euro[..1]).is_ok());
/// assert!(v.feed(&euro[1..]).is_ok());
/// assert!(v.is_complete());
/// assert!(v.feed(&[0xff]).is_err()); // never valid in UTF-8
/// ```
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    /// The start of a code point cut off at the end of the last piece.
    pending: [u8; 4],
    pending_len: usize,
}

/// The bytes fed so far cannot be UTF-8, whatever follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

impl std::fmt::Display for InvalidUtf8 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("invalid UTF-8")
    }
}

impl std::error::Error for InvalidUtf8 {}

impl Utf8Validator {
    /// Checks the next piece of the stream.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), InvalidUtf8> {
        if self.pending_len > 0 {
            // Complete the cut-off code point with bytes from this piece.
            let need = char_len(self.pending[0]).ok_or(InvalidUtf8)? - self.pending_len;
            let take = need.min(data.len());
            let mut buf = [0u8; 4];
            buf[..self.pending_len].copy_from_slice(&self.pending[..self.pending_len]);
            buf[self.pending_len..self.pending_len + take].copy_from_slice(&data[..take]);
            let have = self.pending_len + take;
            match from_utf8(&buf[..have]) {
                Ok(_) => self.pending_len = 0,
                Err(e) if e.error_len().is_none() => {
                    // Still a valid prefix, still incomplete (data ran out).
                    self.pending = buf;
                    self.pending_len = have;
                    return Ok(());
                }
                Err(_) => return Err(InvalidUtf8),
            }
            data = &data[take..];
        }
        match from_utf8(data) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                let tail = &data[e.valid_up_to()..];
                self.pending[..tail.len()].copy_from_slice(tail);
                self.pending_len = tail.len();
                Ok(())
            }
            Err(_) => Err(InvalidUtf8),
        }
    }

    /// Whether the stream so far ends on a code point boundary, i.e. is
    /// valid UTF-8 as a whole.
    pub fn is_complete(&self) -> bool {
        self.pending_len == 0
    }

    /// Forgets any state, ready for the next message.
    pub fn reset(&mut self) {
        self.pending_len = 0;
    }
}

/// The length of the code point that `lead` starts, if it can start one.
fn char_len(lead: u8) -> Option<usize> {
    match lead {
        0x00..=0x7f => Some(1),
        0xc2..=0xdf => Some(2),
        0xe0..=0xef => Some(3),
        0xf0..=0xf4 => Some(4),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_split(data: &[u8], at: &[usize]) -> Result<bool, InvalidUtf8> {
        let mut v = Utf8Validator::default();
        let mut last = 0;
        for &i in at {
            v.feed(&data[last..i])?;
            last = i;
        }
        v.feed(&data[last..])?;
        Ok(v.is_complete())
    }

    #[test]
    fn every_split_of_valid_text_is_valid() {
        let text = "κόσμε 😀 a€b".as_bytes();
        for i in 0..=text.len() {
            for j in i..=text.len() {
                assert_eq!(feed_split(text, &[i, j]), Ok(true), "split {i} {j}");
            }
        }
    }

    #[test]
    fn fails_fast_on_an_impossible_prefix() {
        let mut v = Utf8Validator::default();
        // Autobahn 6.4.1: "κόσμε" followed by f4 90 80 80 (> U+10FFFF).
        v.feed("κόσμε".as_bytes()).unwrap();
        assert_eq!(v.feed(&[0xf4]), Ok(()));
        assert_eq!(v.feed(&[0x90]), Err(InvalidUtf8));
    }

    #[test]
    fn rejects_overlong_and_surrogates() {
        for bad in [
            &[0xc0, 0x80][..],
            &[0xed, 0xa0, 0x80],
            &[0xe0, 0x80, 0x80],
            &[0xff],
        ] {
            for i in 0..=bad.len() {
                assert!(feed_split(bad, &[i]) != Ok(true), "{bad:x?} split {i}");
            }
        }
    }

    #[test]
    fn incomplete_at_end_is_not_complete() {
        assert_eq!(feed_split(&[0xe2, 0x82], &[1]), Ok(false));
    }
}
