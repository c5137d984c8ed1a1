"""Rerun the benchmarks and write what they print into docs/benchmarks.md.

    .venv/bin/python bench/report.py --store model_store --encoder-store minilm_store  # every block
    .venv/bin/python bench/report.py --store model_store --only load-demo-qa ceiling-demo-qa
    .venv/bin/python bench/report.py --list
    .venv/bin/python bench/report.py --encoder-store bench_store --only reference-encoder \
        --reference-python bench_reference/bin/python

docs/benchmarks.md is prose around blocks this script owns, each between
`<!-- bench:NAME -->` and `<!-- /bench:NAME -->`. For every block selected it runs the block's
command (`BLOCKS`, models from `--store`, the BERT encoder from `--encoder-store`) and replaces the
block with the command line and what the command printed on stdout (the tables; progress goes to
stderr). The `machine` block is rewritten on every run: CPU, cores, memory, versions, date. A
block whose model is missing from its store is left as it was, with a note on stderr. The prose
that reads the figures is written by people, so it is worth a look after a rerun.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "docs" / "benchmarks.md"
MINILM = "minilm"


@dataclass(frozen=True)
class Block:
    """A benchmark whose output fills one block: its arguments after `python`, with `{store}`
    and `{encoder_store}` filled in, and the (store key, model) it needs."""

    args: tuple[str, ...]
    needs: tuple[str, str] | None = None


def _load(model: str, endpoint: str, store: str = "store") -> Block:
    """bench/load.py at 1-32 callers with its plot; `store` is the key of the model's store."""
    args = ["bench/load.py", "--store", "{" + store + "}", "--model", model]
    args += ["--endpoint", endpoint, "--concurrency", "1,4,16,32"]
    args += ["--plot", f"docs/img/load-{model}.png"]
    return Block(tuple(args), (store, model))


BLOCKS: dict[str, Block] = {
    "load-minilm": _load(MINILM, "embeddings", "encoder_store"),
    "load-demo-qa": _load("demo-qa", "qa"),
    "load-demo-jose": _load("demo-jose", "embeddings"),
    "load-demo-digits": _load("demo-digits", "density"),
    "ceiling-minilm": Block(
        ("bench/ceiling.py", "--store", "{encoder_store}", "--model", MINILM),
        ("encoder_store", MINILM),
    ),
    "ceiling-demo-qa": Block(
        ("bench/ceiling.py", "--store", "{store}", "--model", "demo-qa", "--endpoint", "qa"),
        ("store", "demo-qa"),
    ),
    "ceiling-demo-jose": Block(
        ("bench/ceiling.py", "--store", "{store}", "--model", "demo-jose"),
        ("store", "demo-jose"),
    ),
    "ceiling-demo-digits": Block(
        (
            "bench/ceiling.py",
            "--store",
            "{store}",
            "--model",
            "demo-digits",
            "--endpoint",
            "density",
        ),
        ("store", "demo-digits"),
    ),  # fmt: skip
    "encoder-roofline": Block(
        ("bench/encoder_roofline.py", "--store", "{encoder_store}", "--model", MINILM),
        ("encoder_store", MINILM),
    ),
    "generation": Block(
        ("bench/generation.py", "--store", "{store}", "--model", "demo-cln"), ("store", "demo-cln")
    ),
    "cold-start": Block(("bench/cold_start.py", "--store", "{store}", "--rounds", "2")),
    "http-edge": Block(
        ("bench/http_edge.py", "--store", "{store}", "--model", "demo-jose"), ("store", "demo-jose")
    ),
    "ray-serve": Block(
        ("bench/ray_serve.py", "--store", "{store}", "--model", "demo-jose"),
        ("store", "demo-jose"),
    ),
    # Only with --reference-python (a virtualenv with torch + sentence-transformers).
    "reference-encoder": Block(
        (
            "bench/reference_encoder.py",
            "--store",
            "{encoder_store}",
            "--model",
            MINILM,
            "--reference-python",
            "{reference_python}",
            "--omp-wait-policy",
            "PASSIVE",
        ),
        ("encoder_store", MINILM),
    ),  # fmt: skip
}


def machine_block() -> str:
    """What the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kb = int(meminfo.read_text().split("MemTotal:", 1)[1].split()[0])
        memory = f", {kb / 2**20:.0f} GiB"
    import tensorflow as tf

    gpus = len(tf.config.list_physical_devices("GPU"))
    return (
        f"Last run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {cpu}, {os.cpu_count()} CPUs"
        f"{memory}, {gpus or 'no'} GPU{'s' if gpus != 1 else ''}; Python "
        f"{platform.python_version()}, TensorFlow {tf.__version__}, "
        f"{platform.system()} {platform.release()}.\n"
    )


def run_block(
    name: str, block: Block, stores: dict[str, Path], reference_python: Path | None
) -> str | None:
    """The block's new text, or None when its model is missing."""
    if block.needs is not None:
        key, model = block.needs
        if not (stores[key] / model).is_dir():
            print(f"{name}: no {model} in {stores[key]}, left as it was", file=sys.stderr)
            return None
    if "{reference_python}" in block.args and reference_python is None:
        print(f"{name}: no --reference-python, left as it was", file=sys.stderr)
        return None
    fill = {**{k: str(v) for k, v in stores.items()}, "reference_python": str(reference_python)}
    args = [a.format(**fill) for a in block.args]
    command = ".venv/bin/python " + shlex.join(args)
    print(f"{name}: {command}", file=sys.stderr)
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE, text=True, check=True
    )
    # Ray's log monitor writes its workers' lines (colour-coded) to the driver's stdout.
    printed = "\n".join(line for line in done.stdout.splitlines() if "\x1b[" not in line)
    return f"```sh\n{command}\n```\n\n{printed.strip()}\n"


def replace_block(text: str, name: str, body: str) -> str:
    pattern = re.compile(
        rf"(<!-- bench:{re.escape(name)} -->\n).*?(<!-- /bench:{re.escape(name)} -->)", re.S
    )
    if not pattern.search(text):
        raise SystemExit(f"docs/benchmarks.md has no block {name!r}")
    return pattern.sub(lambda m: m.group(1) + body + m.group(2), text, count=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=Path("model_store"))
    parser.add_argument(
        "--encoder-store",
        type=Path,
        default=None,
        help=f"store holding {MINILM!r} (default: --store)",
    )
    parser.add_argument(
        "--reference-python",
        type=Path,
        default=None,
        help="interpreter with torch + sentence-transformers (`make bench-reference` makes one)",
    )
    parser.add_argument("--only", nargs="+", choices=sorted(BLOCKS), default=None)
    parser.add_argument("--list", action="store_true", help="print the blocks and their commands")
    args = parser.parse_args()
    if args.list:
        for name, block in BLOCKS.items():
            print(f"{name}: {shlex.join(block.args)}")
        return
    stores = {"store": args.store, "encoder_store": args.encoder_store or args.store}
    text = REPORT.read_text(encoding="utf-8")
    text = replace_block(text, "machine", machine_block())
    for name in args.only or list(BLOCKS):
        body = run_block(name, BLOCKS[name], stores, args.reference_python)
        if body is not None:
            text = replace_block(text, name, body)
            # Written after every block, so that an interrupted run keeps what it measured.
            REPORT.write_text(text, encoding="utf-8")
    REPORT.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
