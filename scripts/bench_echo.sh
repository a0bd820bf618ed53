#!/usr/bin/env bash
# A first echo measurement: messages per second through `gust serve --echo`
# (epoll adapter, one thread) and through a small Boost.Beast echo server
# (tools/bench/beast_echo_server.cpp, one thread), with the same load
# generator (tools/bench/echo_load.cpp) on the same run, the server pinned to
# one core and the generator to the other. Loopback only; each run is bounded.
#
#   bash scripts/bench_echo.sh [seconds per run, default 3]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-3}
bash scripts/install-deps.sh
dpkg-query -W -f='${Status}' libboost-dev 2>/dev/null | grep -q "install ok installed" || {
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends libboost-dev >/dev/null
}
dir=${BENCH_BUILD:-build-echo-bench}
[ -d "$dir" ] || meson setup "$dir" -Dbuildtype=release >/dev/null
[ -f "$dir/build.ninja" ] && grep -q beast_echo_server "$dir/build.ninja" || meson setup --reconfigure "$dir" >/dev/null
ninja -C "$dir" -j2 tools/gust tools/echo_load tools/beast_echo_server >/dev/null

cpus=$(nproc)
pin_server=""; pin_load=""
if [ "$cpus" -ge 2 ] && command -v taskset >/dev/null; then pin_server="taskset -c 0"; pin_load="taskset -c 1"; fi

run_server() {  # name, command...: starts it, sets $pid and $port
  local name=$1; shift
  local out; out=$(mktemp)
  $pin_server "$@" >"$out" 2>/dev/null &
  pid=$!
  for _ in $(seq 100); do grep -q listening "$out" && break; sleep 0.05; done
  port=$(sed -n 's/.*:\([0-9]*\)\/$/\1/p' "$out" | head -1)
  rm -f "$out"
  [ -n "$port" ] || { echo "$name did not start"; kill "$pid" 2>/dev/null; exit 1; }
}

printf '%-8s %-34s %14s\n' server load "msgs/s"
for load in "--connections 1 --inflight 1 --size 32" \
            "--connections 50 --inflight 1 --size 32" \
            "--connections 50 --inflight 16 --size 32" \
            "--connections 50 --inflight 4 --size 4096"; do
  for server in gust beast; do
    if [ $server = gust ]; then
      run_server gust "$dir/tools/gust" serve --echo --port 0
    else
      run_server beast "$dir/tools/beast_echo_server" 0
    fi
    result=$($pin_load timeout $((secs + 20)) "$dir/tools/echo_load" "$port" $load --seconds "$secs" || echo "failed")
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    printf '%-8s %-34s %14s\n' $server "${load//--/}" "$(echo "$result" | awk '{print $1}')"
  done
done
