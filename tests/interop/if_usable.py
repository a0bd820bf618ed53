#!/usr/bin/env python3
"""Runs an interop test only if the adapter it is for (GUST_ADAPTER) can run
here: io_uring can be compiled in yet refused by the kernel or a sandbox.
Then the test is reported skipped (exit 77) with gust's own reason, never
passed and never failed for the environment.

usage: if_usable.py GUST -- INTERPRETER SCRIPT [ARGS...]
"""
import os
import subprocess
import sys


def main():
    gust = sys.argv[1]
    cmd = sys.argv[sys.argv.index("--") + 1:]
    p = subprocess.Popen([gust, "serve", "--port", "0", "--echo"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline().strip()
    finally:
        p.kill()
        _, err = p.communicate(timeout=10)
    if not line.startswith("listening on "):
        adapter = os.environ.get("GUST_ADAPTER", "the default adapter")
        print(f"SKIP: {adapter} cannot run here: {err.strip() or 'gust serve did not start'}")
        return 77
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main())
