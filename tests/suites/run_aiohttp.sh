#!/usr/bin/env bash
# aiohttp's own test suite, once on asyncio's loop and once on reactor's.
#
#   tests/suites/run_aiohttp.sh [asyncio|reactor|both] [test files or pytest args...]
#
# Downloads aiohttp's sdist at the pinned version into a temporary directory,
# installs (unpinned, into the running venv) the packages its tests import
# besides aiohttp itself, and runs its tests against the installed aiohttp
# wheel of the same version (the sdist's own aiohttp/ sources are removed so
# that the compiled wheel is what is tested).  Without test arguments it runs
# the network-facing subset in DEFAULT_TESTS.  Prints pytest's summary per loop
# and, for "both", the tests that pass on asyncio's loop but not on reactor's.
#
# The reactor run loads tests/suites/aiohttp_reactor_loop.py as a pytest
# plugin: reactor.EventLoopPolicy() is the policy in every test, so the
# `loop` fixture (aiohttp's --aiohttp-loop=pyloop: asyncio.new_event_loop)
# makes reactor's loop; the plugin fails a test whose loop is not reactor's.
#
# Environment: PYTHON (default: python), JOBS (pytest-xdist workers, default 2),
# KEEP=1 keeps the temporary directory (its path is printed).
set -euo pipefail

AIOHTTP_VERSION=3.14.5
DEFAULT_TESTS=(
    tests/test_web_functional.py
    tests/test_client_functional.py
    tests/test_web_server.py
    tests/test_client_request.py
    tests/test_web_websocket_functional.py
    tests/test_client_ws_functional.py
    tests/test_web_sendfile_functional.py
    tests/test_test_utils.py
)

mode=${1:-both}
case "$mode" in
    asyncio|reactor|both) shift || true ;;
    *) mode=both ;;
esac
tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then tests=("${DEFAULT_TESTS[@]}"); fi

PYTHON=$("${PYTHON:-python}" -c 'import sys; print(sys.executable)')  # absolute
JOBS=${JOBS:-2}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/aiohttp-suite.XXXXXX)
if [ "${KEEP:-}" = 1 ]; then echo "work directory: $work"; else trap 'rm -rf "$work"' EXIT; fi

"$PYTHON" -m pip download -q --no-binary :all: --no-deps "aiohttp==$AIOHTTP_VERSION" -d "$work"
tar -xzf "$work/aiohttp-$AIOHTTP_VERSION.tar.gz" -C "$work"
src="$work/aiohttp-$AIOHTTP_VERSION"
rm -rf "$src/aiohttp"
# requirements/test-common.in without the typing, benchmark and
# docker tools (their tests are not run), and without its pins, which would
# replace pytest and cffi in this venv
"$PYTHON" -m pip install -q "aiohttp==$AIOHTTP_VERSION" blockbuster freezegun isal zlib-ng \
    pytest-mock pytest-timeout pytest-xdist trustme proxy.py \
    coverage  # named by a filterwarnings line of its pytest.ini

run() {  # run LOOP: pytest on one loop, JUnit XML to $work/LOOP.xml
    local loop=$1 plugin=()
    if [ "$loop" = reactor ]; then plugin=(-p aiohttp_reactor_loop); fi
    echo "== aiohttp $AIOHTTP_VERSION on $loop's loop: ${tests[*]}"
    local start=$SECONDS status=0
    # aiohttp's pytest.ini stays in force (filterwarnings = error, its
    # markers); its addopts (coverage, doctests, -n auto) are replaced.
    (cd "$src" && PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m pytest \
        -o addopts="" -p no:cacheprovider --strict-markers -q -ra \
        -m "not dev_mode and not autobahn and not internal" \
        -n "$JOBS" --timeout 120 "${plugin[@]}" \
        --junitxml="$work/$loop.xml" "${tests[@]}") > "$work/$loop.log" 2>&1 || status=$?
    tail -n 1 "$work/$loop.log"
    echo "   ($((SECONDS - start)) s, pytest exit status $status; log: $work/$loop.log)"
}

case "$mode" in
    asyncio) run asyncio ;;
    reactor) run reactor ;;
    both) run asyncio; run reactor
        "$PYTHON" - "$work/asyncio.xml" "$work/reactor.xml" <<'EOF'
import sys
import xml.etree.ElementTree as ET

def outcomes(path):
    result = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        kinds = [child.tag for child in case]
        if "failure" in kinds or "error" in kinds:
            outcome = "failed"
        elif "skipped" in kinds:
            outcome = "skipped"
        else:
            outcome = "passed"
        result[case.get("classname"), case.get("name")] = outcome
    return result

ref, ours = outcomes(sys.argv[1]), outcomes(sys.argv[2])
worse = sorted(k for k, v in ref.items() if v == "passed" and ours.get(k) != "passed")
print(f"pass on asyncio's loop, not on reactor's: {len(worse)}")
for classname, name in worse:
    print(f"  {classname}::{name} ({ours.get((classname, name), 'missing')})")
EOF
        ;;
esac
