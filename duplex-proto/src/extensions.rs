//! Parsing and formatting the `Sec-WebSocket-Extensions` header.
//!
//! The header carries a comma-separated list of extensions, each a name
//! followed by `;`-separated parameters (RFC 6455 §9.1):
//!
//! ```text
//! Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, x-foo; level="3"
//! ```
//!
//! Names and parameter names are HTTP tokens (RFC 7230 §3.2.6). A parameter
//! value is a token or a quoted string; RFC 6455 adds that a quoted value,
//! once unescaped, must itself be a token, so every parsed value is a plain
//! token and the quoting is gone by the time it reaches the caller. The
//! order of offers is kept because it is the client's order of preference
//! (RFC 7692 §5), and the order of parameters is kept so that an answer can
//! be echoed faithfully.
//!
//! ```
//! use duplex_proto::extensions::parse_extensions;
//!
//! let offers = parse_extensions([
//!     "permessage-deflate; client_max_window_bits",
//!     "permessage-deflate; server_max_window_bits=\"10\"",
//! ])
//! .unwrap();
//! assert_eq!(offers.len(), 2);
//! assert_eq!(offers[0].name, "permessage-deflate");
//! assert_eq!(offers[1].params, [("server_max_window_bits".to_owned(), Some("10".to_owned()))]);
//! assert_eq!(offers[1].to_string(), "permessage-deflate; server_max_window_bits=10");
//! ```

use std::fmt;

/// One extension offer or answer: a name and its parameters, in order.
///
/// A client's header may hold several offers of the same extension (in
/// order of preference); a server's answer holds the one it accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionOffer {
    /// The extension's name, e.g. `permessage-deflate`.
    pub name: String,
    /// The parameters as written: a name and, when given, its value
    /// (already unquoted).
    pub params: Vec<(String, Option<String>)>,
}

impl ExtensionOffer {
    /// An offer of `name` with no parameters, to be filled in with
    /// [`ExtensionOffer::with_param`] when building a header.
    pub fn new(name: impl Into<String>) -> Self {
        ExtensionOffer {
            name: name.into(),
            params: Vec::new(),
        }
    }

    /// Adds a parameter (with or without a value), keeping the order in
    /// which parameters are added.
    pub fn with_param(mut self, name: impl Into<String>, value: Option<String>) -> Self {
        self.params.push((name.into(), value));
        self
    }
}

/// Formats the offer in header syntax: `name; param; param=value`.
///
/// Values that are not tokens (which parsing never produces, but a caller
/// may build) are written as quoted strings so the result stays parseable.
impl fmt::Display for ExtensionOffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        for (name, value) in &self.params {
            write!(f, "; {name}")?;
            match value {
                None => {}
                Some(value) if is_token(value) => write!(f, "={value}")?,
                Some(value) => {
                    f.write_str("=\"")?;
                    for c in value.chars() {
                        if c == '"' || c == '\\' {
                            f.write_str("\\")?;
                        }
                        write!(f, "{c}")?;
                    }
                    f.write_str("\"")?;
                }
            }
        }
        Ok(())
    }
}

/// Why a `Sec-WebSocket-Extensions` value could not be parsed.
///
/// A server that gets this answers 400 Bad Request; a client fails the
/// handshake. The message names what was expected and the byte offset in
/// the offending header value, without echoing the (peer-controlled) value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionParseError {
    reason: &'static str,
    offset: usize,
}

impl ExtensionParseError {
    /// What was wrong, e.g. "expected an extension name".
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// Byte offset in the offending header value where parsing stopped.
    pub fn offset(&self) -> usize {
        self.offset
    }
}

impl fmt::Display for ExtensionParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid Sec-WebSocket-Extensions header: {} at byte {}",
            self.reason, self.offset
        )
    }
}

impl std::error::Error for ExtensionParseError {}

/// Parses all header values (a header may repeat; each value is a
/// comma-separated list) into offers, in order.
///
/// Whitespace is allowed around `,`, `;` and `=`; empty list elements
/// (`a, , b`) are skipped as RFC 7230 §7 asks. Anything else outside the
/// grammar (a missing name, a dangling `;` or `=`, an unterminated quote, a
/// quoted value that is not a token, a stray character) is an error.
pub fn parse_extensions<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<ExtensionOffer>, ExtensionParseError> {
    let mut offers = Vec::new();
    for value in values {
        Parser {
            bytes: value.as_bytes(),
            text: value,
            pos: 0,
        }
        .parse_list(&mut offers)?;
    }
    Ok(offers)
}

/// `tchar` of RFC 7230 §3.2.6.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether `s` is a non-empty RFC 7230 token.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// A cursor over one header value.
struct Parser<'a> {
    bytes: &'a [u8],
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn error(&self, reason: &'static str) -> ExtensionParseError {
        ExtensionParseError {
            reason,
            offset: self.pos,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Skips optional whitespace (`OWS`: spaces and tabs).
    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// Reads a token; `what` names it in the error if there is none.
    fn token(&mut self, what: &'static str) -> Result<&'a str, ExtensionParseError> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        if start == self.pos {
            return Err(self.error(what));
        }
        // Token bytes are ASCII, so these are character boundaries.
        Ok(&self.text[start..self.pos])
    }

    /// Reads a quoted string (the opening quote is next) and returns it
    /// unescaped.
    fn quoted(&mut self) -> Result<String, ExtensionParseError> {
        self.pos += 1;
        let mut value = String::new();
        loop {
            match self.peek() {
                None => return Err(self.error("unterminated quoted string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(value);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(b) if b == b'\t' || (b' '..=b'~').contains(&b) => {
                            value.push(char::from(b));
                            self.pos += 1;
                        }
                        _ => return Err(self.error("invalid escape in quoted string")),
                    }
                }
                // qdtext: HTAB, SP and visible ASCII except `"` and `\`.
                // obs-text (bytes >= 0x80) could never form a token, so it
                // is rejected here already.
                Some(b) if b == b'\t' || (b' '..=b'~').contains(&b) => {
                    value.push(char::from(b));
                    self.pos += 1;
                }
                Some(_) => return Err(self.error("invalid character in quoted string")),
            }
        }
    }

    /// Parses the whole value, appending each extension to `offers`.
    fn parse_list(mut self, offers: &mut Vec<ExtensionOffer>) -> Result<(), ExtensionParseError> {
        loop {
            self.skip_ows();
            match self.peek() {
                None => return Ok(()),
                // An empty list element.
                Some(b',') => {
                    self.pos += 1;
                    continue;
                }
                Some(_) => {}
            }
            let name = self.token("expected an extension name")?;
            let mut offer = ExtensionOffer::new(name);
            loop {
                self.skip_ows();
                match self.peek() {
                    None => break,
                    Some(b',') => {
                        self.pos += 1;
                        break;
                    }
                    Some(b';') => {
                        self.pos += 1;
                        self.skip_ows();
                        let param = self.token("expected a parameter name after ';'")?;
                        self.skip_ows();
                        let value = if self.peek() == Some(b'=') {
                            self.pos += 1;
                            self.skip_ows();
                            if self.peek() == Some(b'"') {
                                let start = self.pos;
                                let value = self.quoted()?;
                                if !is_token(&value) {
                                    return Err(ExtensionParseError {
                                        reason: "quoted parameter value is not a token",
                                        offset: start,
                                    });
                                }
                                Some(value)
                            } else {
                                Some(
                                    self.token("expected a parameter value after '='")?
                                        .to_owned(),
                                )
                            }
                        } else {
                            None
                        };
                        offer.params.push((param.to_owned(), value));
                    }
                    Some(_) => return Err(self.error("expected ';', ',' or the end of the header")),
                }
            }
            offers.push(offer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(name: &str, params: &[(&str, Option<&str>)]) -> ExtensionOffer {
        ExtensionOffer {
            name: name.to_owned(),
            params: params
                .iter()
                .map(|(n, v)| ((*n).to_owned(), v.map(str::to_owned)))
                .collect(),
        }
    }

    fn parse_one(value: &str) -> Result<Vec<ExtensionOffer>, ExtensionParseError> {
        parse_extensions([value])
    }

    #[test]
    fn browser_offer() {
        assert_eq!(
            parse_one("permessage-deflate; client_max_window_bits").unwrap(),
            [offer(
                "permessage-deflate",
                &[("client_max_window_bits", None)]
            )]
        );
    }

    #[test]
    fn several_offers_and_values() {
        let parsed = parse_one(
            "permessage-deflate; client_no_context_takeover; server_max_window_bits=10, \
             permessage-deflate, x-webkit-deflate-frame",
        )
        .unwrap();
        assert_eq!(
            parsed,
            [
                offer(
                    "permessage-deflate",
                    &[
                        ("client_no_context_takeover", None),
                        ("server_max_window_bits", Some("10"))
                    ]
                ),
                offer("permessage-deflate", &[]),
                offer("x-webkit-deflate-frame", &[]),
            ]
        );
    }

    #[test]
    fn repeated_headers_are_concatenated_in_order() {
        let parsed = parse_extensions(["a; x=1", "b", "c;y"]).unwrap();
        assert_eq!(
            parsed,
            [
                offer("a", &[("x", Some("1"))]),
                offer("b", &[]),
                offer("c", &[("y", None)])
            ]
        );
    }

    #[test]
    fn whitespace_around_separators() {
        let parsed = parse_one(" \tfoo ;  a = 1 ;b\t;c= \"2\" ,\tbar ").unwrap();
        assert_eq!(
            parsed,
            [
                offer("foo", &[("a", Some("1")), ("b", None), ("c", Some("2"))]),
                offer("bar", &[]),
            ]
        );
    }

    #[test]
    fn quoted_values_are_unquoted_and_unescaped() {
        let parsed = parse_one(r#"foo; a="10"; b="x\-y"; c="~""#).unwrap();
        assert_eq!(
            parsed,
            [offer(
                "foo",
                &[("a", Some("10")), ("b", Some("x-y")), ("c", Some("~"))]
            )]
        );
    }

    #[test]
    fn empty_elements_are_tolerated() {
        assert_eq!(parse_one("").unwrap(), []);
        assert_eq!(parse_one("   ").unwrap(), []);
        assert_eq!(parse_one(",").unwrap(), []);
        assert_eq!(
            parse_one(", ,a, ,, b ,").unwrap(),
            [offer("a", &[]), offer("b", &[])]
        );
        assert_eq!(parse_extensions(Vec::<&str>::new()).unwrap(), []);
    }

    #[test]
    fn invalid_headers() {
        for bad in [
            ";",
            "; a",
            "foo;",
            "foo; ",
            "foo;;a",
            "foo; =1",
            "foo; a=",
            "foo; a= ;b",
            "foo; a=1=2",
            "foo; a=\"1",
            "foo; a=\"\"",
            "foo; a=\"1 2\"",
            "foo; a=\"x,y\"",
            "foo; a=\"x;y\"",
            "foo; a=\"é\"",
            "foo; a=\"x\\\u{7f}\"",
            "foo bar",
            "foo; a b",
            "foo; a=1 2",
            "fo\"o",
            "foo, =",
            "foo/bar",
            "foo; a=(1)",
            "foo; a=1;",
            "foo; a=é",
            "é",
            "foo\r\n",
            "foo; a=\"1\"x",
        ] {
            assert!(parse_one(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn error_message_is_clear() {
        let err = parse_one("permessage-deflate;").unwrap_err();
        assert_eq!(err.reason(), "expected a parameter name after ';'");
        assert_eq!(err.offset(), 19);
        assert_eq!(
            err.to_string(),
            "invalid Sec-WebSocket-Extensions header: expected a parameter name after ';' at byte 19"
        );
        let err = parse_one("a; b=\"x y\"").unwrap_err();
        assert_eq!(err.reason(), "quoted parameter value is not a token");
        assert_eq!(err.offset(), 5);
        // One bad value among several fails the whole parse.
        assert!(parse_extensions(["a", "b;"]).is_err());
    }

    #[test]
    fn display_formats_header_syntax() {
        let o = offer(
            "permessage-deflate",
            &[
                ("client_max_window_bits", None),
                ("server_max_window_bits", Some("10")),
            ],
        );
        assert_eq!(
            o.to_string(),
            "permessage-deflate; client_max_window_bits; server_max_window_bits=10"
        );
        assert_eq!(offer("x", &[]).to_string(), "x");
        // Non-token values are quoted (and survive a round trip if, once
        // unquoted, they are tokens; otherwise at least the quoting is right).
        let odd = ExtensionOffer::new("x").with_param("a", Some("b c\"\\".to_owned()));
        assert_eq!(odd.to_string(), r#"x; a="b c\"\\""#);
    }

    #[test]
    fn display_round_trips() {
        for header in [
            "permessage-deflate",
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=12",
            "x-custom; a=1; b; c=~!#$%&'*+-.^_`|",
        ] {
            let parsed = parse_one(header).unwrap();
            assert_eq!(parsed.len(), 1);
            assert_eq!(parsed[0].to_string(), header);
            assert_eq!(parse_one(&parsed[0].to_string()).unwrap(), parsed);
        }
    }

    #[test]
    fn arbitrary_input_never_panics() {
        // A cheap deterministic fuzz: every prefix of some tricky inputs.
        let samples = [
            "permessage-deflate; client_max_window_bits=\"15\", x; y=\"a\\\"b\"",
            "a;b=\"\\",
            "\u{e9}\u{1F600}; x=\"\u{e9}\"",
        ];
        for s in samples {
            for (i, _) in s.char_indices() {
                let _ = parse_one(&s[..i]);
            }
        }
    }
}
