#!/usr/bin/env bash
# Run the cargo-fuzz targets of fuzz/ (see fuzz/src/*.rs for what each
# checks), one after the other, each for a bounded time. Exit 0 only when
# none of them crashed.
#
#   bash scripts/fuzz.sh [TARGET...]      (default: every target)
#
# Needs rustup's nightly toolchain (installed here with the minimal profile
# when missing) and cargo-fuzz 0.13.2 (CARGO_FUZZ_VERSION below; installed with
# `cargo install --locked` when missing or another version). Builds once,
# without a sanitizer: duplex-proto forbids unsafe code, and AddressSanitizer
# ran engine_deflate 4x slower (889 against 3,730 exec/s, 30 s each from the
# same corpus, 2026-12-02). Each target starts from its seeds
# (fuzz/seeds/<target>, read only) and its kept crashes
# (fuzz/regressions/<target>), and grows a working corpus in
# fuzz/corpus/<target> (gitignored, kept between runs).
#
# A crash (a failed check, a panic, an input running over 10 s, or over
# 2 GiB of memory) fails the run; libFuzzer writes the input to
# fuzz/artifacts/<target>/, and the script prints that path and how to
# reproduce it. Fix the cause, then keep the input as a regression test:
# copy it into fuzz/regressions/<target>/, where `cargo test -p duplex-proto`
# replays it (duplex-proto/tests/fuzz_regressions.rs).
#
# Environment:
#   FUZZ_SECONDS   seconds per target (default 20; with CI=true at least 60)
#   CARGO_TARGET_DIR  builds go to $CARGO_TARGET_DIR/fuzz (else fuzz/target)
# Logs: test-artifacts/fuzz/<target>.log.
set -uo pipefail

CARGO_FUZZ_VERSION=0.13.2
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
LOGS="$ROOT/test-artifacts/fuzz"
mkdir -p "$LOGS"

SECONDS_EACH="${FUZZ_SECONDS:-20}"
if [ "${CI:-}" = true ] && [ "$SECONDS_EACH" -lt 60 ]; then
  echo "fuzz.sh: CI=true: $SECONDS_EACH s per target raised to 60"
  SECONDS_EACH=60
fi

ALL_TARGETS=(engine engine_deflate server_handshake client_handshake extensions inflate)
TARGETS=("$@")
[ "${#TARGETS[@]}" = 0 ] && TARGETS=("${ALL_TARGETS[@]}")
for t in "${TARGETS[@]}"; do
  [ -f "fuzz/fuzz_targets/$t.rs" ] || { echo "fuzz.sh: no target '$t' (targets: ${ALL_TARGETS[*]})"; exit 1; }
done

# -- tools ---------------------------------------------------------------------

if ! command -v rustup >/dev/null 2>&1; then
  echo "fuzz.sh: rustup is not on PATH: the fuzz targets need a nightly toolchain installed with rustup (https://rustup.rs)"
  exit 1
fi
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "  installing the nightly toolchain (rustup, minimal profile)"
  if ! rustup toolchain install nightly --profile minimal > "$LOGS/install-nightly.log" 2>&1; then
    tail -n 20 "$LOGS/install-nightly.log" | sed 's/^/  | /'
    echo "fuzz.sh: the nightly toolchain is missing and could not be installed: run 'rustup toolchain install nightly --profile minimal'"
    exit 1
  fi
fi
echo "  $(rustup run nightly rustc --version)"
if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
  echo "  installing cargo-fuzz $CARGO_FUZZ_VERSION (cargo install --locked)"
  t0=$(date +%s)
  if ! env -u CARGO_TARGET_DIR cargo install --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION" \
       > "$LOGS/install-cargo-fuzz.log" 2>&1; then
    tail -n 20 "$LOGS/install-cargo-fuzz.log" | sed 's/^/  | /'
    echo "fuzz.sh: could not install cargo-fuzz $CARGO_FUZZ_VERSION (full log: $LOGS/install-cargo-fuzz.log)"
    exit 1
  fi
  echo "  cargo-fuzz installed in $(( $(date +%s) - t0 )) s"
fi

# -- build ---------------------------------------------------------------------

FUZZ_TARGET_DIR="${CARGO_TARGET_DIR:+$CARGO_TARGET_DIR/fuzz}"
FUZZ_TARGET_DIR="${FUZZ_TARGET_DIR:-$ROOT/fuzz/target}"
FUZZ_ARGS=(--sanitizer none --target-dir "$FUZZ_TARGET_DIR")
t0=$(date +%s)
if ! cargo +nightly fuzz build "${FUZZ_ARGS[@]}" > "$LOGS/build.log" 2>&1; then
  tail -n 40 "$LOGS/build.log" | sed 's/^/  | /'
  echo "fuzz.sh: building the fuzz targets failed (full log: $LOGS/build.log)"
  exit 1
fi
echo "  built the fuzz targets in $(( $(date +%s) - t0 )) s; running ${#TARGETS[@]}, $SECONDS_EACH s each"

# -- run -----------------------------------------------------------------------

FAILED=()
for t in "${TARGETS[@]}"; do
  corpus="fuzz/corpus/$t"
  mkdir -p "$corpus" "fuzz/artifacts/$t"
  dirs=("$corpus" "fuzz/seeds/$t")
  [ -d "fuzz/regressions/$t" ] && dirs+=("fuzz/regressions/$t")
  marker="$LOGS/$t.start"
  touch "$marker"
  t0=$(date +%s)
  cargo +nightly fuzz run "${FUZZ_ARGS[@]}" "$t" "${dirs[@]}" -- \
    -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    > "$LOGS/$t.log" 2>&1
  rc=$?
  dt=$(( $(date +%s) - t0 ))
  # libFuzzer's last status line: executions, coverage, features, corpus, exec/s.
  done_line="$(grep -E '^#[0-9]+[[:space:]]+DONE ' "$LOGS/$t.log" | tail -n 1 | tr -s '[:space:]' ' ' | sed 's/ $//')"
  if [ "$rc" = 0 ]; then
    echo "  ok      $t (${dt} s): ${done_line:-no final status line}"
  else
    FAILED+=("$t")
    echo "  FAILED  $t (exit $rc, ${dt} s), log: $LOGS/$t.log"
    grep -E '^(thread .* panicked|==[0-9]+== ERROR|SUMMARY)' "$LOGS/$t.log" | head -n 5 | sed 's/^/  | /'
    grep -A3 -E '^thread .* panicked' "$LOGS/$t.log" | sed -n 2,4p | sed 's/^/  | /'
    find "fuzz/artifacts/$t" -type f -newer "$marker" | while read -r input; do
      echo "  crashing input: $input"
      echo "    reproduce: cargo +nightly fuzz run ${FUZZ_ARGS[*]} $t $input"
      echo "    after the fix, keep it: cp $input fuzz/regressions/$t/"
    done
  fi
  rm -f "$marker"
done

if [ "${#FAILED[@]}" != 0 ]; then
  echo "fuzz.sh: ${#FAILED[@]} of ${#TARGETS[@]} targets failed: ${FAILED[*]}"
  exit 1
fi
echo "  ${#TARGETS[@]} targets, $SECONDS_EACH s each: no crash"
