"""Import time on pyperf: ``import reactor`` vs ``import selectors``, each in
a fresh interpreter with its bytecode cached, as a program meets them.

    python -m benchmarks.import_bench --impl stdlib -o stdlib.json
    python -m benchmarks.import_bench --impl reactor -o reactor.json
    python -m pyperf compare_to stdlib.json reactor.json

One loop = one new interpreter (``python -c``, from the repository root)
that times its own ``import`` with ``perf_counter`` and prints it, so
interpreter start-up is left out.  ``PYTHONDONTWRITEBYTECODE`` is removed
from the children's environment and ``PYTHONPYCACHEPREFIX`` points to a
cache directory warmed before timing: without .pyc files the figure would
be compile time.
"""

import os
import subprocess
import sys

from benchmarks._harness import ROOT, cache_dir, runner

MODULES = {"stdlib": "selectors", "reactor": "reactor"}
_CHILD = "import time; t = time.perf_counter(); import {}; print(time.perf_counter() - t)"


def one_import(module: str) -> float:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = cache_dir("pycache")
    out = subprocess.run(
        [sys.executable, "-c", _CHILD.format(module)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(out)


def time_import(loops: int, impl: str) -> float:
    return sum(one_import(MODULES[impl]) for _ in range(loops))


def main():
    run = runner("import_bench", tuple(MODULES), processes=3, values=8, loops=2)
    args = run.parse_args()
    if args.worker:
        one_import(MODULES[args.impl])  # the cache is warm before the first timed child
    run.bench_time_func("import", time_import, args.impl)


if __name__ == "__main__":
    main()
