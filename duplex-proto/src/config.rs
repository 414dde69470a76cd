//! Limits and settings of one connection.

/// The default largest message, 16 MiB (see [`Config::max_message_size`]).
const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 << 20;

/// The largest frame that can carry a message of `message` bytes in one
/// compressed frame: a sixteenth more (and 1 KiB). Compressors expand
/// incompressible data by different amounts: measured on 16 MiB of random
/// bytes, Python websockets' zlib added 0.24%, and zlib-rs at level 1 (fixed
/// Huffman codes) 5.5%, which duplex itself avoids by sending stored blocks.
fn frame_size_for(message: usize) -> usize {
    message.saturating_add(message / 16).saturating_add(1024)
}

/// Settings of a [`Connection`](crate::Connection). Every limit has a
/// default fit for a public server.
///
/// ```
/// use duplex_proto::Config;
/// let config = Config::default().with_max_message_size(1 << 20);
/// assert_eq!(config.max_message_size, 1 << 20);
/// // A compressed frame of an incompressible message is a little longer.
/// assert!(config.max_frame_size > 1 << 20);
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// The largest frame payload accepted; a longer frame closes the
    /// connection with 1009 as soon as its header is seen. Default 17 MiB
    /// and 1 KiB: `max_message_size` plus what a peer's deflate may add to
    /// an incompressible message (see [`Config::with_max_message_size`]).
    pub max_frame_size: usize,
    /// The largest message accepted (after decompression); a longer one
    /// closes the connection with 1009. Default 16 MiB: the largest
    /// messages of the conformance suite (Autobahn 9.1.6, 9.2.6) and of
    /// typical file-in-a-message uses fit, while a peer cannot make one
    /// connection hold more than that (the previous 64 MiB let 24
    /// connections pin 1.6 GB). Python websockets uses 1 MiB and uWS a few
    /// KiB; lower it when messages are known to be small.
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
            max_frame_size: frame_size_for(DEFAULT_MAX_MESSAGE_SIZE),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            auto_pong: true,
            max_send_frame_size: None,
            #[cfg(feature = "deflate")]
            deflate: Some(crate::deflate::DeflateConfig::default()),
        }
    }
}

impl Config {
    /// Sets the largest message and, to match, the largest frame (with
    /// room for deflate's overhead on an incompressible message, so a
    /// message of exactly `bytes` is accepted compressed or not).
    pub fn with_max_message_size(mut self, bytes: usize) -> Config {
        self.max_message_size = bytes;
        self.max_frame_size = frame_size_for(bytes);
        self
    }
}
