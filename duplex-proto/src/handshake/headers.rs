//! HTTP header lists as both handshake sides read and write them, and the
//! checks that keep what the application supplies from changing the shape
//! of a request or response head.

use std::fmt;

/// The headers of a handshake request or response, in order, names
/// compared case-insensitively.
///
/// ```
/// use duplex_proto::handshake::Headers;
/// let mut headers = Headers::default();
/// headers.push("Connection", "keep-alive, Upgrade");
/// assert!(headers.has_token("connection", "upgrade"));
/// assert_eq!(headers.get("CONNECTION"), Some("keep-alive, Upgrade"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<(String, String)>,
}

impl Headers {
    /// Adds a header line.
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.entries.push((name.into(), value.into()));
    }

    /// The first value of a header.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// How many lines of a header there are.
    pub fn count(&self, name: &str) -> usize {
        self.get_all(name).count()
    }

    /// The comma-separated elements of every value of a header, trimmed.
    pub fn tokens<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.get_all(name)
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
    }

    /// Whether a comma-separated header holds a token (case-insensitive).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.tokens(name).any(|t| t.eq_ignore_ascii_case(token))
    }

    /// All header lines, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Reads httparse's parsed headers (values that are not UTF-8 are kept
    /// lossily: no header we interpret may contain such bytes).
    pub(crate) fn from_httparse(raw: &[httparse::Header<'_>]) -> Headers {
        Headers {
            entries: raw
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect(),
        }
    }
}

/// A header line (or another part of a head: the host, the request target,
/// a subprotocol) that the application supplied and that cannot be written
/// as given: written, it would start a new header line, break the head for
/// the peer's parser, or name a different header.
///
/// ```
/// use duplex_proto::handshake::check_header;
/// assert!(check_header("X-Token", "abc").is_ok());
/// let error = check_header("X-Token", "abc\r\nSet-Cookie: a=b").unwrap_err();
/// assert_eq!(error.to_string(), "header \"X-Token\": control character 0x0d at byte 3");
/// assert!(check_header("Set-Cookie: a=b; X", "y").is_err()); // not a name
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidHeader {
    /// What was invalid (the header's name, escaped), e.g. `header "X-A"`.
    what: String,
    reason: String,
}

impl InvalidHeader {
    pub(crate) fn new(what: String, reason: String) -> Self {
        InvalidHeader { what, reason }
    }
}

impl fmt::Display for InvalidHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.reason)
    }
}

impl std::error::Error for InvalidHeader {}

/// `tchar` of RFC 9110 §5.6.2.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The first byte of `text` that a field value may not hold (RFC 9110
/// §5.5: controls other than HTAB, and DEL), with its offset.
fn first_control(text: &str) -> Option<(usize, u8)> {
    text.bytes()
        .enumerate()
        .find(|&(_, b)| (b < 0x20 && b != b'\t') || b == 0x7f)
}

/// Checks one header line before it is written: the name must be an HTTP
/// token (RFC 9110 §5.1) and the value free of control characters other
/// than HTAB (§5.5), so that it can neither end its line nor be read back
/// as another header. Non-ASCII (UTF-8) values are allowed. Spaces around
/// the value are not part of it (§5.5); they are left out when it is
/// written, as any parser drops them.
pub fn check_header(name: &str, value: &str) -> Result<(), InvalidHeader> {
    if name.is_empty() {
        return Err(InvalidHeader::new("header name".into(), "empty".into()));
    }
    if let Some(at) = name.bytes().position(|b| !is_tchar(b)) {
        return Err(InvalidHeader::new(
            format!("header name {name:?}"),
            format!("not an HTTP token (byte {at})"),
        ));
    }
    check_value(&format!("header {name:?}"), value)
}

/// Checks a header value (or another text written into a head) for
/// control characters; `what` names it in the error.
pub(crate) fn check_value(what: &str, value: &str) -> Result<(), InvalidHeader> {
    match first_control(value) {
        None => Ok(()),
        Some((at, b)) => Err(InvalidHeader::new(
            what.to_string(),
            format!("control character {b:#04x} at byte {at}"),
        )),
    }
}

/// A value as it goes on the wire: without the spaces around it, which
/// are not part of a field value and which a parser would drop.
pub(crate) fn wire_value(value: &str) -> &str {
    value.trim_matches([' ', '\t'])
}

/// A value made writable whatever it holds, for the callers that cannot
/// report an error: every control character becomes a space.
pub(crate) fn lossy_value(value: &str) -> std::borrow::Cow<'_, str> {
    if first_control(value).is_none() {
        return value.into();
    }
    value
        .chars()
        .map(|c| match c {
            '\t' => c,
            c if c.is_ascii_control() => ' ',
            c => c,
        })
        .collect::<String>()
        .into()
}

impl Headers {
    /// Checks every line with [`check_header`]; the first invalid one is
    /// the error. The handshake calls this on the headers the application
    /// adds; calling it earlier reports a bad header where it was made.
    pub fn validate(&self) -> Result<(), InvalidHeader> {
        self.iter()
            .try_for_each(|(name, value)| check_header(name, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_tokens_and_values_free_of_controls() {
        for (name, value) in [
            ("X-Token", "abc"),
            ("x", ""),
            ("Set-Cookie", "a=b; Path=/; HttpOnly"),
            ("X-Tab", "a\tb"),
            ("X-Utf8", "héllo €"),
            ("!#$%&'*+-.^_`|~09az", "v"),
        ] {
            assert_eq!(check_header(name, value), Ok(()), "{name:?}: {value:?}");
        }
        for (name, value) in [
            ("", "v"),
            ("Set-Cookie: evil=1; X", "y"),
            ("X A", "v"),
            ("X\r\nSet-Cookie", "v"),
            ("X-É", "v"),
            ("X", "a\r\nSet-Cookie: evil=1"),
            ("X", "a\nb"),
            ("X", "a\rb"),
            ("X", "a\0b"),
            ("X", "\x1b[31m"),
            ("X", "a\x7fb"),
        ] {
            assert!(check_header(name, value).is_err(), "{name:?}: {value:?}");
        }
    }

    #[test]
    fn errors_name_the_header_and_the_byte_without_the_value() {
        assert_eq!(
            check_header("X-A", "ab\0secret").unwrap_err().to_string(),
            "header \"X-A\": control character 0x00 at byte 2"
        );
        assert_eq!(
            check_header("X: y", "v").unwrap_err().to_string(),
            "header name \"X: y\": not an HTTP token (byte 1)"
        );
        assert_eq!(
            check_header("", "v").unwrap_err().to_string(),
            "header name: empty"
        );
        let mut headers = Headers::default();
        headers.push("X-Ok", "1");
        headers.push("X-Bad", "2\n");
        assert_eq!(
            headers.validate().unwrap_err().to_string(),
            "header \"X-Bad\": control character 0x0a at byte 1"
        );
    }

    #[test]
    fn lossy_and_wire_values() {
        assert_eq!(lossy_value("a\r\nb\0c\td\x7f"), "a  b c\td ");
        assert_eq!(lossy_value("héllo"), "héllo");
        assert_eq!(wire_value(" \ta b\t "), "a b");
    }
}
