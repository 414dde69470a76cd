//! The fuzz harnesses of duplex-proto. Each `run` reads libFuzzer's bytes
//! as settings and input, drives the engine's public API with them, and
//! panics when a property fails; each module's docs give its input layout
//! and what it checks.
//!
//! The targets in `fuzz_targets/` are one line each around [`run`];
//! duplex-proto's `tests/fuzz_regressions.rs` includes this same code and
//! replays the seeds and every kept crash under plain `cargo test`.

pub mod client_handshake;
pub mod engine;
pub mod extensions;
pub mod inflate;
pub mod input;
pub mod server_handshake;

/// The fuzz targets, by name (the files in `fuzz_targets/`, the folders
/// in `seeds/` and `regressions/`).
pub const TARGETS: [&str; 6] = [
    "engine",
    "engine_deflate",
    "server_handshake",
    "client_handshake",
    "extensions",
    "inflate",
];

/// Runs the harness of `target` on one input.
pub fn run(target: &str, data: &[u8]) {
    match target {
        "engine" => engine::run(data, false),
        "engine_deflate" => engine::run(data, true),
        "server_handshake" => server_handshake::run(data),
        "client_handshake" => client_handshake::run(data),
        "extensions" => extensions::run(data),
        "inflate" => inflate::run(data),
        other => panic!("no fuzz target {other:?} (targets: {TARGETS:?})"),
    }
}
