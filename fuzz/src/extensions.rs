//! `Sec-WebSocket-Extensions`: parsing and printing, and permessage-deflate
//! negotiation between any client and server settings.
//!
//! Input: the client's and the server's [`DeflateConfig`] (three bytes
//! each, see [`config`]), a header value, an offer built by hand (a name
//! and up to three parameters), then message payloads (each a two-byte
//! little-endian length and its bytes) that the negotiated codecs
//! exchange.
//!
//! Checked: whatever parses prints back to the same offers; an offer built
//! by hand with token names round-trips exactly when all its values are
//! tokens and is refused otherwise; a server's answer to any offer is one
//! the default client accepts, with the same parameters; the offer of any
//! valid client config is accepted by any valid server config, and the
//! client reads the answer as the very parameters the server chose, within
//! both sides' limits; and the two codecs built from them then exchange
//! messages unchanged in both directions.

use bytes::BytesMut;
use duplex_proto::deflate::{DeflateConfig, DeflateMemory, DeflateParams, PerMessageDeflate};
use duplex_proto::extensions::{parse_extensions, ExtensionOffer};
use duplex_proto::handshake::check_header;
use duplex_proto::Role;

use super::input::{is_token, Input};

/// Window bits for the settings: mostly valid (9..=15), some not.
const WINDOW_BITS: [u8; 16] = [15, 9, 10, 11, 12, 13, 14, 15, 9, 12, 15, 8, 16, 7, 0, 255];
/// `min_size` of the compressor.
const MIN_SIZE: [usize; 4] = [0, 1, 32, 1000];
/// zlib memory levels: mostly valid (1..=9), some not.
const MEM_LEVEL: [u8; 8] = [8, 1, 5, 9, 8, 2, 0, 10];

/// Settings from three bytes: the no-context-takeover flags (bits 0-1),
/// the memory level (bits 2-4, through [`MEM_LEVEL`]), the memory policy
/// (bit 5), the window bits (one nibble each, through [`WINDOW_BITS`]),
/// the level (low nibble, 0..=15: above 9 is invalid) and `min_size`
/// (bits 4-5).
pub fn config(input: &mut Input<'_>) -> DeflateConfig {
    let (flags, bits, level) = (input.byte(), input.byte(), input.byte());
    DeflateConfig {
        mem_level: MEM_LEVEL[usize::from(flags >> 2 & 7)],
        memory: if flags & 32 != 0 {
            DeflateMemory::PerConnection
        } else {
            DeflateMemory::Shared
        },
        compression_level: u32::from(level & 15),
        min_size: MIN_SIZE[usize::from(level >> 4 & 3)],
        server_no_context_takeover: flags & 1 != 0,
        client_no_context_takeover: flags & 2 != 0,
        server_max_window_bits: WINDOW_BITS[usize::from(bits & 15)],
        client_max_window_bits: WINDOW_BITS[usize::from(bits >> 4)],
    }
}

fn print(offers: &[ExtensionOffer]) -> String {
    offers
        .iter()
        .map(ExtensionOffer::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whatever parses prints back to the same offers.
fn check_round_trip(header: &str) {
    let Ok(offers) = parse_extensions([header]) else {
        return;
    };
    let printed = print(&offers);
    assert!(check_header("Sec-WebSocket-Extensions", &printed).is_ok());
    assert_eq!(parse_extensions([printed.as_str()]), Ok(offers.clone()));
    for offer in &offers {
        assert_eq!(
            parse_extensions([offer.to_string().as_str()]),
            Ok(vec![offer.clone()])
        );
    }
}

/// An offer built by hand prints to a header that parses back to it
/// exactly when every name and value is a token.
fn check_built(input: &mut Input<'_>) {
    let mut offer = ExtensionOffer::new(input.text());
    for _ in 0..input.byte() % 4 {
        let name = input.text();
        let value = (input.byte() & 1 != 0).then(|| input.text());
        offer = offer.with_param(name, value);
    }
    let names_are_tokens = is_token(&offer.name) && offer.params.iter().all(|(n, _)| is_token(n));
    if !names_are_tokens {
        // Display writes names as they are; there is nothing to expect.
        return;
    }
    let values_are_tokens = offer
        .params
        .iter()
        .all(|(_, v)| v.as_deref().is_none_or(is_token));
    let parsed = parse_extensions([offer.to_string().as_str()]);
    if values_are_tokens {
        assert_eq!(parsed, Ok(vec![offer]));
    } else {
        assert!(parsed.is_err(), "{offer} parsed as {parsed:?}");
    }
}

/// A server's answer to any offer is one the default client accepts, with
/// the same parameters (the default client offered the most it can take).
fn check_any_offer(header: &str, server: &DeflateConfig) {
    let Ok(offers) = parse_extensions([header]) else {
        return;
    };
    let Ok(Some(params)) = server.server_negotiate(&offers) else {
        return;
    };
    let answer = parse_extensions([params.to_header_value().as_str()]).expect("answer parses");
    assert_eq!(
        DeflateConfig::default().client_accept(&answer),
        Ok(Some(params))
    );
}

/// A valid client's offer meets a valid server; both read the same
/// parameters, within both sides' limits. Returns them.
fn check_agreement(client: &DeflateConfig, server: &DeflateConfig) -> Option<DeflateParams> {
    let offer = client.client_offer();
    assert!(check_header("Sec-WebSocket-Extensions", &offer).is_ok());
    let offers = parse_extensions([offer.as_str()]).expect("our offer parses");
    let chosen = match server.server_negotiate(&offers) {
        Err(_) => {
            assert!(server.validate().is_err());
            return None;
        }
        Ok(chosen) => chosen.expect("a valid server accepts a well-formed offer"),
    };
    let answer_text = chosen.to_header_value();
    assert!(check_header("Sec-WebSocket-Extensions", &answer_text).is_ok());
    let answer = parse_extensions([answer_text.as_str()]).expect("our answer parses");
    let accepted = match client.client_accept(&answer) {
        Err(e) => {
            assert!(client.validate().is_err(), "{offer} -> {answer_text}: {e}");
            return None;
        }
        Ok(accepted) => accepted.expect("an answer with permessage-deflate"),
    };
    assert_eq!(accepted, chosen, "{offer} -> {answer_text}");
    // Each side's limits hold.
    let p = chosen;
    assert!(p.server_max_window_bits <= server.server_max_window_bits);
    assert!(p.server_max_window_bits <= client.server_max_window_bits);
    assert!(p.client_max_window_bits <= server.client_max_window_bits);
    assert!(p.client_max_window_bits <= client.client_max_window_bits);
    for (asked, agreed) in [
        (
            server.server_no_context_takeover,
            p.server_no_context_takeover,
        ),
        (
            client.server_no_context_takeover,
            p.server_no_context_takeover,
        ),
        (
            server.client_no_context_takeover,
            p.client_no_context_takeover,
        ),
        (
            client.client_no_context_takeover,
            p.client_no_context_takeover,
        ),
    ] {
        assert!(
            agreed || !asked,
            "a no-context-takeover asked for is agreed"
        );
    }
    Some(p)
}

/// Messages compressed by one codec decompress unchanged in the other.
fn exchange(from: &mut PerMessageDeflate, to: &mut PerMessageDeflate, message: &[u8]) {
    let mut wire = BytesMut::new();
    from.compress(message, &mut wire);
    let mut out = BytesMut::new();
    to.decompress(&wire, true, &mut out, message.len())
        .unwrap_or_else(|e| panic!("our own {} compressed bytes: {e}", wire.len()));
    assert_eq!(&out[..], message);
}

/// The harness.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let client = config(&mut input);
    let server = config(&mut input);
    let header = input.text();
    check_round_trip(&header);
    check_built(&mut input);
    check_any_offer(&header, &server);
    let Some(params) = check_agreement(&client, &server) else {
        return;
    };
    let mut server_codec = PerMessageDeflate::new(Role::Server, params, &server);
    let mut client_codec = PerMessageDeflate::new(Role::Client, params, &client);
    while !input.is_empty() {
        let len = usize::from(input.u16());
        let message = input.bytes(len);
        exchange(&mut server_codec, &mut client_codec, message);
        exchange(&mut client_codec, &mut server_codec, message);
    }
}
