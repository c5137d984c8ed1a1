"""Cut SQuAD / WebQA-format QA files into passage windows and keep a sample of them: for each
question the window(s) that hold its answer and a few that do not, as a WebQA JSON file that
`training.qa` reads without windowing it again (give it the same --max-passage-tokens).

    python scripts/qa_window_sample.py drcd_dev_simplified.json drcd_test_simplified.json \\
        ../shared/data/cmrc2018/trial.json --out train_windows.json --window 128 --stride 64

Why: `training.qa` trains on every window of every context, and most windows of a 500-character
context do not hold the answer. On a CPU budget that buys few questions; keeping the answer's
window and `--negatives` others per question trains "no answer here" still, on more questions.
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import replace
from pathlib import Path

from models.qa.readers import QAExample, read_qa_file, window_passages, write_webqa_file


def sample_windows(
    examples: list[QAExample], window: int, stride: int, negatives: int, seed: int
) -> list[QAExample]:
    rng = random.Random(seed)
    out = []
    for example in examples:
        windowed = window_passages(example, window, stride)
        holding = [p for p in windowed.passages if p.answer]
        others = [p for p in windowed.passages if not p.answer]
        if not holding:
            continue
        kept = [rng.choice(holding), *rng.sample(others, min(negatives, len(others)))]
        rng.shuffle(kept)
        out.append(replace(windowed, passages=kept))
    rng.shuffle(out)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--window", type=int, default=128, help="characters per window")
    parser.add_argument("--stride", type=int, default=64, help="characters between windows")
    parser.add_argument("--negatives", type=int, default=1, help="windows without the answer")
    parser.add_argument("--limit", type=int, default=None, help="keep this many questions")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    examples = [e for path in args.files for e in read_qa_file(path)]
    sampled = sample_windows(examples, args.window, args.stride, args.negatives, args.seed)
    sampled = sampled[: args.limit]
    write_webqa_file(args.out, sampled)
    passages = sum(len(e.passages) for e in sampled)
    sys.stderr.write(f"{len(examples)} questions -> {len(sampled)} with {passages} windows\n")


if __name__ == "__main__":
    main()
