//! The answers a server gives besides a WebSocket: [`HttpResponse`] for
//! plain HTTP routes and [`UpgradeDecision`] from an upgrade hook.

use bytes::Bytes;
use duplex_proto::handshake::Headers;

/// A plain HTTP response for a non-WebSocket route (a page, a health
/// check).
///
/// ```no_run
/// use duplex::{HttpResponse, Server};
///
/// # async fn run() -> duplex::Result<()> {
/// Server::new()
///     .http("/healthz", |_req| HttpResponse::text(200, "ok"))
///     .http("/", |_req| HttpResponse::html("<h1>hello</h1>"))
///     .bind("127.0.0.1:8080")
///     .await?
///     .serve()
///     .await
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: String,
    /// Extra headers.
    pub headers: Headers,
    /// The body.
    pub body: Bytes,
}

impl HttpResponse {
    /// A `text/plain` response.
    pub fn text(status: u16, body: impl Into<String>) -> HttpResponse {
        HttpResponse {
            status,
            content_type: "text/plain; charset=utf-8".into(),
            headers: Headers::default(),
            body: Bytes::from(body.into()),
        }
    }

    /// A `text/html` response.
    pub fn html(body: impl Into<Bytes>) -> HttpResponse {
        HttpResponse {
            status: 200,
            content_type: "text/html; charset=utf-8".into(),
            headers: Headers::default(),
            body: body.into(),
        }
    }

    /// An `application/json` response; `body` is sent as given (it is
    /// not checked to be JSON).
    ///
    /// ```
    /// use duplex::HttpResponse;
    /// let r = HttpResponse::json(202, r#"{"recipients":2}"#);
    /// assert_eq!(r.content_type, "application/json");
    /// ```
    pub fn json(status: u16, body: impl Into<String>) -> HttpResponse {
        HttpResponse {
            status,
            content_type: "application/json".into(),
            headers: Headers::default(),
            body: Bytes::from(body.into()),
        }
    }

    /// Adds a header line (e.g. `Allow` to a 405, `WWW-Authenticate` to a
    /// 401). A header that could change the shape of the response (a line
    /// break, a name that is no token) makes the server answer 500 instead.
    ///
    /// ```
    /// use duplex::HttpResponse;
    /// let r = HttpResponse::text(405, "use POST\n").with_header("Allow", "POST");
    /// assert_eq!(r.headers.get("allow"), Some("POST"));
    /// ```
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push(name, value);
        self
    }
}

/// The answer of an upgrade hook ([`Server::on_upgrade`](crate::Server::on_upgrade)).
///
/// ```
/// use duplex::UpgradeDecision;
///
/// fn decide(token: Option<&str>) -> UpgradeDecision {
///     match token {
///         Some("Bearer secret") => UpgradeDecision::accept_protocol("chat.v1"),
///         Some(_) => UpgradeDecision::reject(403, "bad token"),
///         None => UpgradeDecision::reject(401, "missing token"),
///     }
/// }
/// assert!(matches!(decide(None), UpgradeDecision::Reject { status: 401, .. }));
/// ```
#[derive(Debug, Clone)]
pub enum UpgradeDecision {
    /// Accept, optionally choosing one of the offered subprotocols and
    /// adding response headers.
    Accept {
        /// The chosen subprotocol (must be one the client offered).
        protocol: Option<String>,
        /// Extra response headers.
        headers: Headers,
    },
    /// Refuse with an HTTP status (e.g. 401, 403) and a short reason.
    Reject {
        /// The HTTP status.
        status: u16,
        /// The response body.
        reason: String,
    },
}

impl UpgradeDecision {
    /// Accept without a subprotocol.
    pub fn accept() -> Self {
        UpgradeDecision::Accept {
            protocol: None,
            headers: Headers::default(),
        }
    }

    /// Accept with a subprotocol.
    pub fn accept_protocol(protocol: impl Into<String>) -> Self {
        UpgradeDecision::Accept {
            protocol: Some(protocol.into()),
            headers: Headers::default(),
        }
    }

    /// Reject with a status and reason. A status below 300 is no refusal
    /// (101 would claim an upgrade): the server answers 500 instead.
    pub fn reject(status: u16, reason: impl Into<String>) -> Self {
        UpgradeDecision::Reject {
            status,
            reason: reason.into(),
        }
    }
}
