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
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
