#!/usr/bin/env python3
"""Runs bench_codec and prints each case beside memcpy of the same size, with
the targets of issue 6.

  bench/ratios.py [--cpu 1] [--binary build-bench/bench/bench_codec]
                  [--repetitions 5] [--min-time 0.5] [--filter REGEX]
                  [--save run.json | --json run.json]

The binary runs once with --benchmark_format=json, --benchmark_repetitions
(default 5), --benchmark_report_aggregates_only and random interleaving of
the repetitions; every figure below is a median over the repetitions.

How each column is computed (per iteration, CPU time):
  GB/s, Mmsg/s   payload bytes (messages) per second of the case. For a
                 server receive measured as engine+restore, the time is
                 t(engine+restore) - t(restore): the restore memcpy is
                 measured alone in the same binary and taken off (see
                 codec_receive.cpp). The zero-key rows need no restore and
                 are reported as measured: they cross-check the subtraction.
  memcpy GB/s    memcpy/<n> of the same binary, n = the message size (the
                 issue's "memcpy of the same buffer"); for the 16-byte
                 batches, n = the batch's wire size, and the ratio column
                 becomes time / memcpy time of the whole batch.
  ratio          GB/s / memcpy GB/s (for batches: time / memcpy time).
  allocs         operator new calls per iteration in the timed loop.
  cv             coefficient of variation over the repetitions of the
                 measured benchmark (noise indicator; the machine is shared).
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys

TARGETS = {
    # name (net of restore, or zero-key) -> (kind, bound, text)
    "recv/server/text/whole/65536": ("ratio>=", 0.50, ">= 50% of memcpy"),
    "recv/server/binary/whole/65536": ("ratio>=", 0.70, ">= 70% of memcpy"),
    "recv/server/text/batch4096/16": ("time<=", 15.0, "<= 15x memcpy time"),
    "recv/server/binary/batch4096/16": ("time<=", 15.0, "<= 15x memcpy time"),
}


def run_binary(args):
    cmd = []
    if args.cpu is not None:
        cmd += ["taskset", "-c", str(args.cpu)]
    cmd += [
        args.binary,
        "--benchmark_format=json",
        f"--benchmark_repetitions={args.repetitions}",
        "--benchmark_report_aggregates_only=true",
        "--benchmark_enable_random_interleaving=true",
        f"--benchmark_min_time={args.min_time}",
    ]
    if args.filter:
        cmd.append(f"--benchmark_filter={args.filter}")
    print("running:", " ".join(cmd), file=sys.stderr)
    r = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit(f"{args.binary} exited with {r.returncode} (a verification failed?)")
    return json.loads(r.stdout)


def seconds(b, field):
    unit = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b.get("time_unit", "ns")]
    return b[field] * unit


class Run:
    """The median of one benchmark, per iteration."""

    def __init__(self, median, cv):
        self.t = seconds(median, "cpu_time")
        self.bytes = median.get("bytes_per_second", 0.0) * self.t
        self.items = median.get("items_per_second", 0.0) * self.t
        self.allocs = median.get("allocs")
        self.wire = median.get("wire_bytes")
        self.cv = cv
        self.error = median.get("error_message")


def load(data):
    medians, cvs = {}, {}
    for b in data["benchmarks"]:
        name = b.get("run_name", b["name"])
        if b.get("error_occurred"):
            sys.exit(f"{name}: {b.get('error_message')}")
        agg = b.get("aggregate_name")
        if agg == "median":
            medians[name] = b
        elif agg == "cv":
            cvs[name] = b.get("cpu_time")
        elif agg is None and name not in medians:  # a run without repetitions
            medians[name] = b
    return {n: Run(m, cvs.get(n)) for n, m in medians.items()}


DELIVERY_ORDER = {"whole": 0, "frag4k": 1, "read4k": 2, "prepare4k": 3,
                  "whole-pooled": 4, "frag4k-pooled": 5, "read4k-pooled": 6, "prepare4k-pooled": 7}
MODE_ORDER = {"net": 0, "zero-key": 1, "engine": 2}
CONTENT_ORDER = {"text": 0, "binary": 1, "text-utf8": 2}


def sort_key(label):
    key = []
    for p in label.split("/"):
        if p.isdigit():
            key.append((1, int(p), ""))
        elif p.startswith("batch"):
            key.append((0, 10, p))
        else:
            rank = DELIVERY_ORDER.get(p, MODE_ORDER.get(p, CONTENT_ORDER.get(p, 50)))
            key.append((0, rank, p))
    return key


def gbs(bytes_, t):
    return bytes_ / t / 1e9 if t > 0 else math.inf


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default="build-bench/bench/bench_codec")
    ap.add_argument("--cpu", help="pin the benchmark to this CPU with taskset")
    ap.add_argument("--repetitions", type=int, default=5)
    ap.add_argument("--min-time", default="0.5", help="seconds per repetition")
    ap.add_argument("--filter", help="--benchmark_filter regex")
    ap.add_argument("--json", help="read this JSON output instead of running")
    ap.add_argument("--save", help="also write the JSON output here")
    args = ap.parse_args()

    if args.json:
        with open(args.json) as f:
            data = json.load(f)
    else:
        data = run_binary(args)
        if args.save:
            with open(args.save, "w") as f:
                json.dump(data, f, indent=1)
    runs = load(data)
    ctx = data.get("context", {})

    rows = []  # (section, case, GB/s, Mmsg/s, memcpy GB/s, ratio, ratio label, allocs, cv, target)

    def memcpy_run(n):
        return runs.get(f"memcpy/{n}")

    for name, r in runs.items():
        parts = name.split("/")
        kind = parts[0]
        t, label, section = r.t, name, None
        ref_n = None
        if kind == "recv":
            role, content, how, size, mode = parts[1:6]
            if mode == "restore":
                continue
            if mode == "engine+restore":
                rest = runs.get(name.rsplit("/", 1)[0] + "/restore")
                if rest is None:
                    continue
                t = r.t - rest.t
                label = name.rsplit("/", 1)[0] + "/net"
            section = f"receive ({role})"
            ref_n = int(r.wire) if how.startswith("batch") else int(size)
        elif kind in ("send", "send_pooled", "send_shared"):
            section = "send"
            ref_n = int(parts[-1])
        elif kind in ("mask", "utf8"):
            if name.endswith("/restore"):
                continue
            if name.endswith("/engine+restore"):
                rest = runs.get(name.rsplit("/", 1)[0] + "/restore")
                if rest is None:
                    continue
                t = r.t - rest.t
                label = name.rsplit("/", 1)[0] + "/net"
                ref_n = int(parts[-2])
            else:
                ref_n = int(parts[-1])
            section = "parts"
        elif kind == "handshake":
            section = "handshake"
        elif kind in ("memcpy", "selftest"):
            section = kind
        else:
            section = "other"
        ref = memcpy_run(ref_n) if ref_n is not None else None
        rate = gbs(r.bytes, t)
        msgs = r.items / t / 1e6 if t > 0 else math.inf
        ref_rate = gbs(ref.bytes, ref.t) if ref else None
        ratio = ratio_label = None
        batch = "/batch" in name
        if ref:
            if batch:
                ratio, ratio_label = t / ref.t, f"{t / ref.t:.1f}x time"
            else:
                ratio, ratio_label = rate / ref_rate, f"{rate / ref_rate:.0%}"
        target = ""
        base = label.rsplit("/", 1)[0]
        if base in TARGETS and ratio is not None:
            k, bound, text = TARGETS[base]
            ok = ratio >= bound if k == "ratio>=" else ratio <= bound
            target = f"{text}: {'met' if ok else 'NOT met'}"
        rows.append((section, label, rate, msgs, ref_rate, ratio_label, r.allocs, r.cv, target, t))

    print(f"# bench_codec, {ctx.get('date', '')}, {ctx.get('num_cpus', '?')} CPUs "
          f"at {ctx.get('mhz_per_cpu', '?')} MHz, mask: {ctx.get('gust_mask', '?')}, "
          f"load average {ctx.get('load_avg', '?')}")
    reps = data["benchmarks"][0].get("repetitions", 1) if data["benchmarks"] else 0
    print(f"# medians of {reps} repetitions; times are CPU time per iteration")
    order = ["receive (server)", "receive (client)", "send", "parts", "handshake", "memcpy", "selftest", "other"]
    w = max(len(r[1]) for r in rows) if rows else 10

    rows.sort(key=lambda r: sort_key(r[1]))
    targets = [r for r in rows if r[8]]
    if targets:
        print("\n## Targets of issue 6")
        for r in targets:
            print(f"{r[1]:<{w}}  {fmt(r[2], '8.2f')} GB/s  memcpy {fmt(r[4], '6.2f')} GB/s  "
                  f"ratio {r[5]:>10}  {r[8]}")

    for section in order:
        sec = [r for r in rows if r[0] == section]
        if not sec:
            continue
        print(f"\n## {section}")
        print(f"{'case':<{w}}  {'time':>10}  {'GB/s':>8}  {'Mmsg/s':>8}  {'memcpy GB/s':>11}  "
              f"{'ratio':>10}  {'allocs':>6}  {'cv':>5}  target")
        for r in sec:
            t = r[9]
            tt = f"{t * 1e9:.1f} ns" if t < 1e-6 else (f"{t * 1e6:.2f} us" if t < 1e-3 else f"{t * 1e3:.2f} ms")
            print(f"{r[1]:<{w}}  {tt:>10}  {fmt(r[2], '8.2f')}  {fmt(r[3], '8.3f')}  {fmt(r[4], '11.2f')}  "
                  f"{r[5] or '-':>10}  {fmt(r[6], '6.2f')}  {fmt(r[7], '5.1%')}  {r[8]}")


if __name__ == "__main__":
    main()
