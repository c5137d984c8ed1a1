"""`training.demo --jobs`: the demos split over processes longest first, each lane in a process of
its own, and a lane that fails named once every lane has finished."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from training.demo import DEMO_MINUTES, LANE_NICENESS, plan_lanes, run_lanes


def test_the_qa_demo_gets_a_lane_of_its_own() -> None:
    names = ["demo-jose", "demo-cln", "demo-qa", "demo-digits"]
    assert plan_lanes(names, 2) == [["demo-qa"], ["demo-digits", "demo-cln", "demo-jose"]]
    assert plan_lanes(names, 1) == [["demo-qa", "demo-digits", "demo-cln", "demo-jose"]]
    assert plan_lanes(["demo-cln", "demo-jose"], 4) == [["demo-cln"], ["demo-jose"]]
    assert plan_lanes(names, 3)[0] == ["demo-qa"] and sorted(DEMO_MINUTES) == sorted(names)


def record_pid(name: str, args: argparse.Namespace, progress: bool) -> None:
    """A stand-in for `train_demo` (module level, so a spawned process can import it)."""
    if name == "broken":
        raise RuntimeError("this demo fails")
    (args.out / name).write_text(f"{os.getpid()} {progress} {os.nice(0)}")
    if name.startswith("slow"):
        time.sleep(120)


def test_lanes_train_at_once_in_their_own_processes(tmp_path: Path) -> None:
    args = argparse.Namespace(out=tmp_path)
    run_lanes([["qa"], ["digits", "cln"]], args, train=record_pid)
    pid = {name: (tmp_path / name).read_text().split() for name in ("qa", "digits", "cln")}
    # The first lane here, with its progress bar; the others elsewhere, without, at a lower
    # priority.
    assert pid["qa"] == [str(os.getpid()), "True", str(os.nice(0))]
    assert pid["digits"] == pid["cln"] and pid["digits"][0] != str(os.getpid())
    assert pid["digits"][1] == "False"
    assert int(pid["digits"][2]) == min(19, os.nice(0) + LANE_NICENESS)


def test_a_failed_lane_is_named_after_the_others_finish(tmp_path: Path) -> None:
    args = argparse.Namespace(out=tmp_path)
    with pytest.raises(SystemExit, match="process for broken, cln"):
        run_lanes([["qa"], ["broken", "cln"]], args, train=record_pid)
    assert (tmp_path / "qa").exists() and not (tmp_path / "cln").exists()


def test_sigterm_stops_the_lanes_in_other_processes(tmp_path: Path) -> None:
    # `docker compose stop` sends the demo SIGTERM: its child processes must not train on.
    script = (
        "import argparse, pathlib\n"
        "from training.demo import run_lanes\n"
        "from tests.training.test_demo_lanes import record_pid\n"
        f"run_lanes([['slow-here'], ['slow-there']], argparse.Namespace("
        f"out=pathlib.Path({str(tmp_path)!r})), train=record_pid)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).parents[2])
    try:
        deadline = time.monotonic() + 60
        while not all((tmp_path / n).exists() for n in ("slow-here", "slow-there")):
            assert time.monotonic() < deadline and parent.poll() is None
            time.sleep(0.1)
        child = int((tmp_path / "slow-there").read_text().split()[0])
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=30) != 0
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not Path(f"/proc/{child}").exists()
    finally:
        parent.kill()
