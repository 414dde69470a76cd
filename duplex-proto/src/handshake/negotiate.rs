//! Extension negotiation during the handshake, for both roles.
//!
//! The handshake modules call these with the request's or response's
//! `Sec-WebSocket-Extensions` values and the connection they are about to
//! hand out; what is agreed is switched on in that connection right here,
//! so no caller ever deals with an extension itself. (The model is Python
//! `websockets`' sans-I/O `process_extensions`.) `permessage-deflate` is
//! the one extension duplex speaks; without the `deflate` feature nothing
//! is offered and every offer is declined.

use crate::config::Config;
use crate::connection::Connection;
use crate::error::HandshakeError;

/// Server: reads the client's offers, agrees on what `config` allows,
/// switches it on in `conn`, and returns the `Sec-WebSocket-Extensions`
/// value to answer with (`None`: no extension). A malformed header is
/// refused with 400.
pub(crate) fn server_extensions<'a>(
    offers: impl IntoIterator<Item = &'a str>,
    config: &Config,
    conn: &mut Connection,
) -> Result<Option<String>, HandshakeError> {
    // Offers are read only when there is something to agree to: a server
    // that compresses nothing ignores the header, as RFC 6455 §9.1 allows.
    #[cfg(feature = "deflate")]
    if let Some(deflate) = &config.deflate {
        let offers = crate::extensions::parse_extensions(offers).map_err(|e| {
            HandshakeError::new(400, format!("invalid Sec-WebSocket-Extensions: {e}"))
        })?;
        let params = deflate.server_negotiate(&offers).map_err(|e| {
            // Only an invalid configuration gets here.
            HandshakeError::new(500, format!("permessage-deflate settings: {e}"))
        })?;
        if let Some(params) = params {
            conn.enable_deflate(params);
            return Ok(Some(params.to_header_value()));
        }
    }
    #[cfg(not(feature = "deflate"))]
    let _ = (offers, config, conn);
    Ok(None)
}

/// Client: the `Sec-WebSocket-Extensions` value to offer, if any.
pub(crate) fn client_offer(config: &Config) -> Option<String> {
    #[cfg(feature = "deflate")]
    return config.deflate.as_ref().map(|d| d.client_offer());
    #[cfg(not(feature = "deflate"))]
    {
        let _ = config;
        None
    }
}

/// Client: checks the server's answer against what [`client_offer`]
/// offered and switches on what was agreed in `conn`. An extension we did
/// not offer, or parameters we cannot accept, fail the handshake (RFC 6455
/// §4.1, RFC 7692 §7).
pub(crate) fn client_extensions(
    answer: &[String],
    config: &Config,
    conn: &mut Connection,
) -> Result<(), HandshakeError> {
    if answer.is_empty() {
        return Ok(());
    }
    let parsed = crate::extensions::parse_extensions(answer.iter().map(String::as_str))
        .map_err(|e| HandshakeError::invalid_response(format!("Sec-WebSocket-Extensions: {e}")))?;
    #[cfg(feature = "deflate")]
    if let Some(deflate) = &config.deflate {
        return match deflate.client_accept(&parsed) {
            Ok(Some(params)) => {
                conn.enable_deflate(params);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => Err(HandshakeError::invalid_response(format!(
                "extension negotiation: {e}"
            ))),
        };
    }
    let _ = (config, conn);
    match parsed.first() {
        Some(extension) => Err(HandshakeError::invalid_response(format!(
            "the server accepted extension {:?}, which was not offered",
            extension.name
        ))),
        None => Ok(()),
    }
}
