"""Sums test results from a Meson testlog.json: a doctest binary counts as its
test cases (from its summary line), any other test as one."""
import json
import re
import sys

passed = failed = 0
summary = re.compile(r"test cases:\s*(\d+)\s*\|\s*(\d+) passed\s*\|\s*(\d+) failed")
with open(sys.argv[1]) as f:
    for line in f:
        t = json.loads(line)
        ok = t.get("result") in ("OK", "EXPECTEDFAIL")
        m = None
        for m in summary.finditer(t.get("stdout") or ""):
            pass
        if m:
            passed += int(m.group(2))
            failed += int(m.group(3))
            if not ok and int(m.group(3)) == 0:
                failed += 1  # crashed or sanitizer report after the summary
        elif t.get("result") == "SKIP":
            pass
        elif ok:
            passed += 1
        else:
            failed += 1
print(passed, failed)
