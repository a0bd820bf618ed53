#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang (AddressSanitizer and
# UndefinedBehaviorSanitizer, engine instrumented for coverage) and runs each
# for a while from its committed corpus, with the protocol dictionary. One
# fuzzer process at a time.
#
#   scripts/fuzz.sh                 every target, FUZZ_SECONDS each
#   scripts/fuzz.sh connection      only the targets named
#
# Environment:
#   FUZZ_SECONDS      seconds per target (default 30)
#   FUZZ_BUILD_DIR    build directory (default build-fuzz, reused if present)
#   FUZZ_JOBS         parallel compile jobs (default 2)
#   FUZZ_MAX_LEN      -max_len for every target (default: libFuzzer's guess)
#   FUZZ_KEEP_CORPUS  a directory: keep each target's grown corpus there
#   FUZZ_RESULT_FILE  a file: "<passed> <failed>" is written to it
#
# Every run prints its executions per second and coverage (cov: edges, ft:
# features, from -print_final_stats). A crash, sanitizer report or broken
# invariant prints the stack, the reproducer in hex and base64, and where it
# was saved (under $FUZZ_BUILD_DIR/fuzz-artifacts/); the script then exits
# non-zero. Ends with "fuzz: N passed, M failed", one test per target.
set -uo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-30}
dir=${FUZZ_BUILD_DIR:-build-fuzz}
jobs=${FUZZ_JOBS:-2}
result_file=${FUZZ_RESULT_FILE:-}

report() {  # passed failed
  echo "fuzz: $1 passed, $2 failed"
  [ -n "$result_file" ] && echo "$1 $2" >"$result_file"
}

if ! command -v clang++ >/dev/null 2>&1; then
  echo "clang++ not found: install clang and libclang-rt-14-dev (scripts/install-deps.sh)"
  report 0 1
  exit 2
fi

# The targets, as fuzz/meson.build lists them.
mapfile -t all_targets < <(grep -oE "^  '[a-z0-9_]+' :" fuzz/meson.build | tr -d "': ")
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all_targets[@]}"); fi

work=$(mktemp -d "${TMPDIR:-/tmp}/gust-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [ ! -f "$dir/build.ninja" ]; then
  echo "setting up $dir (clang, libFuzzer, address + undefined)"
  if ! CXX=clang++ meson setup "$dir" -Dfuzzing=true -Db_sanitize=address,undefined -Db_lundef=false \
      -Dcpp_args=-fsanitize=fuzzer-no-link -Ddefault_library=static -Dtests=false \
      -Dbuildtype=debugoptimized >"$work/setup.log" 2>&1; then
    tail -30 "$work/setup.log"; echo "meson setup $dir failed"; report 0 ${#targets[@]}; exit 1
  fi
fi
binaries=()
for t in "${targets[@]}"; do binaries+=("fuzz/fuzz_$t"); done
echo "building ${#binaries[@]} fuzzers in $dir"
if ! ninja -C "$dir" -j"$jobs" "${binaries[@]}" >"$dir/fuzz-build.log" 2>&1; then
  grep -E "error:|FAILED" -A5 "$dir/fuzz-build.log" | head -60
  echo "building the fuzzers failed (log: $dir/fuzz-build.log)"
  report 0 ${#targets[@]}
  exit 1
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}:abort_on_error=1:symbolize=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
saved="$dir/fuzz-artifacts"

passed=0
failed=0
summary=()
for t in "${targets[@]}"; do
  bin="$dir/fuzz/fuzz_$t"
  mkdir -p "$work/$t/corpus" "$work/$t/artifacts"
  inputs=("$work/$t/corpus" "fuzz/corpus/$t")
  [ -d "fuzz/regressions/$t" ] && inputs+=("fuzz/regressions/$t")
  args=(-max_total_time="$seconds" -print_final_stats=1 -dict=fuzz/websocket.dict
        -artifact_prefix="$work/$t/artifacts/" -timeout=20 -rss_limit_mb=2560)
  [ -n "${FUZZ_MAX_LEN:-}" ] && args+=(-max_len="$FUZZ_MAX_LEN")
  log="$work/$t/log"
  echo "== $t (${seconds} s)"
  "$bin" "${args[@]}" "${inputs[@]}" >"$log" 2>&1
  rc=$?
  done_line=$(grep -E "^#[0-9]+[[:space:]]+DONE" "$log" | tail -1)
  [ -z "$done_line" ] && done_line=$(grep -E "^#[0-9]+[[:space:]]+(pulse|NEW|REDUCE|INITED)" "$log" | tail -1)
  cov=$(sed -nE 's/.*cov: ([0-9]+).*/\1/p' <<<"$done_line")
  ft=$(sed -nE 's/.*ft: ([0-9]+).*/\1/p' <<<"$done_line")
  corp=$(sed -nE 's/.*corp: ([0-9]+).*/\1/p' <<<"$done_line")
  execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$log")
  speed=$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+)/\1/p' "$log")
  rss=$(sed -nE 's/^stat::peak_rss_mb: *([0-9]+)/\1/p' "$log")
  line=$(printf "%-18s %8s exec/s %10s runs  cov: %-6s ft: %-7s corpus: %-5s rss: %s MB" \
    "$t" "${speed:-?}" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${rss:-?}")
  shopt -s nullglob
  artifacts=("$work/$t/artifacts/"*)
  shopt -u nullglob
  if [ $rc -eq 0 ] && [ ${#artifacts[@]} -eq 0 ]; then
    passed=$((passed + 1))
    summary+=("ok    $line")
    echo "   ok: $line"
  else
    failed=$((failed + 1))
    summary+=("FAIL  $line")
    echo "   FAILED (exit $rc)"
    # The report: from the first sanitizer or invariant line to the end.
    awk '/^==[0-9]+==|^==== fuzz invariant|runtime error|^INFO: libFuzzer|ERROR: libFuzzer/ {p=1} p' "$log" \
      | grep -vE "^(#[0-9]+|INFO:|\*\*\*|MS: )" | head -120
    mkdir -p "$saved/$t"
    for a in "${artifacts[@]}"; do
      cp "$a" "$saved/$t/"
      echo "-- reproducer $(basename "$a") ($(stat -c %s "$a") bytes), saved as $saved/$t/$(basename "$a")"
      echo "   hex:    $(od -An -tx1 -v "$a" | tr -d ' \n')"
      echo "   base64: $(base64 -w0 "$a")"
      echo "   replay: $bin $saved/$t/$(basename "$a")"
      echo "   keep it as a test: cp $saved/$t/$(basename "$a") fuzz/regressions/$t/<name>  (see fuzz/README.md)"
    done
  fi
  if [ -n "${FUZZ_KEEP_CORPUS:-}" ]; then
    mkdir -p "$FUZZ_KEEP_CORPUS/$t"
    cp -n "$work/$t/corpus/"* "$FUZZ_KEEP_CORPUS/$t/" 2>/dev/null || true
  fi
done

echo
echo "fuzzing summary (${seconds} s per target):"
for s in "${summary[@]}"; do echo "  $s"; done
report "$passed" "$failed"
[ "$failed" -eq 0 ]
