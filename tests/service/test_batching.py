"""DynamicBatcher against a fake batched function: order, sizes, delays, budgets, failures."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Sequence

import pytest

from service.batching import BatcherConfig, DynamicBatcher
from service.errors import BackendError, DeadlineExceeded, NotReady, Overloaded
from tests.service.conftest import until

# A batch delay no test waits out: a batch that runs at all did not wait for it.
FOREVER_S = 3600.0


class Recorder:
    """The batched function: records each call's items. `held`: every call waits until
    `release()`, so a test knows a batch is under way (`calls`) while it queues more."""

    def __init__(self, fail_on: int | None = None, held: bool = False) -> None:
        self.calls: list[list[int]] = []
        self.fail_on = fail_on
        self._released = threading.Event()
        if not held:
            self._released.set()

    def release(self) -> None:
        self._released.set()

    def __call__(self, items: Sequence[int]) -> list[int]:
        self.calls.append(list(items))
        if not self._released.wait(timeout=60):
            raise RuntimeError("a held call was never released")
        if self.fail_on is not None and self.fail_on in items:
            raise ValueError("boom")
        return [x * 10 for x in items]


def run(coro):
    return asyncio.run(coro)


def test_each_caller_gets_its_own_results_in_order() -> None:
    async def main() -> None:
        rec = Recorder()
        b = DynamicBatcher("m", rec, BatcherConfig(max_batch_size=4, max_batch_delay_s=0.02))
        results = await asyncio.gather(
            *(b.submit_many([i, i + 100], timeout_s=5) for i in range(10))
        )
        assert [[c.value for c in r] for r in results] == [
            [i * 10, (i + 100) * 10] for i in range(10)
        ]
        assert all(len(call) <= 4 for call in rec.calls)
        # 20 items in batches of at most 4: at least 5 calls, and batching did happen.
        assert 5 <= len(rec.calls) < 20
        await b.close()

    run(main())


def test_batch_waits_for_announced_company_at_most_the_delay() -> None:
    async def main() -> None:
        rec = Recorder()
        b = DynamicBatcher("m", rec, BatcherConfig(max_batch_size=64, max_batch_delay_s=FOREVER_S))
        # Nobody else on the way: a lone item runs at once, not after the delay (an hour here).
        [alone] = await asyncio.wait_for(b.submit_many([1], timeout_s=5), timeout=30)
        assert alone.value == 10 and rec.calls == [[1]]
        # An announced caller: the batch waits for it, and it joins the same batch.
        arrival = b.arrival()
        first = asyncio.ensure_future(b.submit_many([3], timeout_s=5))
        await until(lambda: b.depth == 1, "item 3 queued")
        assert rec.calls == [[1]]  # held open for the announced caller
        await b.submit_many([4], timeout_s=5, arrival=arrival)
        await first
        assert rec.calls == [[1], [3, 4]]
        await b.close()
        # A caller announced but never arriving: the batch waits the delay, then runs.
        b = DynamicBatcher("m", rec, BatcherConfig(max_batch_size=64, max_batch_delay_s=0.05))
        with b.arrival():
            [done] = await b.submit_many([2], timeout_s=5)
            assert done.value == 20 and done.queue_s >= 0.04
        await b.close()

    run(main())


def test_token_budget_splits_batches() -> None:
    async def main() -> None:
        rec = Recorder()
        cfg = BatcherConfig(max_batch_size=64, max_batch_delay_s=0.02, max_batch_tokens=100)
        b = DynamicBatcher("m", rec, cfg)
        # Ten items of 30 padded tokens: at most 3 per batch (3 x 30 <= 100 < 4 x 30).
        await b.submit_many(list(range(10)), tokens=[30] * 10, timeout_s=5)
        assert [len(c) for c in rec.calls] == [3, 3, 3, 1]
        await b.close()

    run(main())


def test_rows_count_against_the_batch_size() -> None:
    async def main() -> None:
        rec = Recorder()
        b = DynamicBatcher("m", rec, BatcherConfig(max_batch_size=8, max_batch_delay_s=0.02))
        # Items of 3 rows each (a question over 3 passages): at most 2 per call of 8 rows,
        # and an item wider than the batch still runs, alone.
        await b.submit_many([1, 2, 3, 4, 5], rows=[3, 3, 3, 3, 3], timeout_s=5)
        await b.submit_many([6], rows=[20], timeout_s=5)
        assert [len(c) for c in rec.calls] == [2, 2, 1, 1]
        await b.close()

    run(main())


def test_full_queue_refuses_at_once_with_retry_after() -> None:
    async def main() -> None:
        rec = Recorder(held=True)
        b = DynamicBatcher("m", rec, BatcherConfig(max_batch_size=1, max_queue=3))
        first = asyncio.ensure_future(b.submit_many([1, 2, 3], timeout_s=5))
        await until(lambda: rec.calls == [[1]], "item 1 under way, 2 and 3 queued")
        with pytest.raises(Overloaded) as err:
            await b.submit_many([4, 5, 6], timeout_s=5)
        assert int(err.value.headers["Retry-After"]) >= 1
        rec.release()
        assert [c.value for c in await first] == [10, 20, 30]
        await b.close()

    run(main())


def test_deadline_passed_in_queue_fails_without_compute() -> None:
    async def main() -> None:
        rec = Recorder(held=True)
        b = DynamicBatcher("m", rec, BatcherConfig(max_batch_size=1, max_batch_delay_s=0))
        slow = asyncio.ensure_future(b.submit_many([1], timeout_s=5))
        await until(lambda: rec.calls == [[1]], "item 1 under way")
        late = asyncio.ensure_future(b.submit_many([2], timeout_s=0.01))
        await until(lambda: b.depth == 1, "item 2 queued")
        queued_by = time.monotonic()
        await until(lambda: time.monotonic() > queued_by + 0.01, "item 2's deadline passed")
        rec.release()
        with pytest.raises(DeadlineExceeded):
            await late
        await slow
        assert rec.calls == [[1]]  # item 2 never reached the model
        await b.close()

    run(main())


def test_cancelled_caller_is_dropped_before_compute() -> None:
    async def main() -> None:
        rec = Recorder(held=True)
        b = DynamicBatcher("m", rec, BatcherConfig(max_batch_size=1, max_batch_delay_s=0))
        busy = asyncio.ensure_future(b.submit_many([1], timeout_s=5))
        await until(lambda: rec.calls == [[1]], "item 1 under way")
        gone = asyncio.ensure_future(b.submit_many([2, 3], timeout_s=5))
        await until(lambda: b.depth == 2, "items 2 and 3 queued")
        gone.cancel()  # what a client disconnect does
        with contextlib.suppress(asyncio.CancelledError):
            await gone
        rec.release()
        await busy
        assert (await b.submit_many([4], timeout_s=5))[0].value == 40
        assert rec.calls == [[1], [4]]
        await b.close()

    run(main())


def test_failing_batch_fails_only_its_own_requests() -> None:
    async def main() -> None:
        rec = Recorder(fail_on=13)
        b = DynamicBatcher("m", rec, BatcherConfig(max_batch_size=2, max_batch_delay_s=0))
        with pytest.raises(BackendError):
            await b.submit_many([13], timeout_s=5)
        assert [c.value for c in await b.submit_many([1, 2], timeout_s=5)] == [10, 20]
        await b.close()

    run(main())


def test_groups_never_share_a_batch() -> None:
    async def main() -> None:
        rec = Recorder()
        b = DynamicBatcher("m", rec, BatcherConfig(max_batch_size=8, max_batch_delay_s=0.02))
        await asyncio.gather(
            b.submit_many([1, 2], group="v1", timeout_s=5),
            b.submit_many([101, 102], group="v2", timeout_s=5),
            b.submit_many([3], group="v1", timeout_s=5),
        )
        for call in rec.calls:
            assert all(x < 100 for x in call) or all(x > 100 for x in call)
        assert sorted(map(sorted, rec.calls)) == [[1, 2, 3], [101, 102]]
        await b.close()

    run(main())


def test_close_drains_queue_then_refuses() -> None:
    async def main() -> None:
        rec = Recorder(held=True)
        b = DynamicBatcher("m", rec, BatcherConfig(max_batch_size=1, max_batch_delay_s=0))
        pending = asyncio.ensure_future(b.submit_many([1, 2, 3], timeout_s=5))
        await until(lambda: rec.calls == [[1]], "item 1 under way, 2 and 3 queued")
        closing = asyncio.ensure_future(b.close(drain_timeout_s=5))
        rec.release()
        await closing
        assert [c.value for c in await pending] == [10, 20, 30]
        with pytest.raises(NotReady):
            await b.submit_many([4], timeout_s=5)

    run(main())
