#!/usr/bin/env bash
# Run the Autobahn|Testsuite (../shared/conformance, see its README.md) against
# the duplex release binary, as a server and as a client. Exit 0 only when
# every side run reports FAILED=0 and UNIMPLEMENTED=0 for all its cases.
#
#   bash scripts/conformance.sh
#
# Environment:
#   CONFORMANCE_SIDES     server | client | both (default both)
#   CONFORMANCE_EXCLUDE   Autobahn case patterns to skip, comma-separated, e.g.
#                         '12.*,13.*' (default empty: all 517 cases; the full
#                         suites take about 7 min per side on 2 cores)
#   CONFORMANCE_TIMEOUT   wall-clock limit per side in seconds (default 1500)
#   CONFORMANCE_CASE_TIMEOUT  client side: limit per case in seconds (default 60)
#   DUPLEX_BIN            binary under test (default target/release/duplex)
#   AUTOBAHN_HOME         where setup.sh builds the suite (its default otherwise)
#
# Server side: starts `duplex serve --listen 127.0.0.1:0`, reads its first
# stdout line `listening on ws://HOST:PORT`, runs server-suite.sh against
# ws://HOST:PORT/echo, then stops the server with SIGTERM.
# Client side: client-driver.sh runs `duplex connect --echo {url}` per case.
# Logs and the server-side report go to test-artifacts/conformance/.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARED="$ROOT/../shared"
CONF="$SHARED/conformance"
BIN="${DUPLEX_BIN:-$ROOT/target/release/duplex}"
SIDES="${CONFORMANCE_SIDES:-both}"
EXCL="${CONFORMANCE_EXCLUDE:-}"
SIDE_TMO="${CONFORMANCE_TIMEOUT:-1500}"
CASE_TMO="${CONFORMANCE_CASE_TIMEOUT:-60}"
ART="$ROOT/test-artifacts/conformance"
STAMP="$(date -u +%Y%m%d-%H%M%S)"

die() { echo "conformance: $*" >&2; exit 1; }

case "$SIDES" in
  server) RUN_SERVER=1 RUN_CLIENT=0 ;;
  client) RUN_SERVER=0 RUN_CLIENT=1 ;;
  both) RUN_SERVER=1 RUN_CLIENT=1 ;;
  *) die "CONFORMANCE_SIDES must be server, client or both (got '$SIDES')" ;;
esac
[[ "$SIDE_TMO" =~ ^[0-9]+$ ]] || die "CONFORMANCE_TIMEOUT must be a number of seconds"
[[ "$CASE_TMO" =~ ^[0-9]+$ ]] || die "CONFORMANCE_CASE_TIMEOUT must be a number of seconds"
[ -d "$CONF" ] || die "the conformance suite is missing: expected ../shared/conformance beside the repository ($CONF)"
[ -x "$BIN" ] || die "binary under test not found or not executable: $BIN (run: cargo build --release --workspace)"
SHARED="$(cd "$SHARED" && pwd)"
CONF="$SHARED/conformance"
mkdir -p "$ART"

echo "conformance: binary $BIN, sides $SIDES, exclude '${EXCL:-none}', timeout ${SIDE_TMO}s per side"

# setup.sh is idempotent (a stamp file); it takes ~15 s the first time
if ! "$CONF/setup.sh" --reference > "$ART/setup.log" 2>&1; then
  tail -20 "$ART/setup.log"
  die "../shared/conformance/setup.sh failed (log: $ART/setup.log)"
fi

SUMMARY=()
FAILED_SIDES=0
SERVER_PID=""

cleanup() {
  # the server runs in its own process group (setsid): end it and any children
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    { kill -KILL -- "-$SERVER_PID" || kill -KILL "$SERVER_PID"; wait "$SERVER_PID"; } 2>/dev/null
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# judge SIDE LOG: check the last `autobahn SIDE:` line of LOG; print the
# non-OK table when the side fails. Returns 0 when the side passed.
judge() {
  local side="$1" log="$2" line why=""
  line="$(grep -E "^autobahn $side: " "$log" | tail -1)"
  if [ -z "$line" ]; then
    why="no 'autobahn $side:' summary line"
  elif [[ "$line" =~ ^autobahn\ $side:\ ([0-9]+)\ cases,\ OK=([0-9]+)\ NON-STRICT=([0-9]+)\ INFORMATIONAL=([0-9]+)\ UNIMPLEMENTED=([0-9]+)\ FAILED=([0-9]+)(.*)$ ]]; then
    local n="${BASH_REMATCH[1]}" unimpl="${BASH_REMATCH[5]}" failed="${BASH_REMATCH[6]}" rest="${BASH_REMATCH[7]}"
    if [ "$n" = 0 ]; then why="no cases ran${rest}"
    elif [ -n "${rest// /}" ]; then why="report problem:${rest}"
    elif grep -q "MISSING=" "$log"; then why="$(grep -m1 "MISSING=" "$log")"
    elif [ "$failed" != 0 ] || [ "$unimpl" != 0 ]; then why="FAILED=$failed UNIMPLEMENTED=$unimpl"
    fi
  else
    why="unreadable summary line: $line"
  fi
  SUMMARY+=("$side: ${line:-none}")
  if [ -n "$why" ]; then
    echo "conformance $side: FAIL ($why)"
    # the non-OK table and the warnings of summarize.py
    sed -n '/^Cases not OK/,/^Sum of case durations/p' "$log"
    grep -E "WARNING|ERROR|NOTE|Traceback" "$log" | head -20
    SUMMARY[-1]+="  -> FAIL ($why)"
    FAILED_SIDES=$((FAILED_SIDES + 1))
    return 1
  fi
  echo "conformance $side: ok"
  SUMMARY[-1]+="  -> ok"
  return 0
}

run_server_side() {
  local out="$ART/duplex-serve-$STAMP.out" err="$ART/duplex-serve-$STAMP.log"
  local log="$ART/server-suite-$STAMP.log" report="$ART/server-$STAMP"
  echo "== conformance: server side (duplex serve)"
  setsid "$BIN" serve --listen 127.0.0.1:0 > "$out" 2> "$err" < /dev/null &
  SERVER_PID=$!
  local first=""
  for _ in $(seq 1 150); do   # up to 30 s for the first line
    first="$(head -n1 "$out" 2>/dev/null)"
    if [ -n "$first" ] && [ "$(wc -l < "$out")" -ge 1 ]; then break; fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
    first=""
    sleep 0.2
  done
  if ! [[ "$first" =~ ^listening\ on\ ws://([^/[:space:]]+)$ ]]; then
    if [ -z "$first" ]; then
      echo "conformance server: 'duplex serve' printed no 'listening on ws://HOST:PORT' line within 30 s"
    else
      echo "conformance server: unexpected first stdout line from 'duplex serve': $first"
    fi
    echo "  stderr ($err):"; tail -20 "$err" | sed 's/^/    /'
    SUMMARY+=("server: duplex serve did not start -> FAIL")
    FAILED_SIDES=$((FAILED_SIDES + 1))
    cleanup; SERVER_PID=""
    return 1
  fi
  local url="ws://${BASH_REMATCH[1]}/echo"
  echo "duplex serve (pid $SERVER_PID) is $url"
  EXCLUDE="$EXCL" WSTEST_TIMEOUT="$SIDE_TMO" \
    "$CONF/server-suite.sh" "$url" duplex '*' "$report" 2>&1 | tee "$log" | grep -E "^autobahn server suite:|^  (reports|wstest exit|WARNING|ERROR)|^autobahn server:"
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID"
    local rc=""
    for _ in $(seq 1 50); do
      if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
      sleep 0.2
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "  NOTE: duplex serve still running 10 s after SIGTERM; killed"
      kill -KILL -- "-$SERVER_PID" 2>/dev/null
    fi
    wait "$SERVER_PID" 2>/dev/null; rc=$?
    [ "$rc" = 0 ] || echo "  NOTE: duplex serve exited with status $rc after SIGTERM (expected 0)"
  else
    wait "$SERVER_PID"
    echo "  duplex serve died during the suite (exit status $?); stderr ($err):"
    tail -20 "$err" | sed 's/^/    /'
  fi
  SERVER_PID=""
  judge server "$log"
}

run_client_side() {
  local log="$ART/client-driver-$STAMP.log" port
  echo "== conformance: client side (duplex connect --echo)"
  # a free loopback port for the fuzzing server
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
  # timeout (not --foreground) signals its whole process group on expiry: the
  # driver, the client under test and the fuzzing server it started
  EXCLUDE="$EXCL" CLIENT_SUITE_MAX_SECONDS="$SIDE_TMO" \
    timeout --kill-after=10 "$SIDE_TMO" \
    "$CONF/client-driver.sh" --agent duplex --port "$port" --case-timeout "$CASE_TMO" \
    -- "$BIN" connect --echo '{url}' 2>&1 | tee "$log" | grep -E "^autobahn client suite:|^  (case [0-9]+:|wall time)|^autobahn client:|^client-driver.sh:"
  local rc="${PIPESTATUS[0]}"
  [ "$rc" = 124 ] && echo "  the client side hit CONFORMANCE_TIMEOUT (${SIDE_TMO}s)"
  judge client "$log"
}

[ "$RUN_SERVER" = 1 ] && run_server_side
[ "$RUN_CLIENT" = 1 ] && run_client_side

echo "== conformance summary"
for s in "${SUMMARY[@]}"; do echo "  $s"; done
echo "  logs: $ART"
if [ "$FAILED_SIDES" != 0 ]; then
  echo "conformance: FAILED ($FAILED_SIDES side(s))"
  exit 1
fi
echo "conformance: all sides passed"
exit 0
