//! HTTP header lists as both handshake sides read them.

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
