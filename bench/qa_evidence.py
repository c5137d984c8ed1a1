"""QA evidence (`return_evidence`): how often the top span holds the answer, and what it costs.

    .venv/bin/python bench/qa_evidence.py --model model_store/demo-qa/2 \\
        [--legacy model_store/demo-qa/1] [--count 300] [--cmrc ../shared/data/cmrc2018/dev.json] \\
        [--cmrc-count 200] [--requests 60] [--json out.json]

`--model` is a version exported with the attention outputs (a new export, or an old one exported
again with `python -m training.qa_reexport`); `--legacy`, optional, the same weights exported
before (no attention output), to time what the extra output costs requests without evidence.

1. Quality, in-process (the SavedModel's signatures, the manifest's beam size and extractive
   setting, `force_answer` so that every question has an answer and evidence), for each way of
   reading the attention: which layer (each one, or the mean of all) and which tokens (`writing`:
   the token that predicted each answer token, the service's; `written`: the answer tokens
   themselves). On held-out demo questions (`DEMO_HELDOUT_SYNTHETIC`, seed 1001, the answerable
   ones, and `DEMO_SYNTHETIC`, the kind the demo trains on, seed 1001) it counts how often the
   top span contains the gold answer and the predicted one, how often it shares a character
   with an occurrence of the gold answer, how often any of the (at most 3) spans contains it,
   and the top span's length against its passage's (a span as long as the passage would
   contain everything). On real passages (CMRC 2018 dev: a window of
   `--window` characters around the gold answer of each question) the same counts.
2. Cost in-process: `answer_questions` on one question at a time (100 held-out questions,
   `--in-process-rounds` rounds), each way in turn on the same question.
3. Cost, against a real server process (`tests/live_server.py`) serving `--model` (and
   `--legacy`): sequential requests of held-out questions, the modes interleaved request by
   request (so load drifts hit them alike), median and mean time per request, ratios to the
   request without evidence.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.qa_demo_heldout import load_qa_version  # noqa: E402
from models.bert.tokenizer import BertTokenizer  # noqa: E402
from models.qa.decoding import answer_questions  # noqa: E402
from models.qa.synthetic import ANSWERED, make_labelled_examples  # noqa: E402
from training.qa import (  # noqa: E402
    DEMO_HELDOUT_SEED,
    DEMO_HELDOUT_SYNTHETIC,
    DEMO_SYNTHETIC,
)

CHUNK = 16


def _gold(example: Any) -> list[str]:
    return [p.answer for p in example.passages if p.answer] or list(example.answers)


def synthetic_set(count: int, config: Any) -> list[tuple[str, list[str], list[str]]]:
    labelled = make_labelled_examples(count, DEMO_HELDOUT_SEED, config)
    return [
        (i.example.question, [p.text for p in i.example.passages], _gold(i.example))
        for i in labelled
        if i.kind == ANSWERED
    ]


def cmrc_set(
    path: Path, count: int, window: int, seed: int = 0
) -> list[tuple[str, list[str], list[str]]]:
    """(question, [a window of the context around the gold answer], [gold answers])."""
    data = json.loads(path.read_text(encoding="utf-8"))
    items = []
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            for qa in paragraph["qas"]:
                answer = qa["answers"][0]
                start = int(answer["answer_start"])
                text = answer["text"]
                if context[start : start + len(text)] != text or len(text) > window // 2:
                    continue
                items.append((qa["question"], context, start, text))
    rng = random.Random(seed)
    rng.shuffle(items)
    out = []
    for question, context, start, text in items[:count]:
        # The answer somewhere inside the window, not always at its middle.
        before = rng.randint(0, window - len(text))
        lo = max(0, start - before)
        out.append((question, [context[lo : lo + window]], [text]))
    return out


def _overlaps(span: Any, passages: list[str], gold: list[str]) -> bool:
    """Whether the span shares a character with an occurrence of a gold answer in its passage."""
    text = passages[span.passage_index]
    for answer in gold:
        at = text.find(answer)
        while at >= 0 and answer:
            if at < span.end and span.start < at + len(answer):
                return True
            at = text.find(answer, at + 1)
    return False


READINGS: list[tuple[str, int | None, int]] = []  # (label, layers, shift), filled per model


def quality(
    model: Any, tokenizer: BertTokenizer, options: dict[str, Any], items: list[Any]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, layers, shift in READINGS:
        counts = {"top_has_gold": 0, "top_overlaps_gold": 0, "top_has_pred": 0,
                  "any_has_gold": 0, "em": 0}  # fmt: skip
        span_share: list[float] = []
        span_chars: list[int] = []
        n = 0
        for start in range(0, len(items), CHUNK):
            chunk = items[start : start + CHUNK]
            results = answer_questions(
                model,
                tokenizer,
                [(q, p) for q, p, _ in chunk],
                force_answer=True,
                evidence=True,
                evidence_layers=layers,
                evidence_shift=shift,
                **options,
            )
            for (_, passages, gold), result in zip(chunk, results, strict=True):
                n += 1
                if result.answer is None or not result.evidence or not result.evidence[0]:
                    continue
                spans = result.evidence[0]
                top = spans[0]
                counts["em"] += result.answer in gold
                counts["top_has_gold"] += any(g in top.text for g in gold)
                counts["top_has_pred"] += result.answer in top.text
                counts["top_overlaps_gold"] += _overlaps(top, passages, gold)
                counts["any_has_gold"] += any(g in s.text for s in spans for g in gold)
                span_chars.append(len(top.text))
                span_share.append(len(top.text) / max(1, len(passages[top.passage_index])))
        out[label] = {
            "questions": n,
            **{k: round(v / max(1, n), 3) for k, v in counts.items()},
            "top_span_chars": round(statistics.mean(span_chars), 2) if span_chars else None,
            "top_span_share_of_passage": round(statistics.mean(span_share), 3)
            if span_share
            else None,
        }
        print(label, json.dumps(out[label]), flush=True)
    return out


def cost(model_dir: Path, legacy: Path | None, items: list[Any], requests: int) -> dict[str, Any]:
    import httpx

    from tests.live_server import live_server

    with tempfile.TemporaryDirectory() as scratch:
        store = Path(scratch)
        shutil.copytree(model_dir, store / "evidence" / "1")
        modes: list[tuple[str, str, bool]] = [
            ("new export, without evidence", "evidence", False),
            ("new export, with evidence", "evidence", True),
        ]
        if legacy is not None:
            shutil.copytree(legacy, store / "legacy" / "1")
            modes.insert(0, ("old export (no attention output)", "legacy", False))
        for path in store.glob("*/1/manifest.json"):
            manifest = json.loads(path.read_text(encoding="utf-8"))
            manifest["name"] = path.parent.parent.name
            manifest["version"] = 1
            path.write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
        times: dict[str, list[float]] = {label: [] for label, _, _ in modes}
        with live_server(store, MAX_PASSAGES="8") as url, httpx.Client(timeout=120) as client:
            for i in range(requests + 3):
                question, passages, _ = items[i % len(items)]
                order = modes if i % 2 == 0 else list(reversed(modes))
                for label, name, evidence in order:
                    body = {
                        "model": name,
                        "question": question,
                        "passages": passages,
                        "force_answer": True,
                        "return_evidence": evidence,
                    }
                    t0 = time.perf_counter()
                    response = client.post(f"{url}/v1/qa", json=body)
                    elapsed = time.perf_counter() - t0
                    response.raise_for_status()
                    if i >= 3:  # the first rounds warm up
                        times[label].append(elapsed * 1000)
    base = "new export, without evidence"
    base_median = statistics.median(times[base])
    base_mean = statistics.mean(times[base])
    return {
        label: {
            "requests": len(t),
            "median_ms": round(statistics.median(t), 2),
            "mean_ms": round(statistics.mean(t), 2),
            "median_ratio": round(statistics.median(t) / base_median, 3),
            "mean_ratio": round(statistics.mean(t) / base_mean, 3),
        }
        for label, t in times.items()
    }


def in_process_cost(
    models: dict[str, Any],
    tokenizer: BertTokenizer,
    options: dict[str, Any],
    items: list[Any],
    rounds: int,
) -> dict[str, Any]:
    """Time of `answer_questions` on one question (as a request alone in its batch), each way
    in turn on the same question; medians over all questions and rounds, ratio to the new export
    without evidence."""
    modes = [(label, model, evidence) for label, (model, evidence) in models.items()]
    times: dict[str, list[float]] = {label: [] for label, _, _ in modes}
    for r in range(rounds + 1):
        for i, (question, passages, _) in enumerate(items):
            order = modes if (i + r) % 2 == 0 else list(reversed(modes))
            for label, model, evidence in order:
                t0 = time.perf_counter()
                answer_questions(
                    model, tokenizer, [(question, passages)], force_answer=True,
                    evidence=evidence, **options,
                )  # fmt: skip
                if r:  # round 0 warms up
                    times[label].append((time.perf_counter() - t0) * 1000)
    base = statistics.median(times["new export, without evidence"])
    base_total = sum(times["new export, without evidence"])
    return {
        label: {
            "calls": len(t),
            "median_ms": round(statistics.median(t), 3),
            "median_ratio": round(statistics.median(t) / base, 3),
            "total_ratio": round(sum(t) / base_total, 3),
        }
        for label, t in times.items()
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from models.bert.lm_reader import SavedModelLMStepModel

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="a version with attention")
    parser.add_argument("--legacy", type=Path, default=None, help="the same, exported before")
    parser.add_argument("--count", type=int, default=300, help="held-out questions drawn")
    parser.add_argument("--cmrc", type=Path, default=None, help="CMRC 2018 dev.json")
    parser.add_argument("--cmrc-count", type=int, default=200)
    parser.add_argument("--window", type=int, default=100, help="characters of a CMRC passage")
    parser.add_argument("--requests", type=int, default=60, help="timed requests per mode")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument(
        "--in-process-rounds", type=int, default=3, help="rounds of the in-process timing"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    model, tokenizer, options = load_qa_version(args.model)
    if not model.has_attention:
        raise SystemExit(f"{args.model} has no attention output: python -m training.qa_reexport")
    num_layers = int(model._cache_shape[0])
    READINGS.clear()
    for shift, reading in ((0, "writing"), (1, "written")):
        for layer in range(num_layers):
            READINGS.append((f"layer {layer}, {reading}", layer, shift))
        READINGS.append((f"mean of layers, {reading}", None, shift))
    report: dict[str, Any] = {"model": str(args.model), "options": options}
    heldout = synthetic_set(args.count, DEMO_HELDOUT_SYNTHETIC)
    if not args.skip_quality:
        print(f"held-out hard kind, {len(heldout)} answerable questions", flush=True)
        report["heldout_hard"] = quality(model, tokenizer, options, heldout)
        easy = synthetic_set(args.count, DEMO_SYNTHETIC)
        print(f"held-out trained kind, {len(easy)} answerable questions", flush=True)
        report["heldout_trained_kind"] = quality(model, tokenizer, options, easy)
        if args.cmrc is not None:
            cmrc = cmrc_set(args.cmrc, args.cmrc_count, args.window)
            print(f"CMRC 2018 dev, {len(cmrc)} questions, {args.window}-char windows", flush=True)
            report["cmrc2018_dev"] = quality(model, tokenizer, options, cmrc)
    if args.in_process_rounds:
        models: dict[str, Any] = {}
        if args.legacy is not None:
            models["old export (no attention output)"] = (SavedModelLMStepModel(args.legacy), False)
        models["new export, without evidence"] = (model, False)
        models["new export, with evidence"] = (model, True)
        report["in_process_cost"] = in_process_cost(
            models, tokenizer, options, heldout[:100], args.in_process_rounds
        )
        print(json.dumps(report["in_process_cost"], indent=1), flush=True)
    if args.requests:
        report["cost"] = cost(args.model, args.legacy, heldout, args.requests)
        print(json.dumps(report["cost"], indent=1), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
