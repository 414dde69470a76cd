//! Micro-benchmarks of the engine's hot paths: masking, UTF-8 validation,
//! frame parsing and encoding, and permessage-deflate.
//!
//! Run with `cargo bench -p duplex-proto`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use duplex_proto::bench::apply_mask;
use duplex_proto::bench::Utf8Validator;
use duplex_proto::{Config, Connection, Message, Role};

const SIZES: [usize; 4] = [20, 512, 16 * 1024, 1 << 20];

fn masking(c: &mut Criterion) {
    let mut group = c.benchmark_group("mask");
    for size in SIZES {
        let mut data = vec![0x5au8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
            b.iter(|| apply_mask(black_box(&mut data), [1, 2, 3, 4], 0))
        });
    }
    group.finish();
}

fn utf8(c: &mut Criterion) {
    let mut group = c.benchmark_group("utf8");
    for size in SIZES {
        let text: Vec<u8> = "κόσμε ascii text 😀 ".bytes().cycle().take(size).collect();
        // Cut at a character boundary so the whole input is valid.
        let valid = std::str::from_utf8(&text)
            .map(str::len)
            .unwrap_or_else(|e| e.valid_up_to());
        let text = &text[..valid];
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
            b.iter(|| {
                let mut v = Utf8Validator::default();
                v.feed(black_box(text)).unwrap();
                v.is_complete()
            })
        });
    }
    group.finish();
}

/// Client-encoded (masked) frames of `size`, `count` of them.
fn client_frames(size: usize, count: usize) -> Vec<u8> {
    let mut client = Connection::new(Role::Client, Config::default());
    let payload = vec![7u8; size];
    for _ in 0..count {
        client.send(Message::binary(payload.clone())).unwrap();
    }
    client.take_output()
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_server");
    for size in SIZES {
        let count = (1 << 20) / size.max(1) + 1;
        let bytes = client_frames(size, count.min(1000));
        let n = count.min(1000);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
            b.iter(|| {
                let mut server = Connection::new(Role::Server, Config::default());
                server.receive(black_box(&bytes));
                let mut got = 0;
                while let Some(m) = server.next_message().unwrap() {
                    got += m.len();
                }
                got
            })
        });
    }
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for size in SIZES {
        let payload = bytes::Bytes::from(vec![7u8; size]);
        group.throughput(Throughput::Bytes(size as u64));
        for role in [Role::Server, Role::Client] {
            let mut conn = Connection::new(role, Config::default());
            group.bench_with_input(
                BenchmarkId::new(format!("{role:?}"), size),
                &size,
                |b, _| {
                    b.iter(|| {
                        conn.send(Message::Binary(payload.clone())).unwrap();
                        // Write everything out, as the I/O layer would.
                        let out = conn.output();
                        let n = bytes::Buf::remaining(out);
                        bytes::Buf::advance(out, n);
                    })
                },
            );
        }
    }
    group.finish();
}

/// The server's echo of a pipelined batch: 16 masked frames arrive in one
/// read, each is decoded and sent back, and the output is written out.
/// This is the per-message engine cost behind the harness's scenario f.
fn echo(c: &mut Criterion) {
    let mut group = c.benchmark_group("echo_batch16");
    for size in [20usize, 512] {
        let batch = client_frames(size, 16);
        let mut server = Connection::new(Role::Server, Config::default());
        group.throughput(Throughput::Elements(16));
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
            b.iter(|| {
                server.input_buffer().extend_from_slice(black_box(&batch));
                while let Some(message) = server.next_message().unwrap() {
                    server.send(message).unwrap();
                }
                let out = server.output();
                let n = bytes::Buf::remaining(out);
                bytes::Buf::advance(out, n);
                n
            })
        });
        // The same batch lent from the read buffer (`lend_buffered`).
        group.bench_with_input(BenchmarkId::new("lent", size), &size, |b, _| {
            b.iter(|| {
                server.input_buffer().extend_from_slice(black_box(&batch));
                server
                    .lend_buffered(|message, outbox| outbox.send(message).unwrap())
                    .unwrap();
                let out = server.output();
                let n = bytes::Buf::remaining(out);
                bytes::Buf::advance(out, n);
                n
            })
        });
    }
    group.finish();
}

#[cfg(feature = "deflate")]
fn deflate(c: &mut Criterion) {
    use duplex_proto::deflate::{DeflateConfig, DeflateParams, PerMessageDeflate};
    use duplex_proto::Role;
    let mut group = c.benchmark_group("deflate");
    let config = DeflateConfig::default();
    let params = DeflateParams::default();
    for size in [512usize, 16 * 1024] {
        let text: Vec<u8> = br#"{"type":"message","name":"alice","text":"hello there, how are you today?","ts":1700000000}"#
            .iter()
            .copied()
            .cycle()
            .take(size)
            .collect();
        group.throughput(Throughput::Bytes(size as u64));
        let mut compressor = PerMessageDeflate::new(Role::Server, params, &config);
        let mut out = bytes::BytesMut::new();
        group.bench_with_input(BenchmarkId::new("compress", size), &size, |b, _| {
            b.iter(|| {
                out.clear();
                compressor.compress(black_box(&text), &mut out);
                out.len()
            })
        });
        let mut sender = PerMessageDeflate::new(
            Role::Server,
            params,
            &DeflateConfig {
                server_no_context_takeover: true,
                ..config.clone()
            },
        );
        let mut compressed = bytes::BytesMut::new();
        sender.compress(&text, &mut compressed);
        let mut receiver = PerMessageDeflate::new(
            Role::Client,
            DeflateParams {
                server_no_context_takeover: true,
                ..params
            },
            &config,
        );
        let mut plain = bytes::BytesMut::new();
        group.bench_with_input(BenchmarkId::new("decompress", size), &size, |b, _| {
            b.iter(|| {
                plain.clear();
                receiver
                    .decompress(black_box(&compressed), true, &mut plain, 1 << 26)
                    .unwrap();
                plain.len()
            })
        });
    }
    group.finish();
}

#[cfg(not(feature = "deflate"))]
fn deflate(_: &mut Criterion) {}

criterion_group!(benches, masking, utf8, parse, encode, echo, deflate);
criterion_main!(benches);
