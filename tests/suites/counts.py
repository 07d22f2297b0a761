"""Per-module counts, asyncio's loop against reactor's, from a JUnit XML
report of tests/uvloop_suite or tests/cpython_asyncio (or both), and the
tests that pass on asyncio's loop but not on reactor's.

    pytest tests/uvloop_suite tests/cpython_asyncio -n 2 --junitxml=/tmp/ext.xml
    python tests/suites/counts.py /tmp/ext.xml

Exit status 1 if any test passes on asyncio's loop and does not on reactor's.
"""

import collections
import re
import sys
import xml.etree.ElementTree as ET


def loop_and_pair(classname):
    """('Asyncio' or 'Reactor', module, the class as named for asyncio)."""
    parts = classname.split(".")
    cls = parts[-1]
    match = re.fullmatch(r"(Asyncio|Reactor)__(\w+?)__(\w+)", cls)
    if match:  # tests/cpython_asyncio
        loop, module, original = match.groups()
        return loop, f"cpython {module}", f"Asyncio__{module}__{original}"
    module = f"uvloop {parts[-2]}"
    if "Reactor" in cls:
        return "Reactor", module, cls.replace("Reactor", "AIO", 1)
    return "Asyncio", module, cls


def outcome(case):
    for child in case:
        if child.tag in ("failure", "error"):
            return "failed"
        if child.tag == "skipped":
            return "xfailed" if child.get("type") == "pytest.xfail" else "skipped"
    return "passed"


def main(paths):
    results = {}  # (loop, class as named for asyncio, test) -> (outcome, ...)
    for path in paths:
        for case in ET.parse(path).getroot().iter("testcase"):
            loop, module, paired = loop_and_pair(case.get("classname"))
            key = (loop, paired, case.get("name"))
            result = outcome(case)
            # a test that failed and then errored in teardown is reported
            # twice: count it once, as failed
            if key not in results or result == "failed":
                results[key] = (result, case.get("classname"), module)
    counts = collections.defaultdict(collections.Counter)
    for (loop, _, _), (result, _, module) in results.items():
        counts[module][loop, result] += 1

    kinds = ("passed", "failed", "skipped", "xfailed")
    print(f"{'module':34} {'asyncio p/f/s/x':>18} {'reactor p/f/s/x':>18}")
    totals = collections.Counter()
    for module in sorted(counts):
        row = []
        for loop in ("Asyncio", "Reactor"):
            row.append("/".join(str(counts[module][loop, k]) for k in kinds))
            for k in kinds:
                totals[loop, k] += counts[module][loop, k]
        print(f"{module:34} {row[0]:>18} {row[1]:>18}")
    print(
        f"{'total':34} "
        + " ".join(
            f"{'/'.join(str(totals[loop, k]) for k in kinds):>18}"
            for loop in ("Asyncio", "Reactor")
        )
    )

    regressions = sorted(
        f"{results[key][1]}::{key[2]} ({results[key][0]})"
        for key in results
        if key[0] == "Reactor"
        and results[key][0] in ("failed", "xfailed")
        and results.get(("Asyncio",) + key[1:], ("?",))[0] == "passed"
    )
    print(f"\npass on asyncio's loop, not on reactor's: {len(regressions)}")
    for line in regressions:
        print("  " + line)
    return 1 if regressions else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
