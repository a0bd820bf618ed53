#!/usr/bin/env bash
# Installs the Debian packages the build and the tests need, only those
# missing. Safe to run again: it does nothing when everything is there.
set -euo pipefail

packages=(
  g++ meson ninja-build pkg-config python3   # build
  doctest-dev                                # tests
  zlib1g-dev                                 # permessage-deflate
  libbenchmark-dev                           # bench/
  liburing-dev                               # io_uring adapter
  libasio-dev                                # Asio adapter
  python3-websockets node-ws                 # interop peers (tests/interop)
  chromium                                   # the chat page in a browser (tests/interop)
  gnuplot-nox                                # bench/compare: the plot
)

# Wanted but not required: without them the fuzzers do not run (the replay
# tests of fuzz/ still do).
optional=(
  clang libclang-rt-14-dev                   # fuzz/: libFuzzer (scripts/fuzz.sh)
)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=()
for p in "${packages[@]}"; do installed "$p" || missing+=("$p"); done
missing_optional=()
for p in "${optional[@]}"; do installed "$p" || missing_optional+=("$p"); done
[ ${#missing[@]} -eq 0 ] && [ ${#missing_optional[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq || [ ${#missing[@]} -eq 0 ]
if [ ${#missing[@]} -ne 0 ]; then
  echo "installing: ${missing[*]}"
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ ${#missing_optional[@]} -ne 0 ]; then
  echo "installing: ${missing_optional[*]}"
  $sudo apt-get install -y -qq --no-install-recommends "${missing_optional[@]}" >/dev/null ||
    echo "warning: could not install ${missing_optional[*]}: the fuzzers will be skipped"
fi
