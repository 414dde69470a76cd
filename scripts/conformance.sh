#!/usr/bin/env bash
# Run the Autobahn|Testsuite (../shared/conformance, see its README.md) against
# the duplex release binary, as a server and as a client, both sides at once.
# Exit 0 only when every side run reports FAILED=0 and UNIMPLEMENTED=0 for all
# its cases.
#
#   bash scripts/conformance.sh
#
# Environment:
#   CONFORMANCE_SIDES     server | client | both (default both)
#   CONFORMANCE_EXCLUDE   Autobahn case patterns to skip, comma-separated, e.g.
#                         '12.*,13.*' (default empty: all 517 cases; on 2
#                         cores a full side takes 7-9 min alone, both sides at
#                         once about 10 min)
#   CONFORMANCE_TIMEOUT   wall-clock limit per side in seconds (default 1500)
#   CONFORMANCE_CASE_TIMEOUT  client side: limit per case in seconds (default 60)
#   DUPLEX_BIN            binary under test (default target/release/duplex)
#   AUTOBAHN_HOME         where setup.sh builds the suite (its default otherwise)
#
# Server side: starts `duplex serve --listen 127.0.0.1:0`, reads its first
# stdout line `listening on ws://HOST:PORT`, runs server-suite.sh against
# ws://HOST:PORT/echo, then stops the server with SIGTERM (it must exit 0).
# Client side: client-driver.sh runs `duplex connect --echo {url}` per case
# against its fuzzing server on a free loopback port.
#
# The two sides share nothing but the suite's venvs: the reports go to
# different directories, the fuzzing client listens on no port, the fuzzing
# server runs with its web port off (-u 0), and duplex serve picks a free port.
# setup.sh runs once here, before either side starts (client-driver.sh runs it
# again, which then only checks the stamp), and the server side starts only
# once the client side's fuzzing server is listening, so that nothing can take
# the client side's port between the moment it is picked and the bind.
# Each side runs in a session of its own (setsid) and is judged on its own
# log; on exit, every process left in those sessions is killed.
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

# setup.sh is idempotent (a stamp file); it takes ~20 s the first time
if ! "$CONF/setup.sh" --reference > "$ART/setup.log" 2>&1; then
  tail -20 "$ART/setup.log"
  die "../shared/conformance/setup.sh failed (log: $ART/setup.log)"
fi

declare -A SUMMARY=()   # side -> its summary line
FAILED_SIDES=0
SERVER_PID=""       # duplex serve (session leader)
SUITE_PID=""        # server-suite.sh (session leader)
CLIENT_PID=""       # timeout around client-driver.sh (session leader)
SESSIONS=()         # every session started here, for cleanup

# kill_session SID: SIGKILL every process of session SID (all of them were
# started by this script: setsid made SID for it)
kill_session() {
  local sid="$1" pids
  pids="$(ps -e -o pid=,sid= | awk -v s="$sid" '$2 == s { print $1 }')"
  # shellcheck disable=SC2086  # a list of numbers
  [ -n "$pids" ] && kill -KILL $pids 2>/dev/null
  return 0
}

# (stderr off: bash would report each job it finds killed)
# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() {
  local sid
  for sid in "${SESSIONS[@]}"; do kill_session "$sid"; done
  for sid in "${SESSIONS[@]}"; do wait "$sid"; done
} 2>/dev/null
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
  SUMMARY[$side]="$side: ${line:-none}"
  if [ -n "$why" ]; then
    echo "conformance $side: FAIL ($why)"
    # the non-OK table and the warnings of summarize.py
    sed -n '/^Cases not OK/,/^Sum of case durations/p' "$log"
    grep -E "WARNING|ERROR|NOTE|Traceback" "$log" | head -20
    SUMMARY[$side]+="  -> FAIL ($why)"
    FAILED_SIDES=$((FAILED_SIDES + 1))
    return 1
  fi
  echo "conformance $side: ok"
  SUMMARY[$side]+="  -> ok"
  return 0
}

SERVE_OUT="$ART/duplex-serve-$STAMP.out"
SERVE_ERR="$ART/duplex-serve-$STAMP.log"
SERVER_LOG="$ART/server-suite-$STAMP.log"
SERVER_REPORT="$ART/server-$STAMP"
CLIENT_LOG="$ART/client-driver-$STAMP.log"
SERVER_T0=0
CLIENT_T0=0

# start_serve: start `duplex serve` and wait for its first line; sets
# SERVE_URL. On failure the server side is judged failed here.
start_serve() {
  setsid "$BIN" serve --listen 127.0.0.1:0 > "$SERVE_OUT" 2> "$SERVE_ERR" < /dev/null &
  SERVER_PID=$!
  SESSIONS+=("$SERVER_PID")
  local first=""
  for _ in $(seq 1 150); do   # up to 30 s for the first line
    first="$(head -n1 "$SERVE_OUT" 2>/dev/null)"
    if [ -n "$first" ] && [ "$(wc -l < "$SERVE_OUT")" -ge 1 ]; then break; fi
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
    echo "  stderr ($SERVE_ERR):"; tail -20 "$SERVE_ERR" | sed 's/^/    /'
    SUMMARY[server]="server: duplex serve did not start -> FAIL"
    FAILED_SIDES=$((FAILED_SIDES + 1))
    kill_session "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null; SERVER_PID=""
    return 1
  fi
  SERVE_URL="ws://${BASH_REMATCH[1]}/echo"
  echo "conformance server: duplex serve (pid $SERVER_PID) is $SERVE_URL"
}

start_server_suite() {
  echo "== conformance: server side (duplex serve), log $SERVER_LOG"
  SERVER_T0=$(date +%s)
  setsid env EXCLUDE="$EXCL" WSTEST_TIMEOUT="$SIDE_TMO" \
    "$CONF/server-suite.sh" "$SERVE_URL" duplex '*' "$SERVER_REPORT" > "$SERVER_LOG" 2>&1 < /dev/null &
  SUITE_PID=$!
  SESSIONS+=("$SUITE_PID")
}

# finish_server_side: after server-suite.sh ended: stop duplex serve, show the
# log's main lines, judge
finish_server_side() {
  wait "$SUITE_PID" 2>/dev/null
  echo "== conformance: server side finished after $(( $(date +%s) - SERVER_T0 )) s"
  grep -E "^autobahn server suite:|^  (reports|wstest exit|WARNING|ERROR)|^autobahn server:" "$SERVER_LOG"
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID"
    local rc=""
    for _ in $(seq 1 50); do
      if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
      sleep 0.2
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "  NOTE: duplex serve still running 10 s after SIGTERM; killed"
      kill_session "$SERVER_PID"
    fi
    wait "$SERVER_PID" 2>/dev/null; rc=$?
    [ "$rc" = 0 ] || echo "  NOTE: duplex serve exited with status $rc after SIGTERM (expected 0)"
  else
    wait "$SERVER_PID" 2>/dev/null
    echo "  duplex serve died during the suite (exit status $?); stderr ($SERVE_ERR):"
    tail -20 "$SERVE_ERR" | sed 's/^/    /'
  fi
  kill_session "$SUITE_PID"   # anything server-suite.sh left behind
  SERVER_PID="" SUITE_PID=""
  judge server "$SERVER_LOG"
}

start_client_side() {
  local port
  echo "== conformance: client side (duplex connect --echo), log $CLIENT_LOG"
  # a free loopback port for the fuzzing server
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
  CLIENT_T0=$(date +%s)
  # timeout signals its process group on expiry (the driver and the client
  # under test); the fuzzing server (in a group of its own, same session) ends
  # with the driver's EXIT trap, or at the latest in cleanup()
  setsid env EXCLUDE="$EXCL" CLIENT_SUITE_MAX_SECONDS="$SIDE_TMO" \
    timeout --kill-after=10 "$SIDE_TMO" \
    "$CONF/client-driver.sh" --agent duplex --port "$port" --case-timeout "$CASE_TMO" \
    -- "$BIN" connect --echo '{url}' > "$CLIENT_LOG" 2>&1 < /dev/null &
  CLIENT_PID=$!
  SESSIONS+=("$CLIENT_PID")
}

# wait_client_ready: until the client side's fuzzing server answered the case
# count (its first line), the client side ended, or 60 s passed
wait_client_ready() {
  for _ in $(seq 1 300); do
    grep -q "^autobahn client suite:" "$CLIENT_LOG" 2>/dev/null && return 0
    kill -0 "$CLIENT_PID" 2>/dev/null || return 0
    sleep 0.2
  done
  echo "conformance client: no 'autobahn client suite:' line after 60 s; starting the server side anyway"
}

finish_client_side() {
  local rc
  wait "$CLIENT_PID" 2>/dev/null; rc=$?
  echo "== conformance: client side finished after $(( $(date +%s) - CLIENT_T0 )) s"
  grep -E "^autobahn client suite:|^  (case [0-9]+:|wall time)|^autobahn client:|^client-driver.sh:" "$CLIENT_LOG"
  [ "$rc" = 124 ] && echo "  the client side hit CONFORMANCE_TIMEOUT (${SIDE_TMO}s)"
  kill_session "$CLIENT_PID"  # the fuzzing server, if the driver did not stop it
  CLIENT_PID=""
  judge client "$CLIENT_LOG"
}

# start: client side first (its fuzzing server must be listening before the
# server side's connections begin), then duplex serve and the server suite
SERVER_JUDGED=0 CLIENT_JUDGED=0
[ "$RUN_SERVER" = 1 ] || SERVER_JUDGED=1
[ "$RUN_CLIENT" = 1 ] || CLIENT_JUDGED=1
if [ "$RUN_CLIENT" = 1 ]; then
  start_client_side
  [ "$RUN_SERVER" = 1 ] && wait_client_ready
fi
if [ "$RUN_SERVER" = 1 ]; then
  if start_serve; then start_server_suite; else SERVER_JUDGED=1; fi
fi

# wait for both; judge each side as soon as it ends, and say every 2 min
# which sides are still running
T0=$(date +%s)
NEXT_NOTE=$((T0 + 120))
while [ "$SERVER_JUDGED" = 0 ] || [ "$CLIENT_JUDGED" = 0 ]; do
  if [ "$SERVER_JUDGED" = 0 ] && ! kill -0 "$SUITE_PID" 2>/dev/null; then
    finish_server_side; SERVER_JUDGED=1
  fi
  if [ "$CLIENT_JUDGED" = 0 ] && ! kill -0 "$CLIENT_PID" 2>/dev/null; then
    finish_client_side; CLIENT_JUDGED=1
  fi
  if [ "$SERVER_JUDGED" = 0 ] || [ "$CLIENT_JUDGED" = 0 ]; then
    if [ "$(date +%s)" -ge "$NEXT_NOTE" ]; then
      running=()
      [ "$SERVER_JUDGED" = 0 ] && running+=("server")
      [ "$CLIENT_JUDGED" = 0 ] && running+=("client")
      echo "conformance: $(( $(date +%s) - T0 )) s, still running: ${running[*]}"
      NEXT_NOTE=$((NEXT_NOTE + 120))
    fi
    sleep 1
  fi
done

echo "== conformance summary"
for side in server client; do
  [ -n "${SUMMARY[$side]:-}" ] && echo "  ${SUMMARY[$side]}"
done
echo "  logs: $ART"
if [ "$FAILED_SIDES" != 0 ]; then
  echo "conformance: FAILED ($FAILED_SIDES side(s))"
  exit 1
fi
echo "conformance: all sides passed"
exit 0
