import collections
import hashlib
import random
import threading
import time
import types

import numpy as np
import pytest

from training.common.data import (
    data_summary,
    epoch_permutation,
    file_sha256,
    iter_lines,
    parallel_map_ordered,
    read_lines,
    resume_position,
    shard_indices,
)


def _jittery_square(calls: collections.Counter, lock: threading.Lock):
    """fn for parallel_map_ordered whose items finish out of order; counts calls per item."""

    def fn(x: int) -> tuple[int, int]:
        with lock:
            calls[x] += 1
        # Sleep longer for some items so that later items finish first.
        time.sleep(random.Random(x).uniform(0.0, 0.002))
        return x, x * x

    return fn


@pytest.mark.parametrize("workers", [0, 1, 2, 3, 8])
@pytest.mark.parametrize("prefetch", [1, 4, 32])
def test_parallel_map_ordered_keeps_order_and_every_item_once(workers, prefetch):
    items = list(range(57)) + [3, 3, 7]  # repeated inputs must give repeated outputs
    calls: collections.Counter = collections.Counter()
    fn = _jittery_square(calls, threading.Lock())

    results = list(parallel_map_ordered(fn, iter(items), workers=workers, prefetch=prefetch))

    assert results == [(x, x * x) for x in items]
    assert calls == collections.Counter(items)


@pytest.mark.parametrize("workers", [0, 1, 4])
def test_parallel_map_ordered_propagates_error_at_its_position(workers):
    def fn(x: int) -> int:
        if x == 5:
            raise KeyError(f"bad item {x}")
        time.sleep(0.001 * (x % 3))
        return x

    seen = []
    with pytest.raises(KeyError, match="bad item 5"):
        for y in parallel_map_ordered(fn, range(20), workers=workers, prefetch=4):
            seen.append(y)
    assert seen == [0, 1, 2, 3, 4]


def test_parallel_map_ordered_propagates_error_from_items():
    def items():
        yield 1
        yield 2
        raise OSError("disk gone")

    out = []
    with pytest.raises(OSError, match="disk gone"):
        for y in parallel_map_ordered(lambda x: x * 10, items(), workers=2, prefetch=2):
            out.append(y)
    # Results already computed may or may not have been handed out, but never out of order.
    assert out == [10, 20][: len(out)]


@pytest.mark.parametrize("prefetch", [1, 3])
def test_parallel_map_ordered_reads_ahead_at_most_prefetch(prefetch):
    pulled = 0

    def items():
        nonlocal pulled
        for i in range(30):
            pulled += 1
            yield i

    for i, y in enumerate(parallel_map_ordered(lambda x: x, items(), workers=4, prefetch=prefetch)):
        assert y == i
        assert pulled <= i + prefetch


def test_parallel_map_ordered_stops_work_when_consumer_stops():
    calls = 0
    lock = threading.Lock()

    def fn(x: int) -> int:
        nonlocal calls
        with lock:
            calls += 1
        return x

    gen = parallel_map_ordered(fn, range(10_000), workers=2, prefetch=4)
    assert isinstance(gen, types.GeneratorType)
    assert [next(gen) for _ in range(3)] == [0, 1, 2]
    gen.close()
    assert calls <= 3 + 4


def test_parallel_map_ordered_rejects_bad_arguments_before_iterating():
    with pytest.raises(ValueError):
        parallel_map_ordered(abs, [1], workers=-1, prefetch=1)
    with pytest.raises(ValueError):
        parallel_map_ordered(abs, [1], workers=2, prefetch=0)


@pytest.mark.parametrize("n,num_shards", [(0, 1), (10, 1), (10, 3), (7, 7), (3, 5)])
def test_shard_indices_are_a_disjoint_balanced_cover(n, num_shards):
    shards = [list(shard_indices(n, num_shards, s)) for s in range(num_shards)]
    flat = [i for shard in shards for i in shard]
    assert sorted(flat) == list(range(n))
    assert len(flat) == len(set(flat))
    sizes = [len(shard) for shard in shards]
    assert max(sizes) - min(sizes) <= 1


def test_shard_indices_rejects_bad_shard():
    with pytest.raises(ValueError):
        shard_indices(10, 3, 3)
    with pytest.raises(ValueError):
        shard_indices(10, 0, 0)


def test_epoch_permutation_is_deterministic_per_seed_and_epoch():
    a = epoch_permutation(100, seed=7, epoch=2)
    assert np.array_equal(a, epoch_permutation(100, seed=7, epoch=2))
    assert sorted(a.tolist()) == list(range(100))
    assert a.dtype == np.int64
    assert not np.array_equal(a, epoch_permutation(100, seed=7, epoch=3))
    assert not np.array_equal(a, epoch_permutation(100, seed=8, epoch=2))
    # Not affected by the global NumPy state.
    np.random.seed(123)
    assert np.array_equal(a, epoch_permutation(100, seed=7, epoch=2))
    assert epoch_permutation(0, seed=0, epoch=0).shape == (0,)


def test_resume_position():
    assert resume_position(0, 10) == (0, 0)
    assert resume_position(9, 10) == (0, 9)
    assert resume_position(10, 10) == (1, 0)
    assert resume_position(25, 10) == (2, 5)
    with pytest.raises(ValueError):
        resume_position(3, 0)


def test_read_lines_strips_endings_bom_and_blank_lines(tmp_path):
    path = tmp_path / "docs.txt"
    path.write_bytes("\ufeff第一行 text\r\n\n  \nsecond\tlabel\nlast".encode())
    assert read_lines(path) == ["第一行 text", "second\tlabel", "last"]
    assert read_lines(path, skip_blank=False) == ["第一行 text", "", "  ", "second\tlabel", "last"]
    lines = iter_lines(path)
    assert next(lines) == "第一行 text"
    assert list(lines) == ["second\tlabel", "last"]


def test_file_sha256_of_file_and_folder(tmp_path):
    data = b"abc" * 1_000_000  # crosses several read chunks
    (tmp_path / "d").mkdir()
    file = tmp_path / "d" / "a.bin"
    file.write_bytes(data)
    assert file_sha256(file) == hashlib.sha256(data).hexdigest()

    folder_hash = file_sha256(tmp_path / "d")
    assert folder_hash == file_sha256(tmp_path / "d")
    (tmp_path / "d" / "b.txt").write_text("more")
    assert file_sha256(tmp_path / "d") != folder_hash


def test_data_summary(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("a\nb\n")
    summary = data_summary(path, "text-lines", {"documents": 2})
    assert summary == {
        "path": str(path.resolve()),
        "format": "text-lines",
        "sha256": hashlib.sha256(b"a\nb\n").hexdigest(),
        "documents": 2,
    }
    with pytest.raises(ValueError):
        data_summary(path, "text-lines", {"sha256": "x"})
