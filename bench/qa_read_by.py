"""Decoding time of a QA version reading passages whole against sentence by sentence, A B A B.

    .venv/bin/python bench/qa_read_by.py --model model_store/demo-qa/1 [--set hard] \\
        [--count 400] [--pairs 4]

Decodes the held-out questions of `bench/qa_demo_heldout.py --set` as the service does (the
manifest's options), once with `read_by="passage"` and once with `read_by="sentence"`, in turn,
and prints each run's CPU seconds and the ratio of each pair (sentence over passage). Reading by
sentence makes more rows (one per sentence) of fewer tokens each. The first pass of each is a
warm-up and is not counted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from qa_demo_heldout import SETS, load_qa_version  # noqa: E402

from models.qa.decoding import answer_questions  # noqa: E402
from models.qa.synthetic import make_labelled_examples  # noqa: E402
from training.qa import DEMO_HELDOUT_SEED  # noqa: E402

BATCH = 16  # questions a call, as bench/qa_demo_heldout.py decodes them


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="a version folder")
    parser.add_argument("--set", choices=list(SETS), default="hard")
    parser.add_argument("--count", type=int, default=400, help="held-out questions")
    parser.add_argument("--pairs", type=int, default=4, help="A B pairs timed")
    args = parser.parse_args(argv)
    model, tokenizer, options = load_qa_version(args.model)
    labelled = make_labelled_examples(args.count, DEMO_HELDOUT_SEED, SETS[args.set])
    questions = [(i.example.question, [p.text for p in i.example.passages]) for i in labelled]

    def decode(read_by: str) -> float:
        started = time.process_time()
        for start in range(0, len(questions), BATCH):
            batch = questions[start : start + BATCH]
            answer_questions(model, tokenizer, batch, **{**options, "read_by": read_by})
        return time.process_time() - started

    decode("passage"), decode("sentence")  # warm-up: the SavedModel traces each shape once
    seconds: dict[str, list[float]] = {"passage": [], "sentence": []}
    for _ in range(args.pairs):
        for read_by in seconds:
            seconds[read_by].append(decode(read_by))
    ratios = [s / p for p, s in zip(seconds["passage"], seconds["sentence"], strict=True)]
    print(f"{args.count} questions of --set {args.set}, CPU seconds per run, A B A B")
    print("| read_by | " + " | ".join(f"run {i + 1}" for i in range(args.pairs)) + " |")
    print("|---|" + "---:|" * args.pairs)
    for read_by, runs in seconds.items():
        print(f"| {read_by} | " + " | ".join(f"{s:.2f}" for s in runs) + " |")
    print("| sentence / passage | " + " | ".join(f"{r:.3f}" for r in ratios) + " |")
    print(f"median ratio {statistics.median(ratios):.3f}")
    return seconds


if __name__ == "__main__":
    main()
