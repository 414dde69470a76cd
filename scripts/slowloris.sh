#!/usr/bin/env bash
# Slow-sender load against `duplex serve`: N connections each start a 1 MiB
# frame and trickle its payload at 1 byte per second, never answering pings
# (duplex-cli/examples/slowloris.rs); prints how many the server still holds
# after the hold time. Not CPU heavy; the figures are in the README.
#
#   bash scripts/slowloris.sh [SERVE FLAGS...]
#   bash scripts/slowloris.sh --keepalive 5
#   bash scripts/slowloris.sh --message-timeout 0      # progress timeout off
#
# Environment:
#   CONNECTIONS   connections (default 2000; needs twice as many descriptors
#                 in all, see ulimit -n)
#   HOLD          seconds to hold (default 60)
#   ROUTE         path to load (default /echo)
#   DUPLEX_BIN    the server binary (default: the release build in cargo's
#                 target directory, built first)
#   SLOWLORIS_BIN the load binary (default: the release example, built first)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CONNECTIONS="${CONNECTIONS:-2000}"
HOLD="${HOLD:-60}"
ROUTE="${ROUTE:-/echo}"

TARGET_DIR="$(cargo metadata --no-deps --format-version 1 2>/dev/null \
  | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
TARGET_DIR="${TARGET_DIR:-$ROOT/target}"
if [ -z "${DUPLEX_BIN:-}" ]; then
  cargo build --release -q -p duplex-cli --bin duplex
  DUPLEX_BIN="$TARGET_DIR/release/duplex"
fi
if [ -z "${SLOWLORIS_BIN:-}" ]; then
  cargo build --release -q -p duplex-cli --example slowloris
  SLOWLORIS_BIN="$TARGET_DIR/release/examples/slowloris"
fi

need=$((CONNECTIONS * 2 + 64))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
  ulimit -n "$need" 2>/dev/null || {
    echo "slowloris.sh: ulimit -n is $(ulimit -n), below the $need this load needs"
    exit 1
  }
fi

OUT="$(mktemp)"
"$DUPLEX_BIN" serve --listen 127.0.0.1:0 "$@" > "$OUT" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -f "$OUT"' EXIT
for _ in $(seq 100); do
  grep -q '^listening on ' "$OUT" && break
  sleep 0.1
done
URL="$(sed -n 's/^listening on \(ws:\/\/[^ ]*\).*/\1/p' "$OUT" | head -n1)"
[ -n "$URL" ] || { echo "slowloris.sh: duplex serve did not start:"; cat "$OUT"; exit 1; }

echo "duplex serve $* on $URL; $CONNECTIONS connections to $ROUTE, hold $HOLD s"
"$SLOWLORIS_BIN" "$URL$ROUTE" --connections "$CONNECTIONS" --hold "$HOLD"
