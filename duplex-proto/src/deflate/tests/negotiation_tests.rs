//! Negotiation: the server's choice among offers, the client's offer and
//! its check of the answer, and negotiated pairs talking to each other.

use super::*;
use crate::extensions::{parse_extensions, ExtensionOffer};

fn offers(header: &str) -> Vec<ExtensionOffer> {
    parse_extensions([header]).unwrap()
}

fn negotiate(config: &DeflateConfig, header: &str) -> Option<String> {
    config
        .server_negotiate(&offers(header))
        .unwrap()
        .map(|p| p.to_header_value())
}

/// Each offer of `table` is accepted with exactly its answer.
fn assert_server_answers(config: &DeflateConfig, table: &[(&str, &str)]) {
    for (offer, answer) in table {
        assert_eq!(
            negotiate(config, offer).as_deref(),
            Some(*answer),
            "offer {offer:?}"
        );
    }
}

/// A server that grants context takeover: its answers echo the offers.
fn per_connection() -> DeflateConfig {
    DeflateConfig {
        memory: DeflateMemory::PerConnection,
        ..DeflateConfig::default()
    }
}

// ---- negotiation: server ----------------------------------------------

#[test]
fn shared_memory_answers_without_context_takeover() {
    // The default: whatever the offer, both sides reset per message, and
    // the windows are still agreed as offered.
    let both = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
    let table = [
        // Chrome, Firefox, Safari; Node ws; Python websockets (default).
        (
            "permessage-deflate; client_max_window_bits",
            format!("{both}; server_max_window_bits=15"),
        ),
        (
            "permessage-deflate",
            format!("{both}; server_max_window_bits=15"),
        ),
        (
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12",
            format!("{both}; server_max_window_bits=12; client_max_window_bits=12"),
        ),
        (
            "permessage-deflate; client_no_context_takeover; server_max_window_bits=8",
            format!("{both}; server_max_window_bits=8"),
        ),
        (both, format!("{both}; server_max_window_bits=15")),
    ];
    let table: Vec<(&str, &str)> = table.iter().map(|(o, a)| (*o, a.as_str())).collect();
    assert_server_answers(&DeflateConfig::default(), &table);
    // A client with default settings accepts that answer.
    let answer = negotiate(
        &DeflateConfig::default(),
        "permessage-deflate; client_max_window_bits",
    );
    let agreed = DeflateConfig::default()
        .client_accept(&offers(&answer.unwrap()))
        .unwrap();
    assert_eq!(agreed, Some(params(true, true, 15, 15)));
}

#[test]
fn server_accepts_common_client_offers() {
    let config = per_connection();
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
    assert_server_answers(&config, &table);
}

#[test]
fn server_params_match_the_answer() {
    let config = per_connection();
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
    assert_server_answers(&config, &table);
}

#[test]
fn server_declines_invalid_offers_and_takes_the_next() {
    let config = per_connection();
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
        let both = format!("{offer}, x-other; a=1, permessage-deflate; server_no_context_takeover");
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
                let mut server = PerMessageDeflate::new(Role::Server, p, &server_config);
                let mut client = PerMessageDeflate::new(Role::Client, q, &client_config);
                let messages = [message.clone(), message.clone()];
                round_trip(&mut server, &mut client, &messages, 1000);
                round_trip(&mut client, &mut server, &messages, 1000);
            }
        }
    }
}
