"""An opt-in pytest plugin: each test's CPU, its own and its waited-for children's (the servers
and jobs it started), its wall time and the processes it started, one tab-separated line a test.

    .venv/bin/python -m pytest tests/test_store_ops.py -q -p no:xdist -p tests.cpu_log

writes to $CPU_LOG (default cpu_log.tsv): nodeid, own CPU s, children's CPU s, wall s, processes
started, their first arguments, then the xdist worker ("main" without xdist) and the test's start
(Unix time), which lay out a parallel run's lanes. A child counts once it has been waited for, so
a session fixture's server is counted at the last test's teardown. Not loaded by `make test`.
"""

from __future__ import annotations

import os
import resource
import subprocess
import time
from collections.abc import Generator
from typing import Any

import pytest

_started: list[str] = []
_popen_init = subprocess.Popen.__init__


def _logging_init(self: subprocess.Popen, args: Any, *rest: Any, **kwargs: Any) -> None:
    argv = list(args) if isinstance(args, (list, tuple)) else [args]
    _started.append(" ".join(str(a) for a in argv[:4]))
    _popen_init(self, args, *rest, **kwargs)


subprocess.Popen.__init__ = _logging_init  # type: ignore[method-assign]


def _cpu() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: Any) -> Generator[None, None, None]:
    (own, children), wall, started = _cpu(), time.monotonic(), time.time()
    _started.clear()
    yield
    (own_after, children_after), wall_after = _cpu(), time.monotonic()
    fields = [
        item.nodeid,
        f"{own_after - own:.2f}",
        f"{children_after - children:.2f}",
        f"{wall_after - wall:.2f}",
        str(len(_started)),
        " | ".join(_started)[:300],
        os.environ.get("PYTEST_XDIST_WORKER", "main"),
        f"{started:.1f}",
    ]
    with open(os.environ.get("CPU_LOG", "cpu_log.tsv"), "a", encoding="utf-8") as log:
        log.write("\t".join(fields) + "\n")
