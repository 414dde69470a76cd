//! `permessage-deflate` (RFC 7692): negotiation and the per-message codec.
//!
//! Two halves:
//!
//! - **Negotiation.** [`DeflateConfig`] holds what the user wants. A client
//!   sends [`DeflateConfig::client_offer`] and checks the server's answer
//!   with [`DeflateConfig::client_accept`]; a server picks an offer with
//!   [`DeflateConfig::server_negotiate`] and answers with
//!   [`DeflateParams::to_header_value`]. Both produce the agreed
//!   [`DeflateParams`].
//! - **Codec.** [`PerMessageDeflate`] compresses outgoing message payloads
//!   and decompresses incoming ones, with a hard limit on the decompressed
//!   size so that a few kilobytes on the wire cannot become gigabytes in
//!   memory.
//!
//! ```
//! use bytes::BytesMut;
//! use duplex_proto::deflate::{DeflateConfig, DeflateRole, PerMessageDeflate};
//! use duplex_proto::extensions::parse_extensions;
//!
//! let config = DeflateConfig::default();
//! // The server reads the browser's offer and agrees.
//! let offers = parse_extensions(["permessage-deflate; client_max_window_bits"]).unwrap();
//! let params = config.server_negotiate(&offers).unwrap().expect("accepted");
//! // The client checks the server's answer.
//! let answer = parse_extensions([params.to_header_value().as_str()]).unwrap();
//! assert_eq!(config.client_accept(&answer).unwrap(), Some(params));
//!
//! let mut server = PerMessageDeflate::new(DeflateRole::Server, params, &config);
//! let mut client = PerMessageDeflate::new(DeflateRole::Client, params, &config);
//! let mut wire = BytesMut::new();
//! server.compress(b"Hello, Hello, Hello!", &mut wire);
//! let mut message = BytesMut::new();
//! client.decompress(&wire, true, &mut message, 1 << 20).unwrap();
//! assert_eq!(&message[..], b"Hello, Hello, Hello!");
//! ```
//!
//! ## Window sizes and zlib
//!
//! RFC 7692 allows LZ77 windows of 2^8 to 2^15 bytes, but zlib (and so
//! `flate2`) cannot compress raw deflate with a 2^8 window. When the peer
//! asks our compressor for 8 bits we compress with 9: zlib never emits a
//! distance longer than the window minus 262 bytes, which for a 512-byte
//! window is 250, so the stream is valid for a 256-byte window and we can
//! honestly agree to 8 (a test checks the distances). Our decompressor
//! always uses the full 2^15 window, which decodes whatever window the peer
//! compressed with. A user's own limits ([`DeflateConfig`]) stay in 9..=15.

use std::fmt;

use bytes::BytesMut;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::extensions::ExtensionOffer;

/// The extension's registered name (RFC 7692 §7).
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// What a sync flush leaves at the end of a message, which the sender strips
/// and the receiver puts back (RFC 7692 §7.2.1, §7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The largest (and default) window, 2^15 = 32 KiB.
const MAX_WINDOW_BITS: u8 = 15;
/// The smallest window RFC 7692 allows.
const MIN_RFC_WINDOW_BITS: u8 = 8;
/// The smallest window zlib compresses raw deflate with.
const MIN_ZLIB_WINDOW_BITS: u8 = 9;

/// The most output space handed to zlib at once when compressing: bounds the
/// zero-filling of spare space for huge messages.
const COMPRESS_CHUNK: usize = 128 * 1024;
/// The most output space handed to zlib at once when decompressing, so the
/// size limit is checked at least this often.
const DECOMPRESS_CHUNK: usize = 32 * 1024;
/// The least output space handed to zlib at once when decompressing. The
/// first chunk is sized from the input and doubles while zlib fills it, so a
/// small message does not zero-fill (or grow the buffer by) a whole
/// [`DECOMPRESS_CHUNK`].
const MIN_DECOMPRESS_CHUNK: usize = 256;

/// What we offer (client) or accept (server): the user's settings.
///
/// The defaults agree to what browsers offer and keep both windows at the
/// maximum; lower the window bits or turn on no-context-takeover to trade
/// compression ratio for memory per connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateConfig {
    /// zlib compression level, 0 (store only) to 9 (smallest, slowest).
    ///
    /// Default 1, for speed. On the zlib-rs backend level 1 uses fixed
    /// Huffman codes and so skips building code tables for every message:
    /// on ~150-byte chat JSON with context takeover it compressed about ten
    /// times faster than levels 2 to 6 while still removing ~73% of the
    /// bytes (levels 3 and 6: ~76% and ~80%). Servers compress each message
    /// once per recipient, so this is where relays spend their CPU. For
    /// large messages (tens of KiB) level 1 is 1.5 to 2 times as fast as
    /// level 3 but leaves ~26% of the bytes instead of ~17%: raise the level when
    /// bandwidth matters more than CPU.
    pub compression_level: u32,
    /// Messages shorter than this are sent uncompressed.
    ///
    /// Default 32 bytes: below that, deflate's block overhead and the cost
    /// of a flush outweigh the handful of bytes it could save, and short
    /// control-like messages ("ok", small JSON acks) stay cheap.
    pub min_size: usize,
    /// Client: ask the server to reset its compressor after every message.
    /// Server: always do so (and say so in the answer).
    pub server_no_context_takeover: bool,
    /// Client: reset our compressor after every message (and tell the
    /// server). Server: require the client to do so.
    pub client_no_context_takeover: bool,
    /// Largest window (log2 bytes, 9..=15) the server compresses with.
    /// Client: asked for when below 15. Server: a cap on its own window.
    pub server_max_window_bits: u8,
    /// Largest window (log2 bytes, 9..=15) the client compresses with.
    /// Client: a cap on its own window, offered when below 15. Server:
    /// asked of clients that offer `client_max_window_bits`.
    pub client_max_window_bits: u8,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            compression_level: 1,
            min_size: 32,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: MAX_WINDOW_BITS,
            client_max_window_bits: MAX_WINDOW_BITS,
        }
    }
}

/// The agreed parameters of one connection.
///
/// Window bits are the RFC's values (8..=15); 15 means "not limited".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compressor after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message.
    pub client_no_context_takeover: bool,
    /// The server compresses with at most this window (log2 bytes).
    pub server_max_window_bits: u8,
    /// The client compresses with at most this window (log2 bytes).
    pub client_max_window_bits: u8,
}

/// The parameters a bare `permessage-deflate` answer means: context
/// takeover on both sides, 32 KiB windows.
impl Default for DeflateParams {
    fn default() -> Self {
        DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: MAX_WINDOW_BITS,
            client_max_window_bits: MAX_WINDOW_BITS,
        }
    }
}

impl DeflateParams {
    /// The header value that states these parameters (the server's answer).
    ///
    /// `server_max_window_bits` is always stated: RFC 7692 §7.1.2.1 lets a
    /// server include it in any answer, and requires it when the client
    /// asked for a limit, which these parameters alone cannot tell apart.
    /// `client_max_window_bits` is stated only below 15, as it may only
    /// appear when the client offered it, which [`server_negotiate`] ensures.
    ///
    /// [`server_negotiate`]: DeflateConfig::server_negotiate
    pub fn to_header_value(&self) -> String {
        let mut value = String::from(EXTENSION_NAME);
        if self.server_no_context_takeover {
            value.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            value.push_str("; client_no_context_takeover");
        }
        let server_bits = self
            .server_max_window_bits
            .clamp(MIN_RFC_WINDOW_BITS, MAX_WINDOW_BITS);
        value.push_str("; server_max_window_bits=");
        value.push_str(&server_bits.to_string());
        if self.client_max_window_bits < MAX_WINDOW_BITS {
            let client_bits = self.client_max_window_bits.max(MIN_RFC_WINDOW_BITS);
            value.push_str("; client_max_window_bits=");
            value.push_str(&client_bits.to_string());
        }
        value
    }
}

/// Why negotiation failed: an invalid [`DeflateConfig`], or (client) a
/// server answer that does not match what we offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateNegotiationError {
    reason: String,
}

impl DeflateNegotiationError {
    fn new(reason: impl Into<String>) -> Self {
        DeflateNegotiationError {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for DeflateNegotiationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "permessage-deflate negotiation failed: {}", self.reason)
    }
}

impl std::error::Error for DeflateNegotiationError {}

/// Where the parameters come from: an offer (client to server) or an answer
/// (server to client). The grammar differs for `client_max_window_bits`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Offer,
    Answer,
}

/// One permessage-deflate element, checked against RFC 7692 §7.1.
#[derive(Default)]
struct Parsed {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: offered without a value (only valid in an offer).
    client_max_window_bits: Option<Option<u8>>,
}

/// A window size as RFC 7692 writes it: `8` to `15`, no sign, no leading
/// zero.
fn parse_window_bits(value: &str) -> Option<u8> {
    if value.starts_with('0') || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let bits: u8 = value.parse().ok()?;
    (MIN_RFC_WINDOW_BITS..=MAX_WINDOW_BITS)
        .contains(&bits)
        .then_some(bits)
}

/// Reads the parameters of one element, rejecting unknown names,
/// duplicates, and missing, superfluous or out-of-range values.
fn parse_params(
    params: &[(String, Option<String>)],
    direction: Direction,
) -> Result<Parsed, String> {
    let mut parsed = Parsed::default();
    let mut seen = [false; 4];
    for (name, value) in params {
        let name = name.to_ascii_lowercase();
        let index = match name.as_str() {
            "server_no_context_takeover" => 0,
            "client_no_context_takeover" => 1,
            "server_max_window_bits" => 2,
            "client_max_window_bits" => 3,
            _ => return Err(format!("unknown parameter {name}")),
        };
        if std::mem::replace(&mut seen[index], true) {
            return Err(format!("duplicate parameter {name}"));
        }
        let bits = |value: &Option<String>| match value.as_deref() {
            None => Err(format!("{name} needs a value")),
            Some(v) => parse_window_bits(v).ok_or_else(|| format!("invalid value for {name}")),
        };
        match index {
            0 | 1 => {
                if value.is_some() {
                    return Err(format!("{name} takes no value"));
                }
                if index == 0 {
                    parsed.server_no_context_takeover = true;
                } else {
                    parsed.client_no_context_takeover = true;
                }
            }
            2 => parsed.server_max_window_bits = Some(bits(value)?),
            _ => {
                parsed.client_max_window_bits = if value.is_none() && direction == Direction::Offer
                {
                    Some(None)
                } else {
                    Some(Some(bits(value)?))
                };
            }
        }
    }
    Ok(parsed)
}

/// Whether an extension element is permessage-deflate (names compared
/// without regard to ASCII case, as peers vary).
fn is_deflate(offer: &ExtensionOffer) -> bool {
    offer.name.eq_ignore_ascii_case(EXTENSION_NAME)
}

impl DeflateConfig {
    /// Checks the settings: level 0..=9, window bits 9..=15.
    ///
    /// Call it when building a server or client configuration to fail early;
    /// [`server_negotiate`](Self::server_negotiate) and
    /// [`client_accept`](Self::client_accept) call it too.
    pub fn validate(&self) -> Result<(), DeflateNegotiationError> {
        if self.compression_level > 9 {
            return Err(DeflateNegotiationError::new(format!(
                "compression level {} is not in 0..=9",
                self.compression_level
            )));
        }
        for (name, bits) in [
            ("server_max_window_bits", self.server_max_window_bits),
            ("client_max_window_bits", self.client_max_window_bits),
        ] {
            if !(MIN_ZLIB_WINDOW_BITS..=MAX_WINDOW_BITS).contains(&bits) {
                return Err(DeflateNegotiationError::new(format!(
                    "configured {name}={bits} is not in 9..=15"
                )));
            }
        }
        Ok(())
    }

    /// Our window limits, clamped to what zlib can do (for the methods that
    /// cannot report an invalid configuration).
    fn window_limits(&self) -> (u8, u8) {
        (
            self.server_max_window_bits
                .clamp(MIN_ZLIB_WINDOW_BITS, MAX_WINDOW_BITS),
            self.client_max_window_bits
                .clamp(MIN_ZLIB_WINDOW_BITS, MAX_WINDOW_BITS),
        )
    }

    /// Client: the header value to offer.
    ///
    /// Like browsers it always says `client_max_window_bits` (with our cap
    /// as the value when below 15), so the server may shrink our window;
    /// the no-context-takeover flags and `server_max_window_bits` (when
    /// below 15) are added as configured. Window bits outside 9..=15 are
    /// clamped; call [`validate`](Self::validate) to reject them instead.
    pub fn client_offer(&self) -> String {
        let (server_bits, client_bits) = self.window_limits();
        let mut value = String::from(EXTENSION_NAME);
        if self.server_no_context_takeover {
            value.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            value.push_str("; client_no_context_takeover");
        }
        if server_bits < MAX_WINDOW_BITS {
            value.push_str("; server_max_window_bits=");
            value.push_str(&server_bits.to_string());
        }
        value.push_str("; client_max_window_bits");
        if client_bits < MAX_WINDOW_BITS {
            value.push('=');
            value.push_str(&client_bits.to_string());
        }
        value
    }

    /// Server: given the parsed offers of the request (all extensions, in
    /// order), picks the first acceptable permessage-deflate offer.
    ///
    /// `Ok(None)` means decline (no offer, or none acceptable): answer
    /// without the extension and do not compress. Following RFC 7692 §7, an
    /// offer with an unknown parameter, a duplicate, or a missing or invalid
    /// value is declined and the next one is tried; it never fails the
    /// handshake, so a client whose offers are all malformed simply gets no
    /// compression. Every well-formed offer is acceptable, including
    /// `server_max_window_bits=8` (see the module docs).
    ///
    /// The answer ([`DeflateParams::to_header_value`]) echoes what the offer
    /// asked for, narrowed by this configuration: our no-context-takeover
    /// flags are added, our window caps lower the offered windows, and the
    /// client's window is only capped when the offer named
    /// `client_max_window_bits`.
    ///
    /// `Err` only for an invalid configuration (see
    /// [`validate`](Self::validate)), a programming error better caught at
    /// startup.
    pub fn server_negotiate(
        &self,
        offers: &[ExtensionOffer],
    ) -> Result<Option<DeflateParams>, DeflateNegotiationError> {
        self.validate()?;
        let (our_server_bits, our_client_bits) = self.window_limits();
        for offer in offers.iter().filter(|offer| is_deflate(offer)) {
            let Ok(parsed) = parse_params(&offer.params, Direction::Offer) else {
                continue;
            };
            let server_max_window_bits = parsed
                .server_max_window_bits
                .map_or(our_server_bits, |bits| bits.min(our_server_bits));
            let client_max_window_bits = match parsed.client_max_window_bits {
                None => MAX_WINDOW_BITS,
                Some(None) => our_client_bits,
                Some(Some(bits)) => bits.min(our_client_bits),
            };
            return Ok(Some(DeflateParams {
                server_no_context_takeover: parsed.server_no_context_takeover
                    || self.server_no_context_takeover,
                client_no_context_takeover: parsed.client_no_context_takeover
                    || self.client_no_context_takeover,
                server_max_window_bits,
                client_max_window_bits,
            }));
        }
        Ok(None)
    }

    /// Client: validates the server's answer (all extensions it accepted,
    /// parsed) against what [`client_offer`](Self::client_offer) sent.
    ///
    /// `Ok(None)`: the server declined; do not compress. `Err` fails the
    /// handshake (RFC 7692 §7): an extension other than permessage-deflate
    /// (this client offers no other), permessage-deflate twice, an unknown
    /// or duplicate parameter, a missing or invalid value,
    /// `server_max_window_bits` above what we asked for (or missing when we
    /// asked), `server_no_context_takeover` missing when we asked for it, or
    /// `client_max_window_bits` above our cap.
    pub fn client_accept(
        &self,
        answer: &[ExtensionOffer],
    ) -> Result<Option<DeflateParams>, DeflateNegotiationError> {
        self.validate()?;
        let mut accepted = None;
        for extension in answer {
            if !is_deflate(extension) {
                return Err(DeflateNegotiationError::new(format!(
                    "the server accepted extension {:?}, which was not offered",
                    extension.name
                )));
            }
            if accepted.replace(extension).is_some() {
                return Err(DeflateNegotiationError::new(
                    "the server accepted permessage-deflate more than once",
                ));
            }
        }
        let Some(extension) = accepted else {
            return Ok(None);
        };
        let parsed = parse_params(&extension.params, Direction::Answer)
            .map_err(|reason| DeflateNegotiationError::new(format!("invalid answer: {reason}")))?;
        if self.server_no_context_takeover && !parsed.server_no_context_takeover {
            return Err(DeflateNegotiationError::new(
                "the answer lacks the requested server_no_context_takeover",
            ));
        }
        let (asked_server_bits, our_client_bits) = self.window_limits();
        let server_max_window_bits = match parsed.server_max_window_bits {
            Some(bits) if bits > asked_server_bits => {
                return Err(DeflateNegotiationError::new(format!(
                    "server_max_window_bits={bits} is above the requested {asked_server_bits}"
                )));
            }
            Some(bits) => bits,
            None if asked_server_bits < MAX_WINDOW_BITS => {
                return Err(DeflateNegotiationError::new(
                    "the answer lacks the requested server_max_window_bits",
                ));
            }
            None => MAX_WINDOW_BITS,
        };
        let client_max_window_bits = match parsed.client_max_window_bits {
            Some(Some(bits)) if bits > our_client_bits => {
                return Err(DeflateNegotiationError::new(format!(
                    "client_max_window_bits={bits} is above the offered {our_client_bits}"
                )));
            }
            Some(Some(bits)) => bits,
            // Not stated: we still keep the cap we offered.
            _ => our_client_bits,
        };
        Ok(Some(DeflateParams {
            server_no_context_takeover: parsed.server_no_context_takeover,
            client_no_context_takeover: parsed.client_no_context_takeover
                || self.client_no_context_takeover,
            server_max_window_bits,
            client_max_window_bits,
        }))
    }
}

/// Which side of the connection we are, so we know which window and
/// takeover setting applies to our compressor and which to our
/// decompressor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeflateRole {
    /// We opened the connection: we compress with the `client_*` settings.
    Client,
    /// We accepted the connection: we compress with the `server_*` settings.
    Server,
}

/// Why a compressed message could not be decompressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeflateError {
    /// The message would decompress to more than the allowed size (close
    /// with 1009).
    TooBig,
    /// The compressed data is not valid deflate (close with 1007 or 1002).
    Corrupt(String),
}

impl fmt::Display for DeflateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeflateError::TooBig => f.write_str("decompressed message exceeds the size limit"),
            DeflateError::Corrupt(reason) => write!(f, "invalid compressed data: {reason}"),
        }
    }
}

impl std::error::Error for DeflateError {}

/// Per-connection compressor and decompressor, created once
/// permessage-deflate is negotiated.
///
/// The zlib states are allocated on first use (an idle or receive-only
/// connection does not pay for a compressor) and then reused, reset in
/// place when no-context-takeover asks for it, so the steady state does not
/// allocate beyond growing the caller's buffers.
///
/// After an error from [`decompress`](Self::decompress) the connection is
/// expected to fail; the decompressor is reset so no state leaks into
/// another message, but with context takeover the peer's later messages
/// would no longer decode.
#[derive(Debug)]
pub struct PerMessageDeflate {
    level: Compression,
    min_size: usize,
    /// Our compressor's window (9..=15).
    compress_window_bits: u8,
    /// Our no-context-takeover: reset the compressor after each message.
    compress_reset: bool,
    /// The peer's no-context-takeover: reset the decompressor after each
    /// message.
    decompress_reset: bool,
    compressor: Option<Compress>,
    decompressor: Option<Decompress>,
    /// Bytes decompressed so far for the current message (its tail in the
    /// caller's buffer is our window when a final block forces a restart).
    message_len: usize,
    /// The deflate stream just ended with a BFINAL block and nothing has
    /// been fed since.
    after_final_block: bool,
}

impl PerMessageDeflate {
    /// A codec for `role` with the negotiated `params`; `config` supplies
    /// the compression level and minimum size.
    pub fn new(role: DeflateRole, params: DeflateParams, config: &DeflateConfig) -> Self {
        let (our_bits, our_reset, peer_reset) = match role {
            DeflateRole::Server => (
                params.server_max_window_bits,
                params.server_no_context_takeover,
                params.client_no_context_takeover,
            ),
            DeflateRole::Client => (
                params.client_max_window_bits,
                params.client_no_context_takeover,
                params.server_no_context_takeover,
            ),
        };
        PerMessageDeflate {
            level: Compression::new(config.compression_level.min(9)),
            min_size: config.min_size,
            // An agreed 8 is compressed with 9; see the module docs.
            compress_window_bits: our_bits.clamp(MIN_ZLIB_WINDOW_BITS, MAX_WINDOW_BITS),
            compress_reset: our_reset,
            decompress_reset: peer_reset,
            compressor: None,
            decompressor: None,
            message_len: 0,
            after_final_block: false,
        }
    }

    /// Whether a message of this length should be compressed (at least
    /// [`DeflateConfig::min_size`] bytes). Smaller ones go out as they are,
    /// with RSV1 clear.
    pub fn should_compress(&self, len: usize) -> bool {
        len >= self.min_size
    }

    /// Compresses one whole message payload, appending the compressed bytes
    /// (without the trailing `00 00 ff ff`) to `out`.
    ///
    /// Applies our window and, with our no-context-takeover, starts afresh
    /// for the next message. An empty payload becomes the single byte `00`
    /// (RFC 7692 §7.2.3.6).
    pub fn compress(&mut self, payload: &[u8], out: &mut BytesMut) {
        let (level, window_bits) = (self.level, self.compress_window_bits);
        let compressor = self
            .compressor
            .get_or_insert_with(|| Compress::new_with_window_bits(level, false, window_bits));
        let start = out.len();
        if !deflate_sync(compressor, payload, out) {
            // zlib reports errors only for a broken stream state, never for
            // data; should it happen anyway, start a fresh stream and send
            // the payload in stored blocks, which any receiver decodes.
            compressor.reset();
            out.truncate(start);
            write_stored(payload, out);
        }
        if out[start..].ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        if out.len() == start {
            // Nothing left (zlib emits nothing for an empty payload right
            // after a flush): the header byte of an empty stored block,
            // which the receiver's appended tail completes.
            out.extend_from_slice(&[0x00]);
        }
        if self.compress_reset {
            compressor.reset();
        }
    }

    /// Decompresses one received frame's payload of a compressed message,
    /// appending to `out`.
    ///
    /// `fin`: this is the last frame of the message; the `00 00 ff ff` tail
    /// is then fed too and, with the peer's no-context-takeover, the
    /// decompressor starts afresh for the next message.
    ///
    /// `limit`: the most bytes `out` may hold for this message, counting
    /// what is already in it (so pass the same buffer for every frame of a
    /// message). Output is produced in bounded chunks and checked as it
    /// goes, so exceeding the limit returns [`DeflateError::TooBig`] without
    /// inflating the rest, and `out` grows to at most `limit + 1` bytes.
    /// Invalid data returns [`DeflateError::Corrupt`]. After an error `out`
    /// holds partial output, to be discarded with the message.
    ///
    /// A message may contain blocks with BFINAL set (RFC 7692 §7.2.3.4);
    /// decoding continues after them with the window primed from this
    /// message's output. (Only up to this message's own output: a peer
    /// that ends a deflate stream and then refers back into earlier
    /// messages is not supported.)
    pub fn decompress(
        &mut self,
        data: &[u8],
        fin: bool,
        out: &mut BytesMut,
        limit: usize,
    ) -> Result<(), DeflateError> {
        let mut result = self.inflate(data, false, out, limit);
        if fin && result.is_ok() {
            result = self.inflate(&TAIL, true, out, limit);
        }
        if let Some(decompressor) = self.decompressor.as_mut() {
            if fin && result.is_ok() && self.after_final_block && !self.decompress_reset {
                // The stream ended with this message; keep its window for
                // the next message (context takeover).
                result = restart_stream(decompressor, out, self.message_len);
            }
            if result.is_err() || (fin && self.decompress_reset) {
                decompressor.reset(false);
            }
        }
        if result.is_err() || fin {
            self.message_len = 0;
            self.after_final_block = false;
        }
        result
    }

    /// Feeds `input` to the decompressor, appending output to `out` in
    /// bounded chunks. `tail`: this is the appended `00 00 ff ff`.
    fn inflate(
        &mut self,
        mut input: &[u8],
        tail: bool,
        out: &mut BytesMut,
        limit: usize,
    ) -> Result<(), DeflateError> {
        if tail && self.after_final_block {
            // The message ended exactly with a final block; the tail is not
            // part of any stream.
            return Ok(());
        }
        let decompressor = self
            .decompressor
            .get_or_insert_with(|| Decompress::new_with_window_bits(false, MAX_WINDOW_BITS));
        let mut chunk_size = input
            .len()
            .saturating_mul(4)
            .clamp(MIN_DECOMPRESS_CHUNK, DECOMPRESS_CHUNK);
        loop {
            if self.after_final_block && !input.is_empty() {
                // More blocks follow a final block: a new stream that shares
                // the window.
                restart_stream(decompressor, out, self.message_len)?;
                self.after_final_block = false;
            }
            let len = out.len();
            if len > limit {
                return Err(DeflateError::TooBig);
            }
            // One byte beyond the limit is enough to know it is exceeded.
            let chunk = chunk_size.min((limit - len).saturating_add(1));
            out.resize(len + chunk, 0);
            let (before_in, before_out) = (decompressor.total_in(), decompressor.total_out());
            let status = decompressor.decompress(input, &mut out[len..], FlushDecompress::None);
            let consumed = (decompressor.total_in() - before_in) as usize;
            let produced = (decompressor.total_out() - before_out) as usize;
            out.truncate(len + produced);
            input = &input[consumed..];
            self.message_len += produced;
            let status = status.map_err(|e| DeflateError::Corrupt(e.to_string()))?;
            if out.len() > limit {
                return Err(DeflateError::TooBig);
            }
            if status == Status::StreamEnd {
                self.after_final_block = true;
            }
            if produced < chunk && input.is_empty() {
                // All input consumed and zlib had room to spare: done.
                return Ok(());
            }
            if produced == chunk {
                chunk_size = (chunk_size * 2).min(DECOMPRESS_CHUNK);
            }
            if produced == 0 && consumed == 0 && status != Status::StreamEnd {
                return Err(DeflateError::Corrupt(
                    "decompression made no progress".into(),
                ));
            }
        }
    }
}

/// Compresses `input` with a sync flush, appending to `out`; false if zlib
/// failed or stalled.
fn deflate_sync(compressor: &mut Compress, mut input: &[u8], out: &mut BytesMut) -> bool {
    loop {
        let len = out.len();
        // Enough for incompressible input plus block headers in one go,
        // bounded for huge messages.
        let chunk = (input.len() + input.len() / 1024 + 64).min(COMPRESS_CHUNK);
        out.resize(len + chunk, 0);
        let (before_in, before_out) = (compressor.total_in(), compressor.total_out());
        let status = compressor.compress(input, &mut out[len..], FlushCompress::Sync);
        let consumed = (compressor.total_in() - before_in) as usize;
        let produced = (compressor.total_out() - before_out) as usize;
        out.truncate(len + produced);
        input = &input[consumed..];
        if status.is_err() {
            return false;
        }
        // With a sync flush, zlib is done once it leaves output space over.
        if input.is_empty() && produced < chunk {
            return true;
        }
        if consumed == 0 && produced == 0 {
            return false;
        }
    }
}

/// Writes `payload` as stored (uncompressed) deflate blocks in the
/// permessage-deflate form: the receiver's appended tail completes the
/// final empty block.
fn write_stored(payload: &[u8], out: &mut BytesMut) {
    for block in payload.chunks(usize::from(u16::MAX)) {
        // BFINAL 0, BTYPE 00, padding; then LEN and its complement.
        let len = block.len() as u16;
        out.extend_from_slice(&[0x00]);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&[0x00]);
}

/// Starts a new raw deflate stream after a final block, primed with the
/// last (up to 32 KiB) bytes this message produced so back-references keep
/// working.
fn restart_stream(
    decompressor: &mut Decompress,
    out: &BytesMut,
    message_len: usize,
) -> Result<(), DeflateError> {
    decompressor.reset(false);
    let window = message_len.min(out.len()).min(1 << MAX_WINDOW_BITS);
    if window > 0 {
        decompressor
            .set_dictionary(&out[out.len() - window..])
            .map_err(|e| DeflateError::Corrupt(e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extensions::parse_extensions;

    // ---- helpers ----------------------------------------------------------

    fn params(snct: bool, cnct: bool, sbits: u8, cbits: u8) -> DeflateParams {
        DeflateParams {
            server_no_context_takeover: snct,
            client_no_context_takeover: cnct,
            server_max_window_bits: sbits,
            client_max_window_bits: cbits,
        }
    }

    fn pair(p: DeflateParams, level: u32) -> (PerMessageDeflate, PerMessageDeflate) {
        let config = DeflateConfig {
            compression_level: level,
            min_size: 0,
            ..DeflateConfig::default()
        };
        (
            PerMessageDeflate::new(DeflateRole::Server, p, &config),
            PerMessageDeflate::new(DeflateRole::Client, p, &config),
        )
    }

    fn compress(codec: &mut PerMessageDeflate, payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        codec.compress(payload, &mut out);
        out.to_vec()
    }

    fn decompress(
        codec: &mut PerMessageDeflate,
        frames: &[&[u8]],
    ) -> Result<Vec<u8>, DeflateError> {
        let mut out = BytesMut::new();
        for (i, frame) in frames.iter().enumerate() {
            codec.decompress(frame, i + 1 == frames.len(), &mut out, 1 << 24)?;
        }
        Ok(out.to_vec())
    }

    fn receiver(peer_no_context_takeover: bool) -> PerMessageDeflate {
        // A client whose server resets (or not) after each message.
        pair(params(peer_no_context_takeover, false, 15, 15), 6).1
    }

    fn offers(header: &str) -> Vec<ExtensionOffer> {
        parse_extensions([header]).unwrap()
    }

    fn negotiate(config: &DeflateConfig, header: &str) -> Option<String> {
        config
            .server_negotiate(&offers(header))
            .unwrap()
            .map(|p| p.to_header_value())
    }

    const HELLO: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

    // ---- RFC 7692 §7.2.3 examples -----------------------------------------

    #[test]
    fn rfc_hello_compresses_to_the_example() {
        for level in 1..=9 {
            let (mut server, _) = pair(params(false, false, 15, 15), level);
            assert_eq!(compress(&mut server, b"Hello"), HELLO, "level {level}");
        }
    }

    #[test]
    fn rfc_hello_decompresses_whole_and_fragmented() {
        let mut rx = receiver(false);
        assert_eq!(decompress(&mut rx, &[&HELLO]).unwrap(), b"Hello");
        // §7.2.3.1: the same message split over two frames.
        assert_eq!(
            decompress(&mut rx, &[&HELLO[..3], &HELLO[3..]]).unwrap(),
            b"Hello"
        );
        // Split at every point, including empty frames.
        for cut in 0..=HELLO.len() {
            let mut rx = receiver(true);
            let frames: [&[u8]; 3] = [&HELLO[..cut], &[], &HELLO[cut..]];
            assert_eq!(decompress(&mut rx, &frames).unwrap(), b"Hello", "cut {cut}");
        }
    }

    #[test]
    fn rfc_sharing_the_window() {
        // §7.2.3.2: with context takeover the second "Hello" is a match.
        let second = [0xf2, 0x00, 0x11, 0x00, 0x00];
        for level in 1..=9 {
            let (mut server, mut client) = pair(params(false, false, 15, 15), level);
            assert_eq!(compress(&mut server, b"Hello"), HELLO);
            let shared = compress(&mut server, b"Hello");
            if level >= 2 {
                assert_eq!(shared, second, "level {level}");
            } else {
                // zlib-rs's level 1 writes the same match in its own way.
                assert!(shared.len() <= second.len(), "level 1: {shared:02x?}");
            }
            assert_eq!(decompress(&mut client, &[&HELLO]).unwrap(), b"Hello");
            assert_eq!(decompress(&mut client, &[&shared]).unwrap(), b"Hello");
        }
        let mut rx = receiver(false);
        assert_eq!(decompress(&mut rx, &[&HELLO]).unwrap(), b"Hello");
        assert_eq!(decompress(&mut rx, &[&second]).unwrap(), b"Hello");

        // Without context takeover both messages are the same.
        let (mut server, mut client) = pair(params(true, false, 15, 15), 6);
        assert_eq!(compress(&mut server, b"Hello"), HELLO);
        assert_eq!(compress(&mut server, b"Hello"), HELLO);
        assert_eq!(decompress(&mut client, &[&HELLO]).unwrap(), b"Hello");
        assert_eq!(decompress(&mut client, &[&HELLO]).unwrap(), b"Hello");
        // ...and a receiver that resets cannot decode the shared form.
        let mut rx = receiver(true);
        decompress(&mut rx, &[&HELLO]).unwrap();
        assert!(matches!(
            decompress(&mut rx, &[&second]),
            Err(DeflateError::Corrupt(_))
        ));
    }

    #[test]
    fn rfc_no_compression_block() {
        // §7.2.3.3: a stored block, then the start of the flush block.
        let stored = [
            0x00, 0x05, 0x00, 0xfa, 0xff, b'H', b'e', b'l', b'l', b'o', 0x00,
        ];
        let mut rx = receiver(false);
        assert_eq!(decompress(&mut rx, &[&stored]).unwrap(), b"Hello");
        assert_eq!(
            decompress(&mut rx, &[&[0xf2, 0x00, 0x11, 0x00, 0x00]]).unwrap(),
            b"Hello"
        );
    }

    #[test]
    fn rfc_bfinal_block() {
        // §7.2.3.4: a final block, then the header byte of an empty block.
        let bfinal = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        let mut rx = receiver(false);
        assert_eq!(decompress(&mut rx, &[&bfinal]).unwrap(), b"Hello");
        // The stream goes on, and with context takeover still sees "Hello".
        assert_eq!(
            decompress(&mut rx, &[&[0xf2, 0x00, 0x11, 0x00, 0x00]]).unwrap(),
            b"Hello"
        );
        assert_eq!(
            decompress(&mut rx, &[&bfinal[..3], &bfinal[3..]]).unwrap(),
            b"Hello"
        );
        assert_eq!(decompress(&mut rx, &[&HELLO]).unwrap(), b"Hello");

        // A message that ends right after the final block (no trailing 00).
        let mut rx = receiver(false);
        assert_eq!(decompress(&mut rx, &[&bfinal[..7]]).unwrap(), b"Hello");
        assert_eq!(
            decompress(&mut rx, &[&[0xf2, 0x00, 0x11, 0x00, 0x00]]).unwrap(),
            b"Hello"
        );
        assert_eq!(decompress(&mut rx, &[&HELLO]).unwrap(), b"Hello");
    }

    #[test]
    fn rfc_two_blocks_in_one_message() {
        // §7.2.3.5: "He" flushed, then "llo".
        let two = [
            0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
        ];
        let mut rx = receiver(false);
        assert_eq!(decompress(&mut rx, &[&two]).unwrap(), b"Hello");
        assert_eq!(
            decompress(&mut rx, &[&two[..5], &two[5..9], &two[9..]]).unwrap(),
            b"Hello"
        );
    }

    #[test]
    fn rfc_empty_message_and_fragment() {
        // §7.2.3.6: an empty message is the single byte 00, with and
        // without context takeover, at the start and after other messages.
        for reset in [false, true] {
            let (mut server, mut client) = pair(params(reset, false, 15, 15), 6);
            assert_eq!(compress(&mut server, b""), [0x00]);
            assert_eq!(compress(&mut server, b""), [0x00]);
            let hello = compress(&mut server, b"Hello");
            assert_eq!(compress(&mut server, b""), [0x00]);
            assert_eq!(decompress(&mut client, &[&[0x00]]).unwrap(), b"");
            assert_eq!(decompress(&mut client, &[&[0x00]]).unwrap(), b"");
            assert_eq!(decompress(&mut client, &[&hello]).unwrap(), b"Hello");
            assert_eq!(decompress(&mut client, &[&[0x00]]).unwrap(), b"");
            // An empty final fragment after a non-empty one.
            let hello = compress(&mut server, b"Hello");
            assert_eq!(decompress(&mut client, &[&hello, &[]]).unwrap(), b"Hello");
        }
    }

    #[test]
    fn corrupt_data_is_an_error() {
        for bad in [
            &[0xff, 0xff, 0xff][..],
            &[0x07],
            &[0x00, 0x05, 0x00, 0x00, 0x00],
        ] {
            let mut rx = receiver(false);
            assert!(
                matches!(decompress(&mut rx, &[bad]), Err(DeflateError::Corrupt(_))),
                "{bad:02x?}"
            );
            // The codec stays usable for a fresh stream.
            assert_eq!(decompress(&mut rx, &[&HELLO]).unwrap(), b"Hello");
        }
        // Data after a final block that does not form blocks itself.
        let mut rx = receiver(false);
        let junk = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0xff, 0xff];
        assert!(decompress(&mut rx, &[&junk]).is_err());
        assert_eq!(
            DeflateError::Corrupt("x".into()).to_string(),
            "invalid compressed data: x"
        );
        assert_eq!(
            DeflateError::TooBig.to_string(),
            "decompressed message exceeds the size limit"
        );
    }

    #[test]
    fn stored_fallback_decodes() {
        let payload: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for data in [&payload[..], b"", b"x"] {
            let mut out = BytesMut::new();
            write_stored(data, &mut out);
            let mut rx = receiver(false);
            assert_eq!(decompress(&mut rx, &[&out]).unwrap(), data);
        }
    }

    // ---- limits -----------------------------------------------------------

    #[test]
    fn deflate_bomb_stops_at_the_limit() {
        let zeros = vec![0u8; 64 << 20];
        let (mut server, _) = pair(params(false, false, 15, 15), 9);
        let bomb = compress(&mut server, &zeros);
        assert!(bomb.len() < 128 << 10, "bomb is {} bytes", bomb.len());

        let limit = 1 << 20;
        let mut client = receiver(false);
        let mut out = BytesMut::new();
        // Fed in 1 KiB frames, the limit trips long before the end.
        let frames: Vec<&[u8]> = bomb.chunks(1024).collect();
        let mut failed_at = None;
        for (i, frame) in frames.iter().enumerate() {
            match client.decompress(frame, i + 1 == frames.len(), &mut out, limit) {
                Ok(()) => assert!(out.len() <= limit),
                Err(e) => {
                    assert_eq!(e, DeflateError::TooBig);
                    failed_at = Some(i);
                    break;
                }
            }
        }
        let failed_at = failed_at.expect("the bomb must be refused");
        assert!(
            failed_at < frames.len() / 16,
            "failed at frame {failed_at} of {}",
            frames.len()
        );
        assert!(out.len() <= limit + 1);
        assert!(
            out.capacity() <= 2 * limit + 2 * DECOMPRESS_CHUNK,
            "capacity {}",
            out.capacity()
        );

        // In one piece: the same, and the output never passes limit + 1.
        let mut client = receiver(false);
        let mut out = BytesMut::new();
        assert_eq!(
            client.decompress(&bomb, true, &mut out, limit),
            Err(DeflateError::TooBig)
        );
        assert!(out.len() <= limit + 1);
        assert!(out.capacity() <= 2 * limit + 2 * DECOMPRESS_CHUNK);
    }

    #[test]
    fn limit_is_inclusive_and_counts_existing_output() {
        let data = vec![b'a'; 1000];
        let (mut server, _) = pair(params(true, true, 15, 15), 6);
        let wire = compress(&mut server, &data);
        let mut rx = receiver(true);
        let mut out = BytesMut::new();
        rx.decompress(&wire, true, &mut out, 1000).unwrap();
        assert_eq!(out.len(), 1000);

        let mut out = BytesMut::new();
        assert_eq!(
            rx.decompress(&wire, true, &mut out, 999),
            Err(DeflateError::TooBig)
        );

        // Output of earlier frames counts.
        let mut out = BytesMut::from(&[1u8; 10][..]);
        assert_eq!(
            rx.decompress(&wire, true, &mut out, 1009),
            Err(DeflateError::TooBig)
        );
        let mut out = BytesMut::from(&[1u8; 10][..]);
        rx.decompress(&wire, true, &mut out, 1010).unwrap();
        assert_eq!(&out[10..], &data[..]);
        // An empty message fits a zero limit.
        let mut out = BytesMut::new();
        rx.decompress(&[0x00], true, &mut out, 0).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn should_compress_uses_min_size() {
        let config = DeflateConfig::default();
        let codec = PerMessageDeflate::new(DeflateRole::Server, DeflateParams::default(), &config);
        assert!(!codec.should_compress(config.min_size - 1));
        assert!(codec.should_compress(config.min_size));
        let config = DeflateConfig {
            min_size: 0,
            ..config
        };
        let codec = PerMessageDeflate::new(DeflateRole::Server, DeflateParams::default(), &config);
        assert!(codec.should_compress(0));
    }

    #[test]
    fn codecs_are_created_lazily_and_reused() {
        let (mut server, mut client) = pair(params(true, true, 12, 10), 6);
        assert!(server.compressor.is_none() && server.decompressor.is_none());
        let wire = compress(&mut server, b"some text, some text");
        assert!(server.compressor.is_some() && server.decompressor.is_none());
        assert_eq!(
            decompress(&mut client, &[&wire]).unwrap(),
            b"some text, some text"
        );
        assert!(client.compressor.is_none() && client.decompressor.is_some());
    }

    // ---- round trips ------------------------------------------------------

    /// Compresses every message with `tx` and decompresses it with `rx`,
    /// splitting the compressed payload into frames of `frame` bytes.
    fn round_trip(
        tx: &mut PerMessageDeflate,
        rx: &mut PerMessageDeflate,
        messages: &[Vec<u8>],
        frame: usize,
    ) {
        let mut wire = BytesMut::new();
        let mut out = BytesMut::new();
        for message in messages {
            wire.clear();
            out.clear();
            tx.compress(message, &mut wire);
            let frames: Vec<&[u8]> = if wire.is_empty() {
                vec![&[]]
            } else {
                wire.chunks(frame).collect()
            };
            for (i, chunk) in frames.iter().enumerate() {
                rx.decompress(chunk, i + 1 == frames.len(), &mut out, message.len())
                    .unwrap();
            }
            assert_eq!(&out[..], &message[..]);
        }
    }

    /// Data of various compressibility from a seed: runs, repeats and noise.
    fn sample(seed: u64, len: usize) -> Vec<u8> {
        let mut state = seed | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut data = Vec::with_capacity(len);
        while data.len() < len {
            let r = next();
            let run = (r >> 8) as usize % 300 + 1;
            match r % 3 {
                0 => data.extend(std::iter::repeat(r as u8).take(run)),
                1 if !data.is_empty() => {
                    let from = (r >> 20) as usize % data.len();
                    let n = run.min(data.len() - from);
                    data.extend_from_within(from..from + n);
                }
                _ => data.extend((0..run).map(|_| next() as u8)),
            }
        }
        data.truncate(len);
        data
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        #[test]
        fn round_trip_all_windows(
            seed: u64,
            lens in proptest::collection::vec(0usize..200 * 1024, 1..4),
            server_bits in 8u8..=15,
            client_bits in 8u8..=15,
            server_reset: bool,
            client_reset: bool,
            level in 0u32..=9,
            frame in 1usize..70_000,
        ) {
            let p = params(server_reset, client_reset, server_bits, client_bits);
            let messages: Vec<Vec<u8>> = lens
                .iter()
                .enumerate()
                .map(|(i, &len)| sample(seed.wrapping_add(i as u64), len))
                .collect();
            let (mut server, mut client) = pair(p, level);
            // Server to client and client to server, on the same codecs.
            round_trip(&mut server, &mut client, &messages, frame);
            round_trip(&mut client, &mut server, &messages, frame);
            round_trip(&mut server, &mut client, &messages, frame);
        }

        #[test]
        fn small_messages_round_trip(
            messages in proptest::collection::vec(proptest::collection::vec(0u8..4, 0..64), 1..20),
            reset: bool,
        ) {
            let (mut server, mut client) = pair(params(reset, reset, 15, 15), 3);
            round_trip(&mut server, &mut client, &messages, 3);
            round_trip(&mut client, &mut server, &messages, 1);
        }

        #[test]
        fn garbage_never_panics(
            frames in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64), 1..4),
            reset: bool,
            limit in 0usize..4096,
        ) {
            let mut rx = receiver(reset);
            let mut out = BytesMut::new();
            for (i, frame) in frames.iter().enumerate() {
                if rx.decompress(frame, i + 1 == frames.len(), &mut out, limit).is_err() {
                    break;
                }
                proptest::prop_assert!(out.len() <= limit);
            }
            proptest::prop_assert!(out.len() <= limit + 1);
            // Whatever happened, a fresh message still decodes.
            let mut rx = receiver(true);
            proptest::prop_assert_eq!(decompress(&mut rx, &[&HELLO]).unwrap(), b"Hello".to_vec());
        }
    }

    #[test]
    fn ratio_sanity() {
        let text =
            "{\"type\":\"chat\",\"room\":\"general\",\"user\":\"alice\",\"text\":\"hello there\"}"
                .repeat(50);
        let (mut server, mut client) = pair(params(false, false, 15, 15), 3);
        let wire = compress(&mut server, text.as_bytes());
        assert!(
            wire.len() < text.len() / 10,
            "{} -> {}",
            text.len(),
            wire.len()
        );
        assert_eq!(decompress(&mut client, &[&wire]).unwrap(), text.as_bytes());
    }

    // ---- 8-bit windows ----------------------------------------------------

    /// A minimal independent inflater for checking our output: decodes a raw
    /// deflate stream and reports the longest back-reference distance.
    mod inflate {
        struct Bits<'a> {
            data: &'a [u8],
            pos: usize,
        }

        impl Bits<'_> {
            fn bit(&mut self) -> Option<u32> {
                let byte = *self.data.get(self.pos / 8)?;
                let bit = (byte >> (self.pos % 8)) & 1;
                self.pos += 1;
                Some(u32::from(bit))
            }

            fn bits(&mut self, n: u32) -> Option<u32> {
                let mut value = 0;
                for i in 0..n {
                    value |= self.bit()? << i;
                }
                Some(value)
            }
        }

        /// A canonical Huffman code: how many codes of each length, and the
        /// symbols in code order.
        struct Huffman {
            counts: [u16; 16],
            symbols: Vec<u16>,
        }

        impl Huffman {
            fn new(lengths: &[u8]) -> Huffman {
                let mut counts = [0u16; 16];
                for &l in lengths {
                    counts[usize::from(l)] += 1;
                }
                counts[0] = 0;
                let mut symbols = Vec::new();
                for len in 1..16u8 {
                    for (symbol, &l) in lengths.iter().enumerate() {
                        if l == len {
                            symbols.push(symbol as u16);
                        }
                    }
                }
                Huffman { counts, symbols }
            }

            fn decode(&self, bits: &mut Bits) -> Option<u16> {
                // Walk the code one bit at a time; codes of each length are
                // consecutive integers starting at `first`.
                let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
                for len in 1..16 {
                    code |= bits.bit()? as i32;
                    let count = i32::from(self.counts[len]);
                    if code - first < count {
                        return self.symbols.get((index + code - first) as usize).copied();
                    }
                    index += count;
                    first = (first + count) << 1;
                    code <<= 1;
                }
                None
            }
        }

        const LEN_BASE: [u16; 29] = [
            3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99,
            115, 131, 163, 195, 227, 258,
        ];
        const LEN_EXTRA: [u8; 29] = [
            0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
        ];
        const DIST_BASE: [u16; 30] = [
            1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025,
            1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
        ];
        const DIST_EXTRA: [u8; 30] = [
            0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12,
            12, 13, 13,
        ];
        const ORDER: [usize; 19] = [
            16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
        ];

        /// Decodes blocks until the input runs out at a block boundary;
        /// returns the output and the longest distance used.
        pub fn inflate(data: &[u8]) -> Option<(Vec<u8>, usize)> {
            let mut bits = Bits { data, pos: 0 };
            let mut out = Vec::new();
            let mut max_dist = 0;
            while bits.pos / 8 < data.len() {
                let _final = bits.bit()?;
                match bits.bits(2)? {
                    0 => {
                        bits.pos = bits.pos.div_ceil(8) * 8;
                        let len = bits.bits(16)?;
                        let nlen = bits.bits(16)?;
                        if len != !nlen & 0xffff {
                            return None;
                        }
                        let start = bits.pos / 8;
                        out.extend_from_slice(data.get(start..start + len as usize)?);
                        bits.pos += 8 * len as usize;
                    }
                    kind @ (1 | 2) => {
                        let (lit, dist) = if kind == 1 {
                            let mut l = [8u8; 288];
                            l[144..256].fill(9);
                            l[256..280].fill(7);
                            (Huffman::new(&l), Huffman::new(&[5; 30]))
                        } else {
                            let hlit = bits.bits(5)? as usize + 257;
                            let hdist = bits.bits(5)? as usize + 1;
                            let hclen = bits.bits(4)? as usize + 4;
                            let mut cl = [0u8; 19];
                            for &i in &ORDER[..hclen] {
                                cl[i] = bits.bits(3)? as u8;
                            }
                            let cl = Huffman::new(&cl);
                            let mut lengths = Vec::new();
                            while lengths.len() < hlit + hdist {
                                match cl.decode(&mut bits)? {
                                    s @ 0..=15 => lengths.push(s as u8),
                                    16 => {
                                        let prev = *lengths.last()?;
                                        let n = 3 + bits.bits(2)?;
                                        lengths.extend(std::iter::repeat(prev).take(n as usize));
                                    }
                                    17 => {
                                        let n = 3 + bits.bits(3)?;
                                        lengths.extend(std::iter::repeat(0).take(n as usize));
                                    }
                                    _ => {
                                        let n = 11 + bits.bits(7)?;
                                        lengths.extend(std::iter::repeat(0).take(n as usize));
                                    }
                                }
                            }
                            (
                                Huffman::new(&lengths[..hlit]),
                                Huffman::new(&lengths[hlit..]),
                            )
                        };
                        loop {
                            let symbol = lit.decode(&mut bits)?;
                            match symbol {
                                0..=255 => out.push(symbol as u8),
                                256 => break,
                                _ => {
                                    let i = usize::from(symbol - 257);
                                    let len = usize::from(*LEN_BASE.get(i)?)
                                        + bits.bits(u32::from(LEN_EXTRA[i]))? as usize;
                                    let d = usize::from(dist.decode(&mut bits)?);
                                    let distance = usize::from(*DIST_BASE.get(d)?)
                                        + bits.bits(u32::from(DIST_EXTRA[d]))? as usize;
                                    if distance > out.len() {
                                        return None;
                                    }
                                    max_dist = max_dist.max(distance);
                                    for _ in 0..len {
                                        out.push(out[out.len() - distance]);
                                    }
                                }
                            }
                        }
                    }
                    _ => return None,
                }
            }
            Some((out, max_dist))
        }
    }

    #[test]
    fn reference_inflater_reads_the_rfc_examples() {
        let mut stream = HELLO.to_vec();
        stream.extend_from_slice(&TAIL);
        stream.extend_from_slice(&[0xf2, 0x00, 0x11, 0x00, 0x00]);
        stream.extend_from_slice(&TAIL);
        assert_eq!(inflate::inflate(&stream), Some((b"HelloHello".to_vec(), 5)));
    }

    #[test]
    fn window_8_streams_stay_within_256_bytes() {
        // An agreed window of 8 is compressed with zlib's 9; every distance
        // must still fit a 256-byte window, across messages too.
        for level in [1, 2, 3, 4, 6, 9] {
            let (mut server, _) = pair(params(false, false, 8, 15), level);
            let mut stream = Vec::new();
            let mut expected = Vec::new();
            for seed in 0..8 {
                let message = sample(seed, 20_000);
                stream.extend_from_slice(&compress(&mut server, &message));
                stream.extend_from_slice(&TAIL);
                expected.extend_from_slice(&message);
            }
            let (decoded, max_dist) = inflate::inflate(&stream).expect("valid deflate");
            assert_eq!(decoded, expected);
            assert!(max_dist > 100, "level {level}: the data should use matches");
            assert!(
                max_dist <= 256,
                "level {level}: distance {max_dist} exceeds an 8-bit window"
            );
        }
        // And for comparison, a 15-bit window does reach further.
        let (mut server, _) = pair(params(false, false, 15, 15), 6);
        let mut stream = compress(&mut server, &sample(1, 20_000));
        stream.extend_from_slice(&TAIL);
        assert!(inflate::inflate(&stream).unwrap().1 > 256);
    }

    // ---- negotiation: server ----------------------------------------------

    #[test]
    fn server_accepts_common_client_offers() {
        let config = DeflateConfig::default();
        let table = [
            // Chrome, Firefox, Safari; Node ws; Python websockets (default).
            (
                "permessage-deflate; client_max_window_bits",
                "permessage-deflate; server_max_window_bits=15",
            ),
            // Python websockets with its documented low-memory settings.
            (
                "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12",
                "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12",
            ),
            // Go gorilla/websocket and others that want no takeover at all.
            (
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=15",
            ),
            // A bare offer.
            ("permessage-deflate", "permessage-deflate; server_max_window_bits=15"),
            // Autobahn 13.3: the server's window limited to 8.
            (
                "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_max_window_bits=8",
                "permessage-deflate; client_no_context_takeover; server_max_window_bits=8",
            ),
            // An explicit 15 must be echoed.
            (
                "permessage-deflate; server_max_window_bits=15",
                "permessage-deflate; server_max_window_bits=15",
            ),
            // The client caps its own window.
            (
                "permessage-deflate; client_max_window_bits=9",
                "permessage-deflate; server_max_window_bits=15; client_max_window_bits=9",
            ),
            // Quoted values.
            (
                "permessage-deflate; server_max_window_bits=\"10\"; client_max_window_bits=\"11\"",
                "permessage-deflate; server_max_window_bits=10; client_max_window_bits=11",
            ),
            // Case-insensitive names.
            (
                "PerMessage-Deflate; Client_Max_Window_Bits",
                "permessage-deflate; server_max_window_bits=15",
            ),
        ];
        for (offer, answer) in table {
            assert_eq!(
                negotiate(&config, offer).as_deref(),
                Some(answer),
                "offer {offer:?}"
            );
        }
    }

    #[test]
    fn server_params_match_the_answer() {
        let config = DeflateConfig::default();
        let p = config
            .server_negotiate(&offers(
                "permessage-deflate; server_max_window_bits=8; client_max_window_bits=10",
            ))
            .unwrap()
            .unwrap();
        assert_eq!(p, params(false, false, 8, 10));
        // The client side reads the answer back to the same parameters.
        let client_config = DeflateConfig {
            server_max_window_bits: 9,
            client_max_window_bits: 10,
            ..DeflateConfig::default()
        };
        let back = client_config
            .client_accept(&offers(&p.to_header_value()))
            .unwrap();
        assert_eq!(back, Some(p));
    }

    #[test]
    fn server_applies_its_own_config() {
        let config = DeflateConfig {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 10,
            client_max_window_bits: 12,
            ..DeflateConfig::default()
        };
        let table = [
            (
                "permessage-deflate; client_max_window_bits",
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=12",
            ),
            // Not offered: the client's window cannot be capped.
            (
                "permessage-deflate",
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10",
            ),
            // The smaller of offer and config wins.
            (
                "permessage-deflate; server_max_window_bits=9; client_max_window_bits=14",
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=12",
            ),
            (
                "permessage-deflate; server_max_window_bits=13; client_max_window_bits=8",
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=8",
            ),
        ];
        for (offer, answer) in table {
            assert_eq!(
                negotiate(&config, offer).as_deref(),
                Some(answer),
                "offer {offer:?}"
            );
        }
    }

    #[test]
    fn server_declines_invalid_offers_and_takes_the_next() {
        let config = DeflateConfig::default();
        let invalid = [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=08",
            "permessage-deflate; server_max_window_bits=+9",
            "permessage-deflate; server_max_window_bits=abc",
            "permessage-deflate; client_max_window_bits=0",
            "permessage-deflate; client_max_window_bits=255",
            "permessage-deflate; client_max_window_bits=\"16\"",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover=\"x\"",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
            "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
            "permessage-deflate; mystery",
            "permessage-deflate; x-level=3",
        ];
        for offer in invalid {
            assert_eq!(negotiate(&config, offer), None, "offer {offer:?}");
            // Followed by a good offer, the good one is taken.
            let both =
                format!("{offer}, x-other; a=1, permessage-deflate; server_no_context_takeover");
            assert_eq!(
                negotiate(&config, &both).as_deref(),
                Some("permessage-deflate; server_no_context_takeover; server_max_window_bits=15"),
                "offers {both:?}"
            );
        }
        // Nothing offered, or only other extensions.
        assert_eq!(negotiate(&config, ""), None);
        assert_eq!(
            negotiate(&config, "x-webkit-deflate-frame, deflate-frame"),
            None
        );
        // The first acceptable offer wins (Autobahn 13.7 sends three).
        assert_eq!(
            negotiate(
                &config,
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=8, \
                 permessage-deflate; server_no_context_takeover, permessage-deflate"
            )
            .as_deref(),
            Some("permessage-deflate; server_no_context_takeover; server_max_window_bits=8")
        );
    }

    #[test]
    fn invalid_config_is_an_error() {
        for config in [
            DeflateConfig {
                compression_level: 10,
                ..DeflateConfig::default()
            },
            DeflateConfig {
                server_max_window_bits: 8,
                ..DeflateConfig::default()
            },
            DeflateConfig {
                client_max_window_bits: 16,
                ..DeflateConfig::default()
            },
        ] {
            assert!(config.validate().is_err());
            assert!(config
                .server_negotiate(&offers("permessage-deflate"))
                .is_err());
            assert!(config.client_accept(&[]).is_err());
            // The offer clamps instead.
            assert!(config.client_offer().starts_with("permessage-deflate"));
        }
        assert_eq!(DeflateConfig::default().validate(), Ok(()));
        let err = DeflateConfig {
            server_max_window_bits: 8,
            ..DeflateConfig::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "permessage-deflate negotiation failed: configured server_max_window_bits=8 is not in 9..=15"
        );
    }

    // ---- negotiation: client ----------------------------------------------

    #[test]
    fn client_offers() {
        assert_eq!(
            DeflateConfig::default().client_offer(),
            "permessage-deflate; client_max_window_bits"
        );
        let config = DeflateConfig {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 10,
            client_max_window_bits: 11,
            ..DeflateConfig::default()
        };
        assert_eq!(
            config.client_offer(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=11"
        );
        // Our own offers are valid offers for our own server.
        for config in [DeflateConfig::default(), config] {
            assert!(DeflateConfig::default()
                .server_negotiate(&offers(&config.client_offer()))
                .unwrap()
                .is_some());
        }
    }

    #[test]
    fn client_accepts_valid_answers() {
        let config = DeflateConfig::default();
        let table = [
            ("", None),
            ("permessage-deflate", Some(params(false, false, 15, 15))),
            (
                "permessage-deflate; server_max_window_bits=15",
                Some(params(false, false, 15, 15)),
            ),
            // Unrequested but allowed: the server limits or resets itself,
            // tells us to reset, or shrinks our window (we offered it).
            (
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
                Some(params(true, true, 15, 15)),
            ),
            (
                "permessage-deflate; server_max_window_bits=8",
                Some(params(false, false, 8, 15)),
            ),
            (
                "permessage-deflate; client_max_window_bits=8",
                Some(params(false, false, 15, 8)),
            ),
            (
                "permessage-deflate; client_max_window_bits=\"10\"; server_max_window_bits=\"9\"",
                Some(params(false, false, 9, 10)),
            ),
        ];
        for (answer, expected) in table {
            assert_eq!(
                config.client_accept(&offers(answer)),
                Ok(expected),
                "answer {answer:?}"
            );
        }
        // What we asked for shapes what we accept and what we keep.
        let config = DeflateConfig {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 10,
            client_max_window_bits: 12,
            ..DeflateConfig::default()
        };
        assert_eq!(
            config.client_accept(&offers(
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=10"
            )),
            Ok(Some(params(true, true, 10, 12)))
        );
        assert_eq!(
            config.client_accept(&offers(
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_max_window_bits=9"
            )),
            Ok(Some(params(true, true, 9, 9)))
        );
    }

    #[test]
    fn client_rejects_bad_answers() {
        let config = DeflateConfig::default();
        let bad = [
            "x-other",
            "permessage-deflate, permessage-deflate",
            "permessage-deflate, x-other",
            "permessage-deflate; mystery",
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; client_max_window_bits=16",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
        ];
        for answer in bad {
            assert!(
                config.client_accept(&offers(answer)).is_err(),
                "answer {answer:?}"
            );
        }
        let asked = DeflateConfig {
            server_no_context_takeover: true,
            server_max_window_bits: 10,
            client_max_window_bits: 12,
            ..DeflateConfig::default()
        };
        for answer in [
            // Missing what we asked for.
            "permessage-deflate; server_max_window_bits=10",
            "permessage-deflate; server_no_context_takeover",
            // Larger than what we asked for or offered.
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=11",
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=13",
        ] {
            assert!(asked.client_accept(&offers(answer)).is_err(), "answer {answer:?}");
        }
        let err = config
            .client_accept(&offers("permessage-deflate; mystery"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "permessage-deflate negotiation failed: invalid answer: unknown parameter mystery"
        );
    }

    #[test]
    fn negotiated_pairs_interoperate() {
        // Every combination of client and server settings yields parameters
        // that both ends read the same way and that round-trip data.
        let message = sample(7, 5000);
        for snct in [false, true] {
            for cnct in [false, true] {
                for (sbits, cbits) in [(15, 15), (9, 12), (12, 9)] {
                    let client_config = DeflateConfig {
                        server_no_context_takeover: snct,
                        client_no_context_takeover: cnct,
                        server_max_window_bits: sbits,
                        client_max_window_bits: cbits,
                        ..DeflateConfig::default()
                    };
                    let server_config = DeflateConfig {
                        server_max_window_bits: cbits,
                        client_max_window_bits: sbits,
                        ..DeflateConfig::default()
                    };
                    let p = server_config
                        .server_negotiate(&offers(&client_config.client_offer()))
                        .unwrap()
                        .unwrap();
                    let answer = offers(&p.to_header_value());
                    let q = client_config.client_accept(&answer).unwrap().unwrap();
                    assert_eq!(p, q);
                    let mut server = PerMessageDeflate::new(DeflateRole::Server, p, &server_config);
                    let mut client = PerMessageDeflate::new(DeflateRole::Client, q, &client_config);
                    let messages = [message.clone(), message.clone()];
                    round_trip(&mut server, &mut client, &messages, 1000);
                    round_trip(&mut client, &mut server, &messages, 1000);
                }
            }
        }
    }
}
