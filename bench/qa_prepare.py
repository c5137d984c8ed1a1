"""What the QA runtime's request side costs: `QARuntime.prepare` (tokenisation, windows, the
passages' rows an answer's text is cut from) on the requests of `bench/qa_placeholders.py`,
without the model. Run it from two checkouts in turn to compare them (its figures are CPU time
of this thread, the median of `--rounds` rounds):

    for tree in before after before after; do
        (cd $tree && .venv/bin/python bench/qa_prepare.py --model model_store/demo-qa/1)
    done

`--model` is any QA version (its manifest and vocabulary are read; the SavedModel is not loaded).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.paired import cpu_time  # noqa: E402
from bench.qa_placeholders import requests  # noqa: E402
from models.store import read_manifest  # noqa: E402
from service.runtimes.qa import QARuntime  # noqa: E402
from service.settings import Settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    manifest = read_manifest(args.model)
    runtime = QARuntime(manifest.name, manifest.version, args.model, Settings(max_passages=1024))
    print(f"| request | prepare, median of {args.rounds} |")
    print("|---|---|")
    for name, (question, passages) in requests().items():
        repeat = max(1, 100_000 // sum(map(len, passages)))

        def prepare(q: str = question, p: list[str] = passages) -> object:
            return runtime.prepare(q, p, max_answer_tokens=None, beam_size=None, extractive=True)

        times = [cpu_time(prepare, repeat) for _ in range(args.rounds)]
        print(f"| {name} | {statistics.median(times) * 1e6:,.1f} us |")


if __name__ == "__main__":
    main()
