#!/usr/bin/env bash
# Installs what is missing, builds, and runs the demo: a client and a server
# engine talking to each other in memory.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
[ -d build ] || meson setup build >/dev/null
ninja -C build examples/pair_demo >/dev/null
exec build/examples/pair_demo
