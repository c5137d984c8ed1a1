"""The whole demo one family after another (`--jobs 1`) against two processes at once (`--jobs 2`).

    .venv/bin/python bench/demo_jobs.py --rounds 2                 # the QA demo cut to 1 epoch
    .venv/bin/python bench/demo_jobs.py --rounds 1 --qa-epochs 0   # `make run`'s demo (~20 min)

Each round trains the demo into an empty temporary store with each setting, A B then B A, and
the table gives the wall times and, round by round, jobs-2 over jobs-1. The machine is shared, so
only the ratio within a round means much. `--qa-epochs 0` keeps the QA demo's own epochs.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed_demo(jobs: int, qa_epochs: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "training.demo", "--out", f"{tmp}/store",
                   "--jobs", str(jobs)]  # fmt: skip
        if qa_epochs:
            command += ["--qa-epochs", str(qa_epochs)]
        started = time.monotonic()
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True, timeout=3600)
        return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--qa-epochs", type=int, default=1, help="0: the QA demo's own")
    args = parser.parse_args()
    print("| round | --jobs 1 | --jobs 2 | jobs 2 / jobs 1 |")
    print("|---:|---:|---:|---:|")
    ratios = []
    for round_ in range(args.rounds):
        order = (1, 2) if round_ % 2 == 0 else (2, 1)
        wall = {jobs: timed_demo(jobs, args.qa_epochs) for jobs in order}
        ratios.append(wall[2] / wall[1])
        row = f"| {round_ + 1} | {wall[1]:.0f} s | {wall[2]:.0f} s | {ratios[-1]:.3f} |"
        print(row, flush=True)
    print(f"\nmedian jobs 2 / jobs 1: {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
