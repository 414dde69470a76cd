//! The fuzz targets' seeds and kept crashes, replayed under plain
//! `cargo test`: every file in `fuzz/seeds/<target>/` and
//! `fuzz/regressions/<target>/` goes through the same harness the fuzzer
//! runs (the `fuzz/src` code, included here), so a fixed crash stays fixed
//! without nightly or cargo-fuzz.
#![cfg(feature = "deflate")]

use std::path::{Path, PathBuf};

#[path = "../../fuzz/src/lib.rs"]
mod fuzz;

/// The files of one corpus folder, sorted (none if it does not exist).
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn seeds_and_regressions_pass_their_harness() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut failed = Vec::new();
    for target in fuzz::TARGETS {
        let seeds = inputs(&root.join("seeds").join(target));
        assert!(!seeds.is_empty(), "no seeds for the fuzz target {target}");
        let regressions = inputs(&root.join("regressions").join(target));
        for path in seeds.iter().chain(&regressions) {
            let data = std::fs::read(path).unwrap();
            let run = std::panic::catch_unwind(|| fuzz::run(target, &data));
            if run.is_err() {
                failed.push(path.display().to_string());
            }
        }
    }
    assert!(failed.is_empty(), "harness failures: {failed:#?}");
}
