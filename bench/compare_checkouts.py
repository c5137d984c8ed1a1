"""Throughput of two checkouts of the service side by side: a refactor against the commit before it.

    git worktree add --detach /tmp/before <commit>
    .venv/bin/python bench/compare_checkouts.py --before /tmp/before --store model_store \\
        --case embeddings:demo-jose:1 --case embeddings:demo-jose:16 \\
        --case generate:demo-cln:16 --qa-cache --shapes small --rows 1

Starts `python -m service` from each source tree (its cwd and PYTHONPATH, so each serves its own
code) on 127.0.0.1 from the same store, each twice: batched (the settings' defaults) and unbatched
(MAX_BATCH_SIZE=1, as bench/load.py makes it). A case is `endpoint:model:concurrency`; each round
runs every case's closed loop on the four servers in turn, before first in even rounds and after
first in odd ones (noise on this shared machine and its drift hit both alike). /v1/embeddings,
/v1/qa and /v1/density/score send bench/load.py's requests (density: 64-dimensional digit rows) and
count answered requests a second; /v1/generate sends bench/generation.py's streamed requests and
counts tokens a second. Every run is bounded by a request count and a time limit.

The table holds, per case, each side's median round, after/before, the batched/unbatched ratio of
each side (what docs/benchmarks.md reports) and the lowest and highest per-round after/before of
the batched servers (the two runs of one round side by side: the spread to judge a change by).

With `--qa-cache`, the arguments after it go to each tree's own bench/qa_cache.py (its decoder's
call arguments may differ between the trees), run as a module from that tree, alternating the
same way; its cached/uncached speedups are tabled side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import generation, load  # noqa: E402
from bench.http_edge import cpu_seconds  # noqa: E402
from tests.live_server import ROOT, live_server_process  # noqa: E402

SIDES = ("before", "after")
MODES = ("batched", "unbatched")
ENDPOINTS = {
    "embeddings": "/v1/embeddings",
    "qa": "/v1/qa",
    "density": "/v1/density/score",
    "generate": "/v1/generate",
}


@dataclass(frozen=True)
class Case:
    endpoint: str
    model: str
    concurrency: int

    @classmethod
    def parse(cls, text: str) -> Case:
        endpoint, model, concurrency = text.split(":")
        if endpoint not in ENDPOINTS:
            raise argparse.ArgumentTypeError(f"endpoint {endpoint!r} not one of {list(ENDPOINTS)}")
        return cls(endpoint, model, int(concurrency))

    @property
    def unit(self) -> str:
        return "tok/s" if self.endpoint == "generate" else "req/s"


def tree_env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree), "TF_CPP_MIN_LOG_LEVEL": "2"}


def check_imports_from(tree: Path) -> None:
    """The interpreter started in `tree` imports that tree's service (not an installed copy)."""
    found = subprocess.run(
        [sys.executable, "-c", "import service; print(service.__file__)"],
        cwd=tree, env=tree_env(tree), capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    if not Path(found).resolve().is_relative_to(tree.resolve()):
        raise RuntimeError(f"{tree}: `import service` finds {found}")


def generation_label(store: Path, model: str) -> str:
    """The first condition label of the model's newest version (what bench/generation.py sends)."""
    versions = sorted((store / model).iterdir(), key=lambda p: int(p.name))
    manifest = json.loads((versions[-1] / "manifest.json").read_text(encoding="utf-8"))
    return str(manifest["labels"][0])


def run_case(
    url: str, case: Case, args: argparse.Namespace, label: str | None
) -> tuple[float, int, int]:
    """(throughput, answered requests, errors) of one closed loop."""
    if case.endpoint == "generate":
        assert label is not None
        result = asyncio.run(generation.closed_loop(
            url, case.model, label, case.concurrency, args.requests, args.seconds,
            args.max_new_tokens,
        ))  # fmt: skip
        return result["tps"], int(result["requests"]), int(result["errors"])
    result = asyncio.run(load.closed_loop(
        url, case.endpoint, case.model, case.concurrency, args.requests, args.seconds, 1,
    ))  # fmt: skip
    return result["rps"], int(result["answered"]), int(result["errors"])


def round_order(index: int) -> list[tuple[str, str]]:
    """Before first in even rounds, after first (and each side's modes reversed) in odd ones."""
    order = [(side, mode) for side in SIDES for mode in MODES]
    return order if index % 2 == 0 else order[::-1]


def serve_cases(args: argparse.Namespace, trees: dict[str, Path]) -> list[str]:
    """The markdown table of the HTTP cases."""
    labels = {
        c.model: generation_label(args.store, c.model)
        for c in args.case
        if c.endpoint == "generate"
    }
    if any(c.endpoint == "density" for c in args.case):
        load.DIGITS.extend(load.digits_rows())
    # runs[case][(side, mode)]: (throughput, server CPU ms per answered request) of each round.
    runs: dict[Case, dict[tuple[str, str], list[tuple[float, float]]]] = {
        c: {key: [] for key in round_order(0)} for c in args.case
    }
    errors = dict.fromkeys(args.case, 0)
    with ExitStack() as stack:
        servers = {}
        for side, mode in round_order(0):
            tree = trees[side]
            servers[side, mode] = stack.enter_context(
                live_server_process(args.store, cwd=tree, PYTHONPATH=str(tree))
                if mode == "batched"
                else live_server_process(
                    args.store, cwd=tree, PYTHONPATH=str(tree), MAX_BATCH_SIZE="1"
                )
            )
        for index in range(args.rounds):
            for case in args.case:
                for key in round_order(index):
                    url, proc = servers[key]
                    started_cpu = cpu_seconds(proc.pid)
                    throughput, answered, failed = run_case(url, case, args, labels.get(case.model))
                    cpu_ms = (cpu_seconds(proc.pid) - started_cpu) * 1000 / max(1, answered)
                    runs[case][key].append((throughput, cpu_ms))
                    errors[case] += failed
            print(f"round {index + 1} of {args.rounds} done", file=sys.stderr, flush=True)

    lines = [
        "| endpoint | model | concurrency | unit | before batched | after batched | after/before "
        "| before unbatched | after unbatched | after/before | batched/unbatched before "
        "| batched/unbatched after | per-round after/before, batched (min-max) "
        "| server CPU ms/request batched, before / after | errors |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in args.case:
        per = runs[case]
        rate = {k: statistics.median(r for r, _ in v) for k, v in per.items()}
        cpu = {k: statistics.median(c for _, c in v) for k, v in per.items()}
        paired = [
            a[0] / b[0]
            for a, b in zip(per["after", "batched"], per["before", "batched"], strict=True)
        ]
        lines.append(
            f"| {ENDPOINTS[case.endpoint]} | {case.model} | {case.concurrency} | {case.unit} "
            f"| {rate['before', 'batched']:.0f} | {rate['after', 'batched']:.0f} "
            f"| {rate['after', 'batched'] / rate['before', 'batched']:.2f} "
            f"| {rate['before', 'unbatched']:.0f} | {rate['after', 'unbatched']:.0f} "
            f"| {rate['after', 'unbatched'] / rate['before', 'unbatched']:.2f} "
            f"| {rate['before', 'batched'] / rate['before', 'unbatched']:.2f}x "
            f"| {rate['after', 'batched'] / rate['after', 'unbatched']:.2f}x "
            f"| {min(paired):.2f}-{max(paired):.2f} "
            f"| {cpu['before', 'batched']:.2f} / {cpu['after', 'batched']:.2f} "
            f"| {errors[case]} |"
        )
    return lines


def qa_cache_rows(tree: Path, qa_args: list[str]) -> dict[tuple[str, int], tuple[float, str]]:
    """(shape, rows) -> (time without cache / time with cache, answers the same) of one run of
    `tree`'s own bench/qa_cache.py."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.qa_cache", *qa_args],
        cwd=tree, env=tree_env(tree), capture_output=True, text=True, check=True,
        timeout=1800,
    ).stdout  # fmt: skip
    rows = {}
    for line in out.splitlines():
        cells = line.split()
        # shape rows cache_s no_cache_s ratio full_logits_s ratio same
        if len(cells) == 8 and cells[1].isdigit():
            rows[cells[0], int(cells[1])] = (float(cells[4]), cells[7])
    if not rows:
        raise RuntimeError(f"{tree}: no rows in bench/qa_cache.py's output:\n{out}")
    return rows


def qa_cache(args: argparse.Namespace, trees: dict[str, Path]) -> list[str]:
    """The markdown table of the cached/uncached speedups of each tree's bench/qa_cache.py."""
    runs: dict[str, list[dict[tuple[str, int], tuple[float, str]]]] = {s: [] for s in SIDES}
    for index in range(args.qa_rounds):
        for side in SIDES if index % 2 == 0 else SIDES[::-1]:
            runs[side].append(qa_cache_rows(trees[side], args.qa_cache))
        print(f"qa_cache round {index + 1} of {args.qa_rounds} done", file=sys.stderr, flush=True)
    lines = [
        "| shape | rows | speedup before (median) | speedup after (median) | after/before "
        "| before, per round | after, per round | answers same |",
        "|---|---:|---:|---:|---:|---|---|---|",
    ]
    for key in runs["before"][0]:
        seen = {s: [run[key][0] for run in runs[s]] for s in SIDES}
        same = all(run[key][1] == "yes" for s in SIDES for run in runs[s])
        before, after = (statistics.median(seen[s]) for s in SIDES)
        lines.append(
            f"| {key[0]} | {key[1]} | {before:.1f}x | {after:.1f}x | {after / before:.2f} "
            f"| {', '.join(f'{v:.1f}' for v in seen['before'])} "
            f"| {', '.join(f'{v:.1f}' for v in seen['after'])} | {'yes' if same else 'NO'} |"
        )
    return lines


def main() -> None:
    argv = sys.argv[1:]
    qa_args = None
    if "--qa-cache" in argv:
        at = argv.index("--qa-cache")
        argv, qa_args = argv[:at], argv[at + 1 :]
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="--qa-cache ARGS... (last): also run each tree's bench/qa_cache.py with ARGS",
    )
    parser.add_argument("--before", type=Path, required=True, help="source tree of the baseline")
    parser.add_argument("--after", type=Path, default=ROOT, help="default: this checkout")
    parser.add_argument("--store", type=Path, default=Path("model_store"))
    parser.add_argument(
        "--case",
        type=Case.parse,
        action="append",
        default=[],
        help="endpoint:model:concurrency, repeatable (endpoint: " + ", ".join(ENDPOINTS) + ")",
    )
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds of every case")
    parser.add_argument("--seconds", type=float, default=4, help="per run, at most")
    parser.add_argument("--requests", type=int, default=2000, help="per run, at most")
    parser.add_argument("--max-new-tokens", type=int, default=16, help="per generate request")
    parser.add_argument("--qa-rounds", type=int, default=2, help="alternating runs of qa_cache")
    args = parser.parse_args(argv)
    args.qa_cache = qa_args
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    for tree in trees.values():
        check_imports_from(tree)

    commits = {
        side: subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True, text=True
        ).stdout.strip()
        or "?"
        for side, tree in trees.items()
    }
    sides = f"before = {trees['before']} ({commits['before']}), "
    sides += f"after = {trees['after']} ({commits['after']})"
    if args.case:
        table = serve_cases(args, trees)
        print(
            f"\n{sides}; store {args.store}; batched = the defaults, unbatched = MAX_BATCH_SIZE=1; "
            f"median of {args.rounds} alternating rounds of at most {args.seconds:g} s or "
            f"{args.requests} requests a run; generate: streamed, {args.max_new_tokens} new "
            f"tokens at most; {os.cpu_count()} CPUs shared by the servers and the load generator\n"
        )
        print("\n".join(table), flush=True)
    if qa_args is not None:
        table = qa_cache(args, trees)
        print(
            f"\n{sides}; `python -m bench.qa_cache {' '.join(qa_args)}` from each tree, "
            f"{args.qa_rounds} alternating runs; speedup = time without cache / time with cache\n"
        )
        print("\n".join(table), flush=True)


if __name__ == "__main__":
    main()
