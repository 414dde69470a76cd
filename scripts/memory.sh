#!/usr/bin/env bash
# What an idle connection costs `duplex serve`, per compression setting:
# starts the server with each set of flags, opens N connections that each
# echo one message (examples/memory_probe.rs), and prints the server's
# resident memory per idle connection and after they all closed.
#
#   bash scripts/memory.sh [N] [chat|16k]     (default 10000 chat)
#
# Each line of the report is one server configuration. The figures in the
# README's table of compression policies come from this script.
set -euo pipefail
cd "$(dirname "$0")/.."
connections=${1:-10000}
message=${2:-chat}
cargo build --release --quiet -p duplex-cli
cargo build --release --quiet -p duplex-ws --example memory_probe
bin=target/release
# Each server and the probe hold one descriptor per connection.
ulimit -n "$(( connections * 2 + 1024 ))" 2>/dev/null || ulimit -n "$(ulimit -Hn)"

run() {
    local label=$1; shift
    local log port pid
    log=$(mktemp)
    "$bin/duplex" serve --listen 127.0.0.1:0 --max-connections "$(( connections + 100 ))" "$@" >"$log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        port=$(sed -n 's/^listening on ws:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log")
        [ -n "$port" ] && break
        sleep 0.1
    done
    [ -n "$port" ] || { cat "$log"; kill "$pid"; exit 1; }
    local probe=(--url "ws://127.0.0.1:$port/echo" --pid "$pid" --connections "$connections" --message "$message")
    [ "$label" = off ] && probe+=(--no-deflate)
    echo "== $label: duplex serve $*"
    "$bin/examples/memory_probe" "${probe[@]}"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -f "$log"
}

if [ -n "${MEMORY_CONFIGS:-}" ]; then
    eval "$MEMORY_CONFIGS"
else
    run default
    run off --no-compression
fi
