"""Syscall counts, under strace: what a selector operation costs the kernel.

A data-only ``modify()`` (same events, new ``data``) changes nothing the
kernel knows, so it must make no ``epoll_ctl`` -- not now, and not later
either: each ``modify()`` is followed by ``select(0)``, so an implementation
that deferred the change to the next wait would be counted too.  The count
must not grow from 10 to 1,000 modifies; the stdlib's ``EpollSelector`` is
held to the same, and modifies that do change the mask are the control that
strace sees the calls at all.
"""

import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCRIPT = r"""
import socket, sys, selectors
impl, mode, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
if impl == "reactor":
    import reactor as module
else:
    module = selectors
R, W = selectors.EVENT_READ, selectors.EVENT_WRITE
a, b = socket.socketpair()
sel = module.EpollSelector()
sel.register(a, R, None)
sel.select(0)
data = [object(), object()]
for i in range(k):
    if mode == "data":
        sel.modify(a, R, data[i % 2])
    else:
        sel.modify(a, R | W if i % 2 == 0 else R, None)
    sel.select(0)
assert mode != "data" or sel.get_key(a).data is data[(k - 1) % 2]
sel.close()
"""


@pytest.fixture(scope="module")
def strace():
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed")
    probe = subprocess.run(
        ["strace", "-f", "-e", "trace=none", "true"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        pytest.skip(f"strace cannot trace here: {probe.stderr.strip()[-300:]}")


def epoll_ctl_calls(impl, mode, k, tmp_path):
    out = tmp_path / f"{impl}-{mode}-{k}.txt"
    proc = subprocess.run(
        [
            "strace",
            "-f",
            "-c",
            "-e",
            "trace=epoll_ctl",
            "-o",
            str(out),
            sys.executable,
            "-c",
            SCRIPT,
            impl,
            mode,
            str(k),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    # strace -c: "% time  seconds  usecs/call  calls  [errors]  syscall"
    rows = [line.split() for line in out.read_text().splitlines()]
    return next((int(row[3]) for row in rows if row and row[-1] == "epoll_ctl"), 0)


@pytest.mark.parametrize("impl", ["reactor", "stdlib"])
def test_data_only_modify_makes_no_epoll_ctl(strace, impl, tmp_path):
    few, many = (epoll_ctl_calls(impl, "data", k, tmp_path) for k in (10, 1000))
    assert many == few, f"{impl}: {few} epoll_ctl calls for 10 data-only modifies, {many} for 1000"


@pytest.mark.parametrize("impl", ["reactor", "stdlib"])
def test_mask_changing_modify_makes_one_epoll_ctl_each(strace, impl, tmp_path):
    few, many = (epoll_ctl_calls(impl, "mask", k, tmp_path) for k in (10, 1000))
    assert many - few == 990, f"{impl}: {few} epoll_ctl calls for 10 mask changes, {many} for 1000"
