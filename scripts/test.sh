#!/usr/bin/env bash
# shellcheck disable=SC2317  # the install and check functions are called through step()
# The one test command of duplex:   bash scripts/test.sh   (from the repo root)
#
# Needs: Rust (rustc >= the workspace rust-version in Cargo.toml, with rustfmt
# and clippy), Python >= 3.11 as python3 (websockets 17.4, pinned in
# tests/peers/requirements.txt, requires it), Node >= 20 with npm >= 7
# (tests/peers/package.json; lockfile v3). It checks them first and says what
# to install, one line each. Then it installs what the tests need (idempotent,
# quiet; apt needs root or sudo) and runs every check in order, stopping at
# the first failing step. Step ids:
#
#   apt          apt packages chromium, redis-server, microsocks and tinyproxy (real
#                SOCKS5 and HTTP CONNECT proxies for the proxy tests)
#   venv         Python venv .venv-test with tests/peers/requirements.txt
#   npm          npm ci in tests/peers (ws, playwright-core)
#   autobahn     the Autobahn|Testsuite (../shared/conformance/setup.sh --reference)
#   fmt          cargo fmt --all -- --check
#   clippy       cargo clippy --workspace --all-targets -- -D warnings (default features)
#   features     cargo clippy --all-targets -- -D warnings for each feature set:
#                duplex-proto: --no-default-features, --features deflate;
#                duplex: --no-default-features, deflate, tls, redis, hyper, axum (each alone),
#                --all-features; the workspace with --all-features
#                (every set runs; the step fails if any of them does)
#   doc          RUSTDOCFLAGS='-D warnings' cargo doc --workspace --no-deps
#   test-debug   cargo test -p duplex-proto (debug build: overflow checks on)
#   build        cargo build --release --workspace
#   test         cargo test --profile ci-test --workspace --all-features (release optimisation
#                without fat LTO: see [profile.ci-test] in Cargo.toml)
#   node-tests   node --test tests/browser/*.test.mjs (headless Chromium)
#   fuzz         scripts/fuzz.sh (every cargo-fuzz target of fuzz/ for FUZZ_SECONDS;
#                needs rustup, installs nightly and cargo-fuzz when missing)
#   conformance  scripts/conformance.sh (Autobahn, server and client side at once)
#
# Without ../shared/conformance beside the repository (a plain clone), it says
# so in one line and skips autobahn and conformance (listed as skipped in the
# summary); everything else still runs. With CI=true a missing ../shared is a
# failure.
#
# Exported for the tests: DUPLEX_PYTHON, DUPLEX_NODE_MODULES, DUPLEX_PEERS_DIR,
# DUPLEX_REQUIRE_PEERS=1, DUPLEX_CHROMIUM, DUPLEX_REDIS_SERVER, DUPLEX_MICROSOCKS,
# DUPLEX_TINYPROXY, DUPLEX_BIN
# (the release binary in cargo's target directory, unless already set) and
# NODE_PATH.
#
# Environment knobs:
#   CONFORMANCE_EXCLUDE  Autobahn case patterns to skip (default '': all 517
#                        cases, ~7 min per side alone), e.g. '12.*,13.*'
#   CONFORMANCE_SIDES    server | client | both (default both)
#   FUZZ_SECONDS         seconds per fuzz target (default 20; with CI=true at
#                        least 60: 6 targets, about 8 min with the build)
#   DUPLEX_TEST_SKIP     step ids to skip, comma- or space-separated (the ids
#                        above), e.g. 'conformance' or 'clippy,features,doc'
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
NO_SHARED=","       # steps skipped because ../shared/conformance is missing
STEP_IDS="apt venv npm autobahn fmt clippy features doc test-debug build test node-tests fuzz conformance"
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
  if [[ "$NO_SHARED" == *",$id,"* ]]; then
    echo "== $name (skipped: no ../shared/conformance)"
    RESULTS+=("skipped (no ../shared/conformance)")
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
  for p in chromium redis-server microsocks tinyproxy; do
    apt_installed "$p" || missing+=("$p")
  done
  if [ "${#missing[@]}" = 0 ]; then
    echo "  chromium, redis-server, microsocks and tinyproxy are installed"
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
  command -v microsocks >/dev/null 2>&1 || { echo "  microsocks is not on PATH after the install"; return 1; }
  command -v tinyproxy >/dev/null 2>&1 || { echo "  tinyproxy is not on PATH after the install"; return 1; }
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
  local files=()
  shopt -s nullglob
  files=(tests/browser/*.test.mjs)
  shopt -u nullglob
  if [ "${#files[@]}" = 0 ]; then
    echo "  no tests/browser/*.test.mjs: nothing to run"
    NOTHING_TO_RUN=1
    return 0
  fi
  echo "  node --test ${files[*]}"
  node --test "${files[@]}"
}

# the feature sets of the features step (cargo arguments)
FEATURE_SETS=(
  "-p duplex-proto --no-default-features"
  "-p duplex-proto --no-default-features --features deflate"
  "-p duplex-ws --no-default-features"
  "-p duplex-ws --no-default-features --features deflate"
  "-p duplex-ws --no-default-features --features tls"
  "-p duplex-ws --no-default-features --features redis"
  "-p duplex-ws --no-default-features --features hyper"
  "-p duplex-ws --no-default-features --features axum"
  "-p duplex-ws --all-features"
  "--workspace --all-features"
)

# clippy on every feature set, each to the end (--keep-going), diagnostics in
# the short format; fails when any set does
clippy_features() {
  local set rc out n_err n_warn failed=0 results=()
  for set in "${FEATURE_SETS[@]}"; do
    echo "  cargo clippy $set --all-targets --keep-going -- -D warnings"
    # shellcheck disable=SC2086  # $set is a list of arguments
    out="$(cargo clippy $set --all-targets --keep-going --message-format short -- -D warnings 2>&1)"
    rc=$?
    printf '%s\n' "$out" | grep -vE '^ *(Compiling|Checking|Blocking|Finished|Downloading|Downloaded|Updating|Locking) ' | sed 's/^/  | /'
    n_err="$(printf '%s\n' "$out" | grep -cE '^[^ ]+:[0-9]+:[0-9]+: error')"
    n_warn="$(printf '%s\n' "$out" | grep -cE '^[^ ]+:[0-9]+:[0-9]+: warning')"
    if [ "$rc" = 0 ]; then
      results+=("    ok      $set")
    else
      failed=$((failed + 1))
      results+=("    FAILED  $set ($n_err errors, $n_warn warnings; exit $rc)")
    fi
  done
  echo "  feature sets:"
  printf '%s\n' "${results[@]}"
  if [ "$failed" != 0 ]; then
    echo "  $failed of ${#FEATURE_SETS[@]} feature sets failed"
    return 1
  fi
}

# -- run -----------------------------------------------------------------------

echo "duplex test run: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(nproc) cores, CI=${CI:-}"
for id in ${SKIP//,/ }; do
  [[ " $STEP_IDS " == *" $id "* ]] || echo "test.sh: DUPLEX_TEST_SKIP names an unknown step '$id' (steps: $STEP_IDS)"
done
if [ ! -d "$SHARED_DIR/conformance" ]; then
  if [ "${CI:-}" = true ]; then
    echo "test.sh: ../shared/conformance is missing: the shared/ folder must sit beside the repository ($ROOT/../shared)"
    NAMES+=("prerequisites: ../shared beside the repository"); RESULTS+=("FAILED"); FAILED=1
    summary
    exit 1
  fi
  echo "test.sh: no ../shared/conformance beside the repository (the Autobahn suite): skipping the steps autobahn and conformance"
  NO_SHARED=",autobahn,conformance,"
else
  SHARED_DIR="$(cd "$SHARED_DIR" && pwd)"
fi

# -- prerequisites: tools and their versions, one line per problem ------------

# ver_ge A B: version A >= version B
ver_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }
# runs STEP...: true when any of these steps will run
runs() {
  local id
  for id in "$@"; do
    [[ "$SKIP" == *",$id,"* || "$NO_SHARED" == *",$id,"* ]] || return 0
  done
  return 1
}
PROBLEMS=()
problem() { echo "test.sh: $*"; PROBLEMS+=("$*"); }

RUST_MIN="$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' Cargo.toml | head -n1)"
PY_MIN=3.11     # Requires-Python of websockets 17.4 (tests/peers/requirements.txt; also setup.sh's reference venv)
NODE_MIN=20     # engines of tests/peers/package.json and of playwright-core
NPM_MIN=7       # tests/peers/package-lock.json is lockfileVersion 3
VERSIONS=()

if ! command -v cargo >/dev/null 2>&1 || ! command -v "${RUSTC:-rustc}" >/dev/null 2>&1; then
  problem "Rust is not installed (cargo and rustc on PATH): install Rust >= $RUST_MIN with rustup (https://rustup.rs)"
else
  v="$("${RUSTC:-rustc}" --version | awk '{print $2}')"
  VERSIONS+=("rustc $v (>= $RUST_MIN)")
  if ! ver_ge "${v%%-*}" "$RUST_MIN"; then
    problem "rustc $v is older than the workspace rust-version $RUST_MIN: run 'rustup update stable' (or install Rust >= $RUST_MIN)"
  fi
  if runs fmt && ! cargo fmt --version >/dev/null 2>&1; then
    problem "cargo fmt is missing: run 'rustup component add rustfmt'"
  fi
  if runs clippy features && ! cargo clippy --version >/dev/null 2>&1; then
    problem "cargo clippy is missing: run 'rustup component add clippy'"
  fi
fi
if runs fuzz && ! command -v rustup >/dev/null 2>&1; then
  problem "rustup is not on PATH: the fuzz step builds with a nightly toolchain from rustup (https://rustup.rs; or skip it: DUPLEX_TEST_SKIP=fuzz)"
fi
if runs venv autobahn test conformance; then
  if ! command -v python3 >/dev/null 2>&1; then
    problem "python3 is not on PATH: install Python >= $PY_MIN (websockets 17.4 needs it; Debian: apt-get install python3 python3-venv)"
  else
    v="$(python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
    VERSIONS+=("python3 $v (>= $PY_MIN)")
    ver_ge "$v" "$PY_MIN" || problem "python3 is $v, older than $PY_MIN (websockets 17.4, pinned in tests/peers/requirements.txt, requires Python >= $PY_MIN): install Python >= $PY_MIN as python3"
  fi
fi
if runs npm node-tests test; then
  if ! command -v node >/dev/null 2>&1; then
    problem "node is not on PATH: install Node.js >= $NODE_MIN with npm (Debian 13: apt-get install nodejs npm; or nvm install $NODE_MIN)"
  else
    v="$(node --version)"; v="${v#v}"
    VERSIONS+=("node $v (>= $NODE_MIN)")
    ver_ge "$v" "$NODE_MIN" || problem "node is $v, older than $NODE_MIN (tests/peers/package.json, playwright-core): install Node.js >= $NODE_MIN with npm (or nvm install $NODE_MIN)"
  fi
fi
if runs npm; then
  if ! command -v npm >/dev/null 2>&1; then
    problem "npm is not on PATH: install npm >= $NPM_MIN (it comes with Node.js >= $NODE_MIN; Debian: apt-get install npm)"
  else
    v="$(npm --version 2>/dev/null)"
    VERSIONS+=("npm $v (>= $NPM_MIN)")
    ver_ge "$v" "$NPM_MIN" || problem "npm is $v, older than $NPM_MIN (tests/peers/package-lock.json is lockfile v3): install a newer npm ('npm install -g npm' or Node.js >= $NODE_MIN)"
  fi
fi
if [ "${#PROBLEMS[@]}" != 0 ]; then
  NAMES+=("prerequisites: tool versions"); RESULTS+=("FAILED (${#PROBLEMS[@]} problem(s), see above)"); FAILED=1
  summary
  exit 1
fi
(IFS=,; echo "prerequisites: ${VERSIONS[*]}" | sed 's/,/, /g')

step apt "install chromium, redis-server, microsocks, tinyproxy (apt-get)" install_apt
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
DUPLEX_MICROSOCKS="$(command -v microsocks || echo /usr/bin/microsocks)"
export DUPLEX_MICROSOCKS
DUPLEX_TINYPROXY="$(command -v tinyproxy || echo /usr/bin/tinyproxy)"
export DUPLEX_TINYPROXY
if [ -z "${DUPLEX_BIN:-}" ]; then
  # cargo's target directory (CARGO_TARGET_DIR or build.target-dir when set)
  TARGET_DIR="$(cargo metadata --no-deps --format-version 1 2>/dev/null \
    | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
  DUPLEX_BIN="${TARGET_DIR:-$ROOT/target}/release/duplex"
fi
export DUPLEX_BIN
export NODE_PATH="$DUPLEX_NODE_MODULES${NODE_PATH:+:$NODE_PATH}"
export CONFORMANCE_EXCLUDE="${CONFORMANCE_EXCLUDE-}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
echo "== environment"
for v in DUPLEX_PYTHON DUPLEX_NODE_MODULES DUPLEX_PEERS_DIR DUPLEX_REQUIRE_PEERS DUPLEX_CHROMIUM \
         DUPLEX_REDIS_SERVER DUPLEX_MICROSOCKS DUPLEX_TINYPROXY DUPLEX_BIN CONFORMANCE_EXCLUDE; do
  echo "  $v=${!v}"
done

step fmt "cargo fmt --all -- --check" cargo fmt --all -- --check
step clippy "cargo clippy --workspace --all-targets -- -D warnings" \
  cargo clippy --workspace --all-targets -- -D warnings
step features "cargo clippy --all-targets -D warnings, ${#FEATURE_SETS[@]} feature sets" clippy_features
step doc "RUSTDOCFLAGS='-D warnings' cargo doc --workspace --no-deps" \
  env RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps
step test-debug "cargo test -p duplex-proto (debug: overflow checks)" cargo test -p duplex-proto
step build "cargo build --release --workspace" cargo build --release --workspace
step test "cargo test --profile ci-test --workspace --all-features" cargo test --profile ci-test --workspace --all-features
step node-tests "node --test tests/browser/*.test.mjs" node_tests
FUZZ_EACH="${FUZZ_SECONDS:-20}"     # what fuzz.sh runs: at least 60 with CI=true
if [ "${CI:-}" = true ] && [ "$FUZZ_EACH" -lt 60 ]; then FUZZ_EACH=60; fi
step fuzz "scripts/fuzz.sh (cargo-fuzz targets, $FUZZ_EACH s each)" bash "$ROOT/scripts/fuzz.sh"
step conformance "scripts/conformance.sh (Autobahn, both sides at once)" bash "$ROOT/scripts/conformance.sh"

summary
exit 0
