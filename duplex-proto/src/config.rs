//! Limits and settings of one connection.

/// Settings of a [`Connection`](crate::Connection). Every limit has a
/// default fit for a public server.
///
/// ```
/// use duplex_proto::Config;
/// let config = Config { max_message_size: 1 << 20, ..Config::default() };
/// assert_eq!(config.max_frame_size, 64 << 20);
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// The largest frame payload accepted; a longer frame closes the
    /// connection with 1009 as soon as its header is seen. Default 64 MiB.
    pub max_frame_size: usize,
    /// The largest message accepted (after decompression); default 64 MiB.
    pub max_message_size: usize,
    /// Answer every ping with a pong carrying the same payload (default on).
    pub auto_pong: bool,
    /// Split outgoing data messages into frames of at most this many bytes
    /// (`None`, the default: one frame per message).
    pub max_send_frame_size: Option<usize>,
    /// `permessage-deflate` settings: what a client offers and what a
    /// server accepts. `None` disables compression.
    #[cfg(feature = "deflate")]
    #[cfg_attr(docsrs, doc(cfg(feature = "deflate")))]
    pub deflate: Option<crate::deflate::DeflateConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_size: 64 << 20,
            max_message_size: 64 << 20,
            auto_pong: true,
            max_send_frame_size: None,
            #[cfg(feature = "deflate")]
            deflate: Some(crate::deflate::DeflateConfig::default()),
        }
    }
}
