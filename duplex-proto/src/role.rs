//! [`Role`]: which end of a connection this is.

/// Which end of the connection this is. It decides the masking rules
/// (RFC 6455 §5.3), which side of `permessage-deflate` a parameter names
/// (RFC 7692 §7), and who closes the TCP connection first (§7.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Accepted the connection: expects masked frames, sends unmasked ones.
    Server,
    /// Opened the connection: sends masked frames, expects unmasked ones.
    Client,
}
