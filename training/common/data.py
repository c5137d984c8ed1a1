"""Data helpers for training jobs: ordered parallel map, sharding, epoch order, file summaries."""

from __future__ import annotations

import collections
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from models.data_errors import text_lines

T = TypeVar("T")
U = TypeVar("U")

# Read size for hashing: large enough that hashing a multi-GB corpus is I/O bound, small enough
# to keep memory flat.
HASH_CHUNK_BYTES = 1 << 20

# Keys `data_summary` sets itself; counts may not reuse them.
DATA_SUMMARY_KEYS = ("path", "format", "sha256")


def parallel_map_ordered(
    fn: Callable[[T], U], items: Iterable[T], workers: int, prefetch: int
) -> Iterator[U]:
    """Applies `fn` to every item on a thread pool and yields the results in input order.

    At most `prefetch` items are in flight (submitted but not yet yielded), so memory stays
    bounded however long `items` is, and `items` is read lazily in the calling thread (it need
    not be thread-safe). Every item gives exactly one result, in order: nothing is dropped or
    repeated. If `fn` raises, the exception is re-raised here, at that item's position, and the
    items after it are cancelled. Leaving the loop early (`break`) cancels what is queued.

    Threads, not processes: `fn` may be a closure or a bound method, and the work it is meant
    for (tokenising, NumPy, TensorFlow ops) spends most of its time outside the GIL or in I/O.

    Args:
        fn: function of one item.
        items: the inputs, any iterable (a generator is read once, lazily).
        workers: threads; 0 runs `fn` in the calling thread, one item at a time (for debugging).
        prefetch: most items in flight; give at least `workers` to keep every thread busy.

    Yields:
        `fn(item)` for each item, in the order of `items`.

    Raises:
        ValueError: if `workers < 0` or `prefetch < 1`.
    """
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    if prefetch < 1:
        raise ValueError(f"prefetch must be >= 1, got {prefetch}")
    # A generator function's body runs on first next(); check the arguments eagerly instead.
    if workers == 0:
        # A generator, like the threaded path, so that callers can close() either.
        return (fn(item) for item in items)
    return _parallel_map_ordered(fn, items, workers, prefetch)


def _parallel_map_ordered(
    fn: Callable[[T], U], items: Iterable[T], workers: int, prefetch: int
) -> Iterator[U]:
    source = iter(items)
    pending: collections.deque[Future[U]] = collections.deque()
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="parallel_map")
    try:
        exhausted = False
        while True:
            while not exhausted and len(pending) < prefetch:
                try:
                    item = next(source)
                except StopIteration:
                    exhausted = True
                    break
                pending.append(executor.submit(fn, item))
            if not pending:
                return
            # The oldest first: results leave in input order whatever order they finish in.
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        executor.shutdown(wait=True, cancel_futures=True)


def shard_indices(n: int, num_shards: int, shard: int) -> range:
    """Indices of the examples that belong to one shard (one worker of a distributed job).

    Shards take every `num_shards`-th index, so they are disjoint, together cover 0..n-1,
    and differ in size by at most one.

    Args:
        n: number of examples.
        num_shards: number of shards (workers).
        shard: this shard, in [0, num_shards).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard must be in [0, {num_shards}), got {shard}")
    return range(shard, n, num_shards)


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order of the examples in one epoch, the same for the same (seed, epoch).

    Each epoch draws from its own generator seeded by (seed, epoch), so a resumed job gets
    the order of epoch k without replaying the epochs before it.

    Args:
        n: number of examples.
        seed: the job's seed (non-negative).
        epoch: 0-based epoch number.

    Returns:
        An int64 array, a permutation of 0..n-1.
    """
    if n < 0 or seed < 0 or epoch < 0:
        raise ValueError(f"n, seed and epoch must be >= 0, got {n}, {seed}, {epoch}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, epoch]))
    return rng.permutation(n).astype(np.int64)


def resume_position(steps_done: int, steps_per_epoch: int) -> tuple[int, int]:
    """Where a resumed job starts: (epoch, batch within that epoch), both 0-based.

    Args:
        steps_done: steps completed, as returned by `CheckpointKeeper.restore_latest()`.
        steps_per_epoch: batches in one epoch (the same as in the run that saved).
    """
    if steps_done < 0 or steps_per_epoch < 1:
        raise ValueError(
            f"need steps_done >= 0 and steps_per_epoch >= 1, got {steps_done}, {steps_per_epoch}"
        )
    return divmod(steps_done, steps_per_epoch)


def iter_lines(path: str | os.PathLike[str], *, skip_blank: bool = True) -> Iterator[str]:
    """Yields the lines of a UTF-8 text file one by one (for corpora too big for a list).

    A leading byte order mark is dropped and line endings (`\n`, `\r\n`) are removed.

    Args:
        path: the file.
        skip_blank: leave out lines that are empty or only whitespace (in one-document-per-line
            corpora they are not documents).
    """
    for line in text_lines(path):  # DataError: no such file, a folder, not UTF-8
        line = line.rstrip("\r\n")
        if line.strip() or not skip_blank:
            yield line


def read_lines(path: str | os.PathLike[str], *, skip_blank: bool = True) -> list[str]:
    """All lines of a UTF-8 text file, as `iter_lines` yields them.

    Args:
        path: the file.
        skip_blank: leave out lines that are empty or only whitespace.
    """
    return list(iter_lines(path, skip_blank=skip_blank))


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes, or of a folder's files (relative paths and contents).

    Args:
        path: a file, or a folder (hashed over its files in sorted order, so the same tree
            gives the same hash on any machine).
    """
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(file.relative_to(path).as_posix().encode("utf-8") + b"\0")
            _hash_file_into(file, digest)
    else:
        _hash_file_into(path, digest)
    return digest.hexdigest()


def _hash_file_into(path: Path, digest: Any) -> None:
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK_BYTES):
            digest.update(chunk)


def data_summary(
    path: str | os.PathLike[str], fmt: str, counts: Mapping[str, Any]
) -> dict[str, Any]:
    """The manifest's `data` entry: what a model was trained on.

    Args:
        path: the training data (file or folder).
        fmt: its format, e.g. `"text-lines"`, `"webqa-json"`, `"npy"`.
        counts: sizes worth recording, e.g. `{"documents": 1000, "tokens": 52000}`.

    Returns:
        `{"path": absolute path, "format": fmt, "sha256": hash, **counts}`.
    """
    clash = set(counts) & set(DATA_SUMMARY_KEYS)
    if clash:
        raise ValueError(f"counts may not use the keys {sorted(clash)}")
    return {
        "path": str(Path(path).resolve()),
        "format": fmt,
        "sha256": file_sha256(path),
        **counts,
    }
