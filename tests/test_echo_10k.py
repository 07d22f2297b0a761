"""The echo server holds 10,000 concurrent connections (issue: the Reactor).

A real `python -m reactor echo --raw` and the echo driver's compiled load
client (reactor/models/loadclient.c, which checks every echoed byte) with
10,000 connections doing ping-pong at once.
"""

import json
import os
import re
import resource
import signal
import subprocess
import sys

import pytest

from reactor.models.driver import load_client_command

pytestmark = pytest.mark.long  # CI runs it once, on its main Python

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONNECTIONS = 10_000
NEEDED_FDS = CONNECTIONS + 100

_, HARD = resource.getrlimit(resource.RLIMIT_NOFILE)


def _raise_nofile():
    resource.setrlimit(resource.RLIMIT_NOFILE, (HARD, HARD))


@pytest.mark.skipif(
    HARD != resource.RLIM_INFINITY and HARD < NEEDED_FDS,
    reason=f"RLIMIT_NOFILE hard limit {HARD} < {NEEDED_FDS}",
)
def test_echo_server_holds_10000_connections():
    client = load_client_command()
    server = subprocess.Popen(
        [sys.executable, "-m", "reactor", "echo", "--raw", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        line = server.stderr.readline()
        match = re.search(r"listening on [\d.]+:(\d+)", line)
        assert match, line
        assert "WARNING" not in line and "raise the hard limit" not in line, line
        port = match.group(1)
        proc = subprocess.run(
            # no warm-up: every byte counts
            [*client, "127.0.0.1", port, str(CONNECTIONS), "64", "0", "2.5"],
            capture_output=True,
            text=True,
            timeout=120,
            preexec_fn=_raise_nofile,
        )
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout)
        assert report["alive_connections"] == CONNECTIONS, report
        assert report["errors"]["total"] == 0, report["errors"]
        # Every connection made round trips while all were open.
        assert report["per_conn_min"] >= 1, report
        assert server.poll() is None, "the server died under load"
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            assert server.wait(timeout=30) == 0
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
            server.stderr.close()
