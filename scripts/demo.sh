#!/usr/bin/env bash
# Installs what is missing, builds, and runs the demo: `gust serve --chat`, a
# chat server whose page is at http://127.0.0.1:8765/ (open it in two browser
# windows and talk). Ctrl-C shuts it down gracefully. Extra arguments go to
# `gust serve` (--port 9000, --host ::, --threads 2, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
[ -d build ] || meson setup build >/dev/null
ninja -C build tools/gust >/dev/null
exec build/tools/gust serve --chat "$@"
