"""Answers that straddle a window's cut: exact match with and without the windows' cuts known.

    nice -n 10 .venv/bin/python bench/qa_window_cuts.py --model model_store/demo-qa/1 \\
        [--count 300] [--seed 1001] [--set hard] [--decoders greedy,beam3,span] \\
        [--window 64 [--stride 32]] [--json out.json]

A passage longer than the model reads is cut into overlapping windows, each a row of the vote
(`service.runtimes.qa`); a window that ends inside the answer (after 北 of 北京) can only end it
there and votes so, unless it knows its end is a cut (`models.qa.decoding.decode_batch(cuts=)`).
This measures what that costs and what knowing the cuts gives back, on held-out questions nobody
wrote by hand.

Each answerable held-out question (`bench/qa_demo_heldout.py`'s sets, `models.qa.synthetic`)
becomes one long passage: its own passages joined, between text cut from other questions'
passages (none naming the person asked), about `--length` windows long. Twice: once placed so
that a window's end falls inside the answer's first occurrence (`across`: the answer is at least
two tokens; `across_start` is how many of them also start a window inside it), once at a random
place (`random`). Every question is read as the service reads it (`QARuntime.prepare`, then
`run_batch` in batches of 16): "before" with the rows' cuts cleared (exactly the decoding without
them), "after" as the service now reads it, in the same run. Prints a table of exact match
(`models.qa.metrics.exact`) per decoder, placement and way, how many answers are the gold one
cut short (a proper prefix or suffix of it: 北 for 北京) each way, the seconds each way took
(in turn, batch by batch) and JSON with `--json`.

`--window` cuts windows shorter than the model reads (the service's windowing with another
size; `--stride`, default half of it): the demo model, trained on passages of 48 tokens on
average, often says "no answer" in a full window of 128 (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from models.qa.decoding import WindowCuts  # noqa: E402
from models.qa.metrics import exact  # noqa: E402
from models.qa.synthetic import ANSWERED, LabelledExample, make_labelled_examples  # noqa: E402
from service.runtimes.qa import QAItem, QARuntime  # noqa: E402
from training.qa import DEMO_HELDOUT_SEED  # noqa: E402

# Draws of an `across` passage until a window's end falls inside the answer.
ATTEMPTS = 5
DECODERS: dict[str, dict[str, Any]] = {
    "greedy": {"beam_size": 1},
    "beam3": {"beam_size": 3},
    "span": {"beam_size": 1, "span_search": True},
}


def _sets() -> dict[str, Any]:
    from bench.qa_demo_heldout import SETS

    return SETS


def _filler(pool: list[str], person: str, rng: random.Random, chars: int) -> str:
    """At least `chars` characters of other questions' passages, none naming `person`."""
    text = ""
    while len(text) < chars:
        piece = rng.choice(pool)
        if person not in piece:
            text += piece
    return text


def long_passage(
    item: LabelledExample, pool: list[str], rng: random.Random, window: int, stride: int,
    length: float, across: bool,
) -> tuple[str, int]:  # fmt: skip
    """(passage, where the answer's first occurrence starts in it): the question's passages
    joined, between filler; `across`, placed so that the end of one of the first two windows
    that can hold it falls inside the answer, counting one token per character (the demo's
    vocabulary is of characters)."""
    own = "".join(p.text for p in item.example.passages)
    answer = item.example.gold_answers()[0]
    at = own.find(answer)
    total = max(int(length * window), window + stride + len(own))
    if across:
        first = max(0, -(-(at + 1 - window) // stride))  # the first window end past `at`
        cut = window + (first + rng.randint(0, 1)) * stride
        begin = max(0, cut - rng.randint(1, max(1, min(len(answer) - 1, cut - at))) - at)
    else:
        begin = rng.randint(0, max(0, total - len(own)))
    before = _filler(pool, item.person, rng, begin)[-begin:] if begin else ""
    after = _filler(pool, item.person, rng, max(stride, total - begin - len(own)))
    return before + own + after[: max(stride, total - begin - len(own))], begin + at


def _straddles(item: QAItem, start: int, end: int) -> tuple[bool, bool]:
    """Whether a window of the (single) long passage ends inside [start, end), starts inside."""
    ends = any(row.cuts.end and start < row.offsets[-1][1] < end for row in item.passage_rows)
    starts = any(row.cuts.start and start < row.offsets[0][0] < end for row in item.passage_rows)
    return ends, starts


def _cut_short(answer: str | None, gold: str) -> bool:
    """The answer is the gold one cut short: a proper prefix or suffix of it (北 for 北京)."""
    if not answer or answer == gold:
        return False
    return gold.startswith(answer) or gold.endswith(answer)


def _without_cuts(item: QAItem) -> QAItem:
    rows = tuple(replace(row, cuts=WindowCuts()) for row in item.passage_rows)
    return replace(item, passage_rows=rows)


def load_runtime(path: Path) -> QARuntime:
    from service.settings import Settings

    settings = Settings(model_store=path.parent.parent, max_passages=64, max_beam_size=8)
    runtime = QARuntime(path.parent.name, int(path.name), path, settings)
    runtime.load()
    return runtime


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="a QA version folder")
    parser.add_argument("--count", type=int, default=300, help="held-out questions drawn")
    parser.add_argument("--seed", type=int, default=DEMO_HELDOUT_SEED)
    parser.add_argument("--set", choices=list(_sets()), default="hard")
    parser.add_argument("--length", type=float, default=2.5, help="passage length in windows")
    parser.add_argument(
        "--window", type=int, default=None, help="window in tokens (default: the manifest's)"
    )
    parser.add_argument(
        "--stride", type=int, default=None, help="between windows (default: the service's)"
    )
    parser.add_argument("--decoders", default=",".join(DECODERS), help="of " + ",".join(DECODERS))
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)
    runtime = load_runtime(args.model)
    if args.window is not None:  # windows of the service's kind, shorter than the model reads
        runtime.max_passage_tokens = args.window
        runtime.window_stride = args.stride or args.window // 2
    elif args.stride is not None:
        runtime.window_stride = args.stride
    window, stride = runtime.max_passage_tokens, runtime.window_stride
    labelled = make_labelled_examples(args.count, args.seed, _sets()[args.set])
    pool = [p.text for item in labelled for p in item.example.passages]
    answered = [
        item for item in labelled
        if item.kind == ANSWERED and len(item.example.gold_answers()[0]) >= 2
    ]  # fmt: skip
    rng = random.Random(args.seed)
    report: dict[str, Any] = {
        "model": str(args.model), "set": args.set, "seed": args.seed, "window": window,
        "stride": stride, "questions": len(answered), "rows": [],
    }  # fmt: skip

    def build(item: LabelledExample, across: bool) -> tuple[str, int]:
        # characters are not always tokens (a number of two digits may be one): drawn again
        # until a window's end falls inside the answer, a few times at most
        for _ in range(ATTEMPTS):
            text, at = long_passage(item, pool, rng, window, stride, args.length, across)
            read = runtime.prepare(
                item.example.question, [text], max_answer_tokens=None, beam_size=1,
                extractive=True,
            )  # fmt: skip
            if not across or _straddles(read, at, at + len(item.example.gold_answers()[0]))[0]:
                break
        return text, at

    placements = {
        placement: [build(item, placement == "across") for item in answered]
        for placement in ("across", "random")
    }
    print(f"{len(answered)} answerable held-out questions ({args.set}, seed {args.seed}), "
          f"windows of {window} tokens {stride} apart")  # fmt: skip
    print(f"{'decoder':8} {'placement':10} {'n':>4} {'windows':>7} {'end in':>6} "
          f"{'start in':>8} {'EM before':>9} {'EM after':>9} {'short b/a':>9} {'changed':>7} "
          f"{'s b/a':>11}")  # fmt: skip
    for decoder in args.decoders.split(","):
        options = dict(max_answer_tokens=None, extractive=True, **DECODERS[decoder])
        for placement, built in placements.items():
            items = [
                runtime.prepare(item.example.question, [text], **options)
                for item, (text, _) in zip(answered, built, strict=True)
            ]
            answers: dict[str, list[str | None]] = {"before": [], "after": []}
            seconds = {"before": 0.0, "after": 0.0}
            for start in range(0, len(items), 16):  # the two ways in turn, batch by batch
                chunk = items[start : start + 16]
                for way, batch in (("before", [_without_cuts(i) for i in chunk]), ("after", chunk)):
                    started = time.perf_counter()
                    answers[way].extend(r.answer for r in runtime.run_batch(batch))
                    seconds[way] += time.perf_counter() - started
            gold = [item.example.gold_answers() for item in answered]
            straddle = [
                _straddles(item, at, at + len(answer[0]))
                for item, (_, at), answer in zip(items, built, gold, strict=True)
            ]
            short = {
                way: sum(_cut_short(a, g[0]) for a, g in zip(found, gold, strict=True))
                for way, found in answers.items()
            }
            em = {
                way: sum(exact(a, g) for a, g in zip(found, gold, strict=True)) / len(gold)
                for way, found in answers.items()
            }
            row = {
                "decoder": decoder,
                "placement": placement,
                "count": len(items),
                "windows": sum(len(item.prefixes) for item in items) / len(items),
                "across_end": sum(e for e, _ in straddle),
                "across_start": sum(s for _, s in straddle),
                "em_before": round(em["before"], 4),
                "em_after": round(em["after"], 4),
                "cut_short_before": short["before"],
                "cut_short_after": short["after"],
                "changed": sum(a != b for a, b in zip(*answers.values(), strict=True)),
                "seconds_before": round(seconds["before"], 2),
                "seconds_after": round(seconds["after"], 2),
            }
            report["rows"].append(row)
            print(f"{decoder:8} {placement:10} {row['count']:>4} {row['windows']:>7.2f} "
                  f"{row['across_end']:>6} {row['across_start']:>8} {em['before']:>9.3f} "
                  f"{em['after']:>9.3f} "
                  f"{short['before']:>4}/{short['after']:<4} "
                  f"{row['changed']:>7} {seconds['before']:>5.1f}/{seconds['after']:<5.1f}",
                  flush=True)  # fmt: skip
    if args.json is not None:
        args.json.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
