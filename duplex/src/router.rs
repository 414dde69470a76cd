//! Path patterns for [`Server`](crate::Server) routes.
//!
//! A pattern is a path whose segments are literal (`chat`), a named
//! parameter (`{room}`), or a final `*` that matches any rest.

/// A compiled route pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    segments: Vec<Segment>,
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
    Rest,
}

/// The parameters a matched path bound, in pattern order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// The value of a named parameter (percent-decoded).
    ///
    /// ```
    /// use duplex::router::Pattern;
    /// let params = Pattern::new("/chat/{room}").matches("/chat/lobby").unwrap();
    /// assert_eq!(params.get("room"), Some("lobby"));
    /// ```
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// All parameters, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

/// Route parameters matched by another router (an HTTP framework's), for
/// the [`UpgradeRequest`](crate::UpgradeRequest) of a connection it
/// accepted.
///
/// ```
/// use duplex::router::Params;
/// let params: Params = [("room".to_string(), "lobby".to_string())].into_iter().collect();
/// assert_eq!(params.get("room"), Some("lobby"));
/// ```
impl FromIterator<(String, String)> for Params {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Params {
        Params(pairs.into_iter().collect())
    }
}

impl Pattern {
    /// Compiles a pattern such as `/echo`, `/chat/{room}` or `/static/*`.
    pub fn new(pattern: &str) -> Pattern {
        let segments = split(pattern)
            .map(|s| {
                if s == "*" {
                    Segment::Rest
                } else if let Some(name) = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Segment::Param(name.to_string())
                } else {
                    Segment::Literal(s.to_string())
                }
            })
            .collect();
        Pattern {
            segments,
            text: pattern.to_string(),
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Matches a request path; a parameter matches one non-empty segment.
    pub fn matches(&self, path: &str) -> Option<Params> {
        let mut parts = split(path);
        let mut params = Vec::new();
        for segment in &self.segments {
            match segment {
                Segment::Rest => return Some(Params(params)),
                Segment::Literal(lit) => {
                    if parts.next()? != lit {
                        return None;
                    }
                }
                Segment::Param(name) => {
                    let value = parts.next()?;
                    if value.is_empty() {
                        return None;
                    }
                    params.push((name.clone(), percent_decode(value)));
                }
            }
        }
        parts.next().is_none().then_some(Params(params))
    }
}

fn split(path: &str) -> impl Iterator<Item = &str> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    trimmed.split('/').filter({
        let empty = trimmed.is_empty();
        move |_| !empty
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(byte) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_param_and_rest() {
        assert!(Pattern::new("/echo").matches("/echo").is_some());
        assert!(Pattern::new("/echo").matches("/echo/").is_some());
        assert!(Pattern::new("/echo").matches("/echox").is_none());
        assert!(Pattern::new("/").matches("/").is_some());
        assert!(Pattern::new("/").matches("/x").is_none());
        let p = Pattern::new("/chat/{room}");
        assert_eq!(p.matches("/chat/a%20b").unwrap().get("room"), Some("a b"));
        assert!(p.matches("/chat").is_none());
        assert!(p.matches("/chat/a/b").is_none());
        assert!(Pattern::new("/static/*")
            .matches("/static/a/b.css")
            .is_some());
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
