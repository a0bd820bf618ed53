#!/usr/bin/env python3
"""Instructions per received frame, counted by callgrind: a figure that does
not move with the machine's load, unlike the timings.

Runs receive benchmarks of bench_codec under valgrind --tool=callgrind with
collection switched on only inside timed_receive_pass() (the timed pass of
codec_receive.cpp: receive() and every next_event() of one pass, plus the
benchmark's few instructions per event to count the bytes; the restore
memcpy and everything else are outside it). Then:

    instructions per frame = collected Ir / (passes x frames per pass)

where passes is the number of calls to timed_receive_pass(). It prints that
figure, the part spent in the engine (everything but the benchmark's own
code in timed_receive_pass), and the engine's functions by self cost per
frame (inlined code is charged to the function it was inlined into).

Usage:
  bench/callgrind.py [--binary build-bench/bench/bench_codec] [FILTER ...]
FILTER defaults to the 16-byte batches (server text and binary).
Needs valgrind (Debian: valgrind). Build with debug info (the default
debugoptimized build-bench has it) for readable names.
"""
import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile

DEFAULT_FILTERS = [
    "recv/server/binary/batch4096/16/engine+restore",
    "recv/server/text/batch4096/16/engine+restore",
]
TIMED = "timed_receive_pass"


def frames_per_pass(name):
    m = re.search(r"/batch(\d+)/", name)
    return int(m.group(1)) if m else 1


def parse(path):
    """Self Ir per function and per source line, and the calls to TIMED."""
    names = {}
    files = {}
    self_ir = collections.Counter()
    line_ir = collections.Counter()
    fl = fi = None
    last_pos = 0
    calls_to_timed = 0
    fn = None
    cfn = None
    skip_next_cost = False
    total = None
    positions = 1  # with --dump-instr=no: one position column (line)

    def resolve(spec, table=names):
        spec = spec.strip()
        m = re.match(r"\((\d+)\)(?:\s+(.*))?$", spec)
        if not m:
            return spec
        if m.group(2) is not None:
            table[m.group(1)] = m.group(2)
        return table.get(m.group(1), spec)

    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                parts = line.split()
                p = parts[0]
                if p == "*":
                    pos = last_pos
                elif p[0] in "+-":
                    pos = last_pos + int(p)
                else:
                    pos = int(p, 0)
                last_pos = pos
                if skip_next_cost:
                    skip_next_cost = False  # inclusive cost of a call
                    continue
                if len(parts) > positions and fn is not None:
                    ir = int(parts[positions])
                    self_ir[fn] += ir
                    line_ir[(fi or fl, pos)] += ir
                continue
            if line.startswith("fl="):
                fl = resolve(line[3:], files)
                fi = None
            elif line.startswith("fi=") or line.startswith("fe="):
                fi = resolve(line[3:], files)
            elif line.startswith("fn="):
                fn = resolve(line[3:])
                fi = None
            elif line.startswith("cfn="):
                cfn = resolve(line[4:])
            elif line.startswith("calls="):
                skip_next_cost = True
                if cfn and TIMED in cfn:
                    calls_to_timed += int(line[6:].split()[0])
            elif line.startswith("positions:"):
                positions = len(line.split()) - 1
            elif line.startswith("summary:") or line.startswith("totals:"):
                total = int(line.split()[1])
    return self_ir, line_ir, calls_to_timed, total


def short(name):
    name = name.replace("(anonymous namespace)::", "")
    name = re.sub(r"\(.*", "", name)  # drop the parameter list
    name = name.replace("gust::connection::impl::", "impl::").replace("gust::detail::", "detail::")
    return name


def source_line(path, line):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for i, text in enumerate(f, 1):
                if i == line:
                    return text.strip()[:90]
    except OSError:
        pass
    return ""


def run(binary, flt, min_time):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        cmd = [
            "valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
            "--collect-atstart=no", "--toggle-collect=*" + TIMED + "*",
            binary, "--benchmark_filter=^" + re.escape(flt) + "$",
            "--benchmark_min_time=" + str(min_time),
        ]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            sys.stderr.write(r.stdout + r.stderr)
            sys.exit("valgrind run failed")
        return parse(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default="build-bench/bench/bench_codec")
    ap.add_argument("--min-time", default="0.05", help="per benchmark run, in valgrind's slowed-down time")
    ap.add_argument("--top", type=int, default=12, help="functions to list")
    ap.add_argument("--top-lines", type=int, default=25, help="source lines to list")
    ap.add_argument("filters", nargs="*", default=DEFAULT_FILTERS)
    args = ap.parse_args()
    for flt in args.filters:
        self_ir, line_ir, passes, total = run(args.binary, flt, args.min_time)
        if not passes or not total:
            sys.exit(f"{flt}: nothing collected (is the name right? is {TIMED} in the binary?)")
        frames = passes * frames_per_pass(flt)
        harness = sum(v for k, v in self_ir.items() if TIMED in k or "bench::" in k)
        engine = total - harness
        print(f"{flt}")
        print(f"  passes {passes}, frames {frames}, instructions collected {total:,}")
        print(f"  instructions per frame: {total / frames:.1f} "
              f"(engine {engine / frames:.1f}, benchmark's event counting {harness / frames:.1f})")
        print(f"  self cost per frame, by function:")
        for name, ir in self_ir.most_common(args.top):
            if ir / frames < 0.05:
                break
            print(f"    {ir / frames:8.1f}  {ir / total:6.1%}  {short(name)}")
        print(f"  self cost per frame, by source line:")
        for (path, line), ir in line_ir.most_common(args.top_lines):
            if ir / frames < 0.5:
                break
            print(f"    {ir / frames:8.1f}  {os.path.basename(path or '?')}:{line}  {source_line(path, line)}")
        print()


if __name__ == "__main__":
    main()
