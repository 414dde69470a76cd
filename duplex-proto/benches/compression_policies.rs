//! What each permessage-deflate policy costs per message and how much it
//! saves: for a chat stream (varied JSON messages of 50 to 200 bytes) and
//! for 16 KiB text, one message compressed by the server's codec and
//! decompressed by the client's, as a relay does for each recipient.
//!
//! Run with `cargo bench -p duplex-proto --bench compression_policies`.
//! Before measuring it prints each policy's compression ratio (compressed
//! bytes / original bytes over the whole stream); the README's table of
//! policies is built from both.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use duplex_proto::deflate::{DeflateConfig, DeflateMemory, DeflateParams, PerMessageDeflate};
use duplex_proto::Role;

/// A named policy: the server's settings and what a browser-like offer
/// (`client_max_window_bits`) then agrees.
struct Policy {
    name: &'static str,
    config: DeflateConfig,
}

fn policies() -> Vec<Policy> {
    let per_connection = |window_bits: u8, mem_level: u8| DeflateConfig {
        memory: DeflateMemory::PerConnection,
        server_max_window_bits: window_bits,
        client_max_window_bits: window_bits,
        mem_level,
        ..DeflateConfig::default()
    };
    vec![
        Policy {
            name: "shared",
            config: DeflateConfig::default(),
        },
        Policy {
            name: "per-connection-15-8",
            config: per_connection(15, 8),
        },
        Policy {
            name: "per-connection-12-5",
            config: per_connection(12, 5),
        },
        Policy {
            name: "per-connection-9-1",
            config: per_connection(9, 1),
        },
    ]
}

/// The parameters a server with `config` agrees to a browser's offer.
fn agreed(config: &DeflateConfig) -> DeflateParams {
    let offer =
        duplex_proto::extensions::parse_extensions(["permessage-deflate; client_max_window_bits"])
            .unwrap();
    config.server_negotiate(&offer).unwrap().unwrap()
}

/// A deterministic chat stream: users, rooms and words vary as in a real
/// chat, so context takeover helps only as much as it would there.
fn chat_stream(count: usize) -> Vec<Vec<u8>> {
    const WORDS: &[&str] = &[
        "hey", "are", "we", "still", "on", "for", "lunch", "tomorrow", "I", "think", "so", "the",
        "build", "is", "green", "again", "can", "you", "review", "my", "pull", "request",
        "meeting", "moved", "to", "three", "thanks", "sounds", "good", "see", "you", "there",
        "deploy", "finished", "coffee", "anyone", "new", "release", "notes", "are", "up", "ok",
        "lol", "what", "about", "friday", "yes", "no", "maybe", "later",
    ];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    (0..count)
        .map(|i| {
            let words = 2 + next(22);
            let text: Vec<&str> = (0..words).map(|_| WORDS[next(WORDS.len())]).collect();
            format!(
                r#"{{"type":"message","room":"room-{}","user":"user-{}","text":"{}","ts":{}}}"#,
                next(8),
                next(500),
                text.join(" "),
                1_733_050_000_000u64 + i as u64 * 137
            )
            .into_bytes()
        })
        .collect()
}

/// 16 KiB texts made of the chat stream's messages, each different.
fn large_texts(count: usize) -> Vec<Vec<u8>> {
    let stream = chat_stream(count * 120);
    stream
        .chunks(120)
        .map(|chunk| chunk.concat().into_iter().take(16 * 1024).collect())
        .collect()
}

/// Compressed bytes / original bytes over `messages`, and a check that
/// every message comes back unchanged.
fn ratio(config: &DeflateConfig, messages: &[Vec<u8>]) -> f64 {
    let params = agreed(config);
    let mut server = PerMessageDeflate::new(Role::Server, params, config);
    let mut client = PerMessageDeflate::new(Role::Client, params, &DeflateConfig::default());
    let (mut original, mut compressed) = (0usize, 0usize);
    let (mut wire, mut plain) = (BytesMut::new(), BytesMut::new());
    for message in messages {
        wire.clear();
        plain.clear();
        server.compress(message, &mut wire);
        client.decompress(&wire, true, &mut plain, 1 << 24).unwrap();
        assert_eq!(&plain[..], &message[..]);
        original += message.len();
        compressed += wire.len();
    }
    compressed as f64 / original as f64
}

fn policies_bench(c: &mut Criterion) {
    for (workload, messages) in [("chat", chat_stream(2_000)), ("16KiB", large_texts(64))] {
        let mut group = c.benchmark_group(format!("compression_{workload}"));
        let bytes: usize = messages.iter().map(Vec::len).sum();
        group.throughput(Throughput::Bytes((bytes / messages.len()) as u64));
        for policy in policies() {
            println!(
                "ratio {workload} {}: {:.3}",
                policy.name,
                ratio(&policy.config, &messages)
            );
            let params = agreed(&policy.config);
            let mut server = PerMessageDeflate::new(Role::Server, params, &policy.config);
            let mut client =
                PerMessageDeflate::new(Role::Client, params, &DeflateConfig::default());
            let (mut wire, mut plain) = (BytesMut::new(), BytesMut::new());
            let mut index = 0;
            group.bench_function(BenchmarkId::from_parameter(policy.name), |b| {
                b.iter(|| {
                    let message = &messages[index % messages.len()];
                    index += 1;
                    wire.clear();
                    plain.clear();
                    server.compress(black_box(message), &mut wire);
                    client.decompress(&wire, true, &mut plain, 1 << 24).unwrap();
                    plain.len()
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, policies_bench);
criterion_main!(benches);
