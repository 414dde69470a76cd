//! The last write of a connection answered over plain HTTP. Its own
//! module so that the request path (`accept`) and the body routes (`body`)
//! share it without importing each other.

use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Writes a response that ends the connection, then closes it.
pub(super) async fn respond<S: AsyncWrite + Unpin>(stream: &mut S, response: &[u8]) {
    let _ = stream.write_all(response).await;
    let _ = stream.shutdown().await;
}
