//! Negotiation (RFC 7692 §7.1): the user's [`DeflateConfig`], the agreed
//! [`DeflateParams`], and the client's offer and the server's answer.

use std::fmt;

use super::{EXTENSION_NAME, MAX_WINDOW_BITS, MIN_RFC_WINDOW_BITS, MIN_ZLIB_WINDOW_BITS};
use crate::extensions::ExtensionOffer;

/// How a server spends memory on compression: whether it grants context
/// takeover, which makes zlib state live as long as the connection.
///
/// Measured on `duplex serve` with 10,000 connections that each echoed one
/// ~150-byte chat message, offered as browsers offer it (the README has the
/// full table): [`Shared`](Self::Shared) 5 KiB per idle connection,
/// [`PerConnection`](Self::PerConnection) 464 KiB with the default 32 KiB
/// windows, 1.7 KiB without compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DeflateMemory {
    /// The default. The server answers every offer with
    /// `server_no_context_takeover` and `client_no_context_takeover`
    /// (RFC 7692 §7.1.1 lets a server add both), so each message is
    /// compressed and decompressed on its own with zlib state borrowed from
    /// a per-thread pool, and an idle connection holds none. Browsers
    /// accept this answer. The cost is ratio on small messages, which no
    /// longer refer back to earlier ones.
    #[default]
    Shared,
    /// The server keeps context takeover unless the client or the
    /// no-context-takeover settings ask otherwise; each connection then
    /// owns a compressor (about 320 KiB at window 15 and `mem_level` 8)
    /// and a decompressor (about 40 KiB at window 15) from its first
    /// message on. Best ratio for streams of similar messages; lower the
    /// window bits and [`DeflateConfig::mem_level`] to make it cheaper.
    PerConnection,
}

/// What we offer (client) or accept (server): the user's settings.
///
/// The defaults agree to what browsers offer, and a server answers without
/// context takeover ([`DeflateMemory::Shared`]) so that compression costs
/// no memory between messages. For the best ratio at a memory cost, use
/// [`DeflateMemory::PerConnection`] and choose the window bits and memory
/// level.
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
    /// zlib's memory level (1..=9) for a compressor this side keeps: the
    /// pending-symbol buffer has 2^(mem_level + 6) entries, 4 bytes each.
    /// Default 8, zlib's own: 64 KiB. Level 1 saves ~63 KiB per kept
    /// compressor for a few per cent of ratio.
    pub mem_level: u8,
    /// Server: whether to grant context takeover (see [`DeflateMemory`]).
    /// A client's offer is not affected: a client asks for no context
    /// takeover with the two flags above. Default [`DeflateMemory::Shared`].
    pub memory: DeflateMemory,
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
            mem_level: 8,
            memory: DeflateMemory::Shared,
        }
    }
}

impl DeflateConfig {
    /// Whether this side, as a server, answers without context takeover in
    /// both directions.
    fn server_shares_state(&self) -> bool {
        self.memory == DeflateMemory::Shared
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
    /// Checks the settings: level 0..=9, window bits 9..=15, memory level
    /// 1..=9.
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
        if !(1..=9).contains(&self.mem_level) {
            return Err(DeflateNegotiationError::new(format!(
                "memory level {} is not in 1..=9",
                self.mem_level
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
    /// flags are added (both of them under [`DeflateMemory::Shared`], the
    /// default), our window caps lower the offered windows, and the
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
        let shared = self.server_shares_state();
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
                    || self.server_no_context_takeover
                    || shared,
                client_no_context_takeover: parsed.client_no_context_takeover
                    || self.client_no_context_takeover
                    || shared,
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
