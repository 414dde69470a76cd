//! Choosing the subprotocol of an upgrade from the client's offer
//! (RFC 6455 §4.2.2): the one place both duplex's own server and the
//! HTTP framework adapters make this choice.

/// Whose order decides when the client offers several subprotocols the
/// server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preference {
    /// The first of the server's list that the client offered.
    Server,
    /// The first the client offered that the server speaks (axum, Node
    /// `ws`).
    Client,
}

/// The subprotocol to agree on: one of `offered` (the client's tokens, in
/// its order) that is also in `ours`, picked by `preference`; `None` when
/// there is no common one, which is no error.
///
/// ```
/// use duplex_proto::handshake::{choose_protocol, Preference};
///
/// let ours = ["chat.v2", "chat.v1"];
/// let offered = ["chat.v1", "chat.v2"];
/// assert_eq!(choose_protocol(&ours, &offered, Preference::Server), Some("chat.v2".into()));
/// assert_eq!(choose_protocol(&ours, &offered, Preference::Client), Some("chat.v1".into()));
/// assert_eq!(choose_protocol(&ours, &["other"], Preference::Server), None);
/// ```
pub fn choose_protocol<A, B>(ours: &[A], offered: &[B], preference: Preference) -> Option<String>
where
    A: AsRef<str>,
    B: AsRef<str>,
{
    match preference {
        Preference::Server => ours
            .iter()
            .map(AsRef::as_ref)
            .find(|p| offered.iter().any(|o| o.as_ref() == *p)),
        Preference::Client => offered
            .iter()
            .map(AsRef::as_ref)
            .find(|p| ours.iter().any(|o| o.as_ref() == *p)),
    }
    .map(str::to_string)
}
