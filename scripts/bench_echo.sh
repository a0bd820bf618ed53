#!/usr/bin/env bash
# The echo measurement: every gust adapter beside a small Boost.Beast echo
# server, through bench/compare (which builds build-e2e, pins the server and
# the load generator to different cores, runs interleaved rounds and prints
# medians and ratios to Beast; JSON and plot in bench/results/).
#
#   bash scripts/bench_echo.sh [seconds per run, default 2] [bench/compare options...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-2}
[ $# -gt 0 ] && shift
bash scripts/install-deps.sh
dpkg-query -W -f='${Status}' libboost-dev 2>/dev/null | grep -q "install ok installed" || {
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends libboost-dev >/dev/null
}
exec python3 bench/compare --build-dir "${BENCH_BUILD:-build-e2e}" --seconds "$secs" "$@"
