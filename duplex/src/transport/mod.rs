//! What sits between a socket and the engine: the stream types and the
//! tweaks that make reading and writing cheap.
//!
//! - [`MaybeTlsStream`]: a TCP connection with or without TLS, as one type.
//! - [`ReadAhead`]: reads a socket in large chunks under rustls, which asks
//!   for small ones (feature `tls`).
//! - `buffer_pool`: per-thread pools of read, write and read-ahead buffers,
//!   so that an idle connection holds none and a busy one does not
//!   allocate per message.
//! - `low_water`: the socket's read low-water mark while a large frame
//!   arrives (plain TCP on Unix).
//!
//! None of this is protocol: the engine in `duplex-proto` decides what is
//! read and written; these only decide how.

pub(crate) mod buffer_pool;
#[cfg(unix)]
pub(crate) mod low_water;
#[cfg(feature = "tls")]
mod read_ahead;
mod stream;

#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub use read_ahead::ReadAhead;
pub use stream::MaybeTlsStream;

/// A read low-water mark for the socket under `stream`, where one can be
/// set: plain TCP on Unix. (With TLS, socket bytes and payload bytes
/// differ, and a decrypted record could wait behind a mark never reached.)
#[cfg(unix)]
pub(crate) fn low_water_for(stream: &MaybeTlsStream) -> Option<low_water::LowWater> {
    use std::os::fd::AsRawFd;
    match stream {
        MaybeTlsStream::Plain(tcp) => Some(low_water::LowWater::new(tcp.as_raw_fd())),
        #[cfg(feature = "tls")]
        _ => None,
    }
}
