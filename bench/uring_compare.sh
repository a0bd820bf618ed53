#!/usr/bin/env bash
# io_uring against epoll against Boost.Beast, echo messages/s, in one run:
#   16 B ping-pong, 100 connections (1 in flight each)
#   16 B pipelined, 100 connections (32 in flight each)
#   64 KiB, 16 connections (2 in flight each)
# Each server runs one thread pinned to CPU 0, the load generator
# (tools/bench/echo_load.cpp, every echo checked) pinned to CPU 1. Rounds
# alternate servers so drift from other work on the machine hits all of them;
# the median of the rounds is reported, with ratios to epoll.
#
#   bash bench/uring_compare.sh [build dir, default build-uring] [rounds, default 3] [seconds, default 2]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build-uring}
rounds=${2:-3}
secs=${3:-2}
ninja -C "$dir" -j2 tools/gust tools/echo_load >/dev/null
have_beast=0
if ninja -C "$dir" -j2 tools/beast_echo_server >/dev/null 2>&1; then have_beast=1; fi

pin_server=""; pin_load=""
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then pin_server="taskset -c 0"; pin_load="taskset -c 1"; fi

start() {  # command...: sets $pid and $port
  local out; out=$(mktemp)
  $pin_server "$@" >"$out" 2>&1 &
  pid=$!
  for _ in $(seq 100); do grep -q listening "$out" && break; sleep 0.05; done
  port=$(grep -o 'listening on [^ ]*' "$out" | head -1 | sed 's/.*:\([0-9]*\)\/*$/\1/')
  rm -f "$out"
  [ -n "$port" ] || { echo "server did not start: $*" >&2; kill "$pid" 2>/dev/null; exit 1; }
}

servers="epoll io_uring"
[ $have_beast = 1 ] && servers="$servers beast"
loads=("--connections 100 --inflight 1 --size 16"
       "--connections 100 --inflight 32 --size 16"
       "--connections 16 --inflight 2 --size 65536")
names=("16B ping-pong x100" "16B pipelined x100x32" "64KiB x16x2")

declare -A results
for r in $(seq "$rounds"); do
  for li in "${!loads[@]}"; do
    for s in $servers; do
      if [ "$s" = beast ]; then start "$dir/tools/beast_echo_server" 0
      else start "$dir/tools/gust" serve --echo --port 0 --adapter "$s" --max-size 1m; fi
      res=$($pin_load timeout $((${secs%.*} + 30)) "$dir/tools/echo_load" "$port" ${loads[$li]} \
              --seconds "$secs" --warmup 0.5 || echo "failed")
      kill -TERM "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      results["$li,$s"]+="$(echo "$res" | awk '{print $1}') "
    done
  done
done

median() { tr ' ' '\n' | grep -E '^[0-9.]+$' | sort -g | awk '{a[NR]=$1} END {if (NR==0) print "failed"; else print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
printf '%-24s' workload; for s in $servers; do printf '%14s' "$s"; done; printf '%12s%12s\n' "uring/epoll" "uring/beast"
for li in "${!loads[@]}"; do
  printf '%-24s' "${names[$li]}"
  declare -A m=()
  for s in $servers; do m[$s]=$(echo "${results[$li,$s]}" | median); printf '%14s' "${m[$s]}"; done
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'; }
  printf '%12s' "$(ratio "${m[io_uring]}" "${m[epoll]}")"
  if [ $have_beast = 1 ]; then printf '%12s' "$(ratio "${m[io_uring]}" "${m[beast]}")"; fi
  printf '\n'
done
echo "(msgs/s echoed, median of $rounds rounds of ${secs}s; raw: ${results[*]})" | fold -w 120
