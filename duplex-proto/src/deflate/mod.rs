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
mod tests;
