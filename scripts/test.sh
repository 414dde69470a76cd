#!/usr/bin/env bash
# shellcheck disable=SC2317  # the install and check functions are called through step()
# The one test command of duplex:   bash scripts/test.sh   (from the repo root)
#
# On a fresh Debian machine with Rust, Python 3 and Node 20 (+npm) it installs
# what the tests need (idempotent, quiet), then runs every check in order and
# stops at the first failing step:
#
#   apt         apt packages chromium and redis-server
#   venv        Python venv .venv-test with tests/peers/requirements.txt
#   npm         npm ci in tests/peers
#   autobahn    the Autobahn|Testsuite (../shared/conformance/setup.sh --reference)
#   fmt, clippy, doc, build (release), test (release), node-tests
#   (tests/*.test.{js,mjs}, tests/node/*.test.{js,mjs}, tests/browser/*.test.{js,mjs}),
#   conformance (scripts/conformance.sh)
#
# Exported for the tests: DUPLEX_PYTHON, DUPLEX_NODE_MODULES, DUPLEX_PEERS_DIR,
# DUPLEX_REQUIRE_PEERS=1, DUPLEX_CHROMIUM, DUPLEX_REDIS_SERVER (and NODE_PATH).
#
# Environment knobs:
#   CONFORMANCE_EXCLUDE  Autobahn case patterns to skip (default '': all 517
#                        cases, ~7 min per side), e.g. '12.*,13.*'
#   CONFORMANCE_SIDES    server | client | both (default both)
#   DUPLEX_TEST_SKIP     step ids to skip, comma- or space-separated: apt venv
#                        npm autobahn fmt clippy doc build test node-tests
#                        conformance, e.g. 'conformance' or 'clippy,doc'
#                        (listed as skipped in the summary, never as passed)
#
# Ends with a summary, one line per step, and a last line `N passed, N failed`.
# Logs of the install steps: test-artifacts/install-*.log.
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT" || exit 1
SHARED_DIR="$ROOT/../shared"
PEERS="$ROOT/tests/peers"
VENV="$ROOT/.venv-test"
ART="$ROOT/test-artifacts"
mkdir -p "$ART"
export DEBIAN_FRONTEND=noninteractive

SUDO=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=(sudo -n); fi
fi

NAMES=()
RESULTS=()
PASSED=0
FAILED=0
NOTHING_TO_RUN=0
SKIP=",${DUPLEX_TEST_SKIP:-},"
SKIP="${SKIP// /,}"
T_START=$(date +%s)

summary() {
  echo
  echo "== summary ($(( $(date +%s) - T_START )) s)"
  local i
  for i in "${!NAMES[@]}"; do
    printf '  %-66s %s\n' "${NAMES[$i]}" "${RESULTS[$i]}"
  done
  echo "$PASSED passed, $FAILED failed"
}

# step ID DESCRIPTION CMD...: run one step with a header; on failure print the
# summary and exit 1
step() {
  local id="$1" name="$1: $2"; shift 2
  NAMES+=("$name")
  if [[ "$SKIP" == *",$id,"* ]]; then
    echo "== $name (skipped: DUPLEX_TEST_SKIP)"
    RESULTS+=("skipped (DUPLEX_TEST_SKIP)")
    return 0
  fi
  echo "== $name"
  local t0 rc
  t0=$(date +%s)
  NOTHING_TO_RUN=0
  "$@" < /dev/null
  rc=$?
  local dt=$(( $(date +%s) - t0 ))
  if [ "$rc" = 0 ] && [ "$NOTHING_TO_RUN" = 1 ]; then
    RESULTS+=("skipped (nothing to run)")
    return 0
  fi
  if [ "$rc" = 0 ]; then
    PASSED=$((PASSED + 1))
    RESULTS+=("ok (${dt} s)")
    return 0
  fi
  FAILED=$((FAILED + 1))
  RESULTS+=("FAILED (exit $rc, ${dt} s)")
  echo "test.sh: step '$name' failed (exit status $rc)"
  summary
  exit 1
}

# quietly LOG CMD...: run CMD with its output appended to LOG, show the log's tail on failure
quietly() {
  local log="$1"; shift
  if "$@" >> "$log" 2>&1; then return 0; fi
  local rc=$?
  echo "  command failed (exit $rc): $*"
  tail -n 30 "$log" | sed 's/^/  | /'
  echo "  full log: $log"
  return "$rc"
}

# -- install steps -------------------------------------------------------------

apt_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

install_apt() {
  local missing=() p
  for p in chromium redis-server; do
    apt_installed "$p" || missing+=("$p")
  done
  if [ "${#missing[@]}" = 0 ]; then
    echo "  chromium and redis-server are installed"
  else
    if [ "$(id -u)" != 0 ] && [ "${#SUDO[@]}" = 0 ]; then
      echo "  need root (or sudo) to install: ${missing[*]}"
      return 1
    fi
    echo "  installing ${missing[*]} (apt-get)"
    rm -f "$ART/install-apt.log"
    quietly "$ART/install-apt.log" "${SUDO[@]}" apt-get update -q || return 1
    quietly "$ART/install-apt.log" "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -q -o Dpkg::Use-Pty=0 "${missing[@]}" || return 1
  fi
  [ -x /usr/bin/chromium ] || { echo "  /usr/bin/chromium is missing after the install"; return 1; }
  command -v redis-server >/dev/null 2>&1 || { echo "  redis-server is not on PATH after the install"; return 1; }
}

install_venv() {
  local stamp_val stamp_file="$VENV/.duplex-requirements.sha256"
  stamp_val="$( (cat "$PEERS/requirements.txt"; python3 --version) | sha256sum | cut -d' ' -f1)"
  if [ -x "$VENV/bin/python" ] && [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp_val" ] \
     && "$VENV/bin/python" -c 'import websockets' 2>/dev/null; then
    echo "  $VENV is up to date (websockets $("$VENV/bin/python" -c 'import websockets; print(websockets.__version__)'))"
    return 0
  fi
  echo "  building $VENV with $(python3 --version 2>&1)"
  rm -rf "$VENV"
  rm -f "$ART/install-venv.log" "$ART/install-apt-venv.log"
  if ! python3 -m venv "$VENV" > "$ART/install-venv.log" 2>&1; then
    # Debian's python3 needs python3-venv for ensurepip
    rm -rf "$VENV"
    echo "  python3 -m venv failed; installing python3-venv"
    quietly "$ART/install-apt-venv.log" "${SUDO[@]}" apt-get update -q || return 1
    quietly "$ART/install-apt-venv.log" "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -q --no-install-recommends -o Dpkg::Use-Pty=0 python3-venv || return 1
    quietly "$ART/install-venv.log" python3 -m venv "$VENV" || return 1
  fi
  quietly "$ART/install-venv.log" "$VENV/bin/pip" install -q --disable-pip-version-check \
    -r "$PEERS/requirements.txt" || return 1
  echo "$stamp_val" > "$stamp_file"
  echo "  websockets $("$VENV/bin/python" -c 'import websockets; print(websockets.__version__)')"
}

install_npm() {
  local stamp_val stamp_file="$PEERS/node_modules/.duplex-lock.sha256"
  stamp_val="$( (cat "$PEERS/package-lock.json"; node --version) | sha256sum | cut -d' ' -f1)"
  if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp_val" ]; then
    echo "  tests/peers/node_modules is up to date"
    return 0
  fi
  echo "  npm ci in tests/peers ($(node --version))"
  rm -f "$ART/install-npm.log"
  (cd "$PEERS" && quietly "$ART/install-npm.log" npm ci --no-audit --no-fund --loglevel=error) || return 1
  echo "$stamp_val" > "$stamp_file"
  echo "  ws $(node -p "require('$PEERS/node_modules/ws/package.json').version")," \
    "playwright-core $(node -p "require('$PEERS/node_modules/playwright-core/package.json').version")"
}

install_autobahn() {
  rm -f "$ART/install-autobahn.log"
  quietly "$ART/install-autobahn.log" "$SHARED_DIR/conformance/setup.sh" --reference || return 1
  grep -E "up to date|test cases loaded|== done" "$ART/install-autobahn.log" | sed 's/^/  /'
}

# -- check steps ---------------------------------------------------------------

node_tests() {
  local files=() f
  shopt -s nullglob
  for f in tests/*.test.js tests/*.test.mjs tests/node/*.test.js tests/node/*.test.mjs \
           tests/browser/*.test.js tests/browser/*.test.mjs; do
    files+=("$f")
  done
  shopt -u nullglob
  if [ "${#files[@]}" = 0 ]; then
    echo "  no node test files (tests/node/*.test.mjs, tests/browser/*.test.mjs, tests/*.test.js): nothing to run"
    NOTHING_TO_RUN=1
    return 0
  fi
  echo "  node --test ${files[*]}"
  node --test "${files[@]}"
}

# -- run -----------------------------------------------------------------------

echo "duplex test run: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(nproc) cores, CI=${CI:-}"
if [ ! -d "$SHARED_DIR/conformance" ]; then
  echo "test.sh: ../shared/conformance is missing: the shared/ folder must sit beside the repository ($ROOT/../shared)"
  NAMES+=("prerequisites: ../shared beside the repository"); RESULTS+=("FAILED"); FAILED=1
  summary
  exit 1
fi
SHARED_DIR="$(cd "$SHARED_DIR" && pwd)"
for tool in cargo python3 node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "test.sh: '$tool' is not on PATH"
    NAMES+=("prerequisites: $tool on PATH"); RESULTS+=("FAILED"); FAILED=1
    summary
    exit 1
  fi
done

step apt "install chromium, redis-server (apt-get)" install_apt
step venv "install .venv-test (tests/peers/requirements.txt)" install_venv
step npm "install tests/peers/node_modules (npm ci)" install_npm
step autobahn "install Autobahn|Testsuite (setup.sh --reference)" install_autobahn

export DUPLEX_PYTHON="$VENV/bin/python"
export DUPLEX_NODE_MODULES="$PEERS/node_modules"
export DUPLEX_PEERS_DIR="$PEERS"
export DUPLEX_REQUIRE_PEERS=1
export DUPLEX_CHROMIUM=/usr/bin/chromium
DUPLEX_REDIS_SERVER="$(command -v redis-server || echo /usr/bin/redis-server)"
export DUPLEX_REDIS_SERVER
export NODE_PATH="$DUPLEX_NODE_MODULES${NODE_PATH:+:$NODE_PATH}"
export CONFORMANCE_EXCLUDE="${CONFORMANCE_EXCLUDE-}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
echo "== environment"
for v in DUPLEX_PYTHON DUPLEX_NODE_MODULES DUPLEX_PEERS_DIR DUPLEX_REQUIRE_PEERS DUPLEX_CHROMIUM \
         DUPLEX_REDIS_SERVER CONFORMANCE_EXCLUDE; do
  echo "  $v=${!v}"
done

step fmt "cargo fmt --all -- --check" cargo fmt --all -- --check
step clippy "cargo clippy --workspace --all-targets -- -D warnings" \
  cargo clippy --workspace --all-targets -- -D warnings
step doc "RUSTDOCFLAGS='-D warnings' cargo doc --workspace --no-deps" \
  env RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps
step build "cargo build --release --workspace" cargo build --release --workspace
step test "cargo test --release --workspace" cargo test --release --workspace
step node-tests "node --test tests/{,node/,browser/}*.test.{js,mjs}" node_tests
step conformance "scripts/conformance.sh (Autobahn, server and client)" bash "$ROOT/scripts/conformance.sh"

summary
exit 0
