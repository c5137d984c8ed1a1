"""GenerationScheduler (the decode loop) against a fake step model: rows join between steps,
leave (finished, cancelled, failed) freeing their cache places, limits and deadlines, and the
thread that ends with the work. The model is held step by step where the order matters."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from models.generation.decoding import GenerationRow, Guidance
from models.generation.sampling import SamplingParams
from service.errors import BackendError, BadInput, DeadlineExceeded, Overloaded, PayloadTooLarge
from service.generation import GenerationScheduler, GenerationTicket
from service.metrics import Metrics
from tests.service.conftest import until
from tests.service.fakes import (
    BANNED_IDS,
    CLS_ID,
    FIRST_WORD,
    SEP_ID,
    FakeStepModel,
    render_letters,
    step_condition,
)

NAME = "fake-writer"
GREEDY = SamplingParams(temperature=0.0)


def rows(
    tag: int,
    count: int = 1,
    stop_at: int = 50,
    max_new_tokens: int = 50,
    prompt: tuple[int, ...] = (),
    not_finite: bool = False,
    guided: bool = False,
) -> list[GenerationRow]:
    condition = step_condition(tag, stop_at, not_finite)
    return [
        GenerationRow(
            prefix_ids=[CLS_ID, *prompt],
            condition=condition,
            params=GREEDY,
            max_new_tokens=max_new_tokens,
            rng=np.random.default_rng(i),
            guidance=Guidance(negative=condition, scale=1.0) if guided else None,
        )
        for i in range(count)
    ]


@pytest.fixture
def model() -> Iterator[FakeStepModel]:
    model = FakeStepModel()
    yield model
    model.run_freely()  # a test that failed while holding it must not leave the thread waiting
    assert model.violations == []  # every row only ever read its own cache entries


def scheduler(model: FakeStepModel, max_rows: int = 8, max_queue: int = 16) -> GenerationScheduler:
    return GenerationScheduler(
        NAME, model, BANNED_IDS, SEP_ID, render_letters, max_rows, max_queue, Metrics()
    )


async def in_first_step(
    loop: GenerationScheduler, model: FakeStepModel, request: list[GenerationRow]
) -> GenerationTicket:
    """Submit `request` with `model` held: back once the first step has begun (it waits)."""
    model.hold()
    ticket = loop.submit(request, timeout_s=30)
    await until(lambda: model.started == 1, "step 1 begun")
    return ticket


def rejected(loop: GenerationScheduler, reason: str) -> float:
    assert loop.metrics is not None
    value = loop.metrics.registry.get_sample_value(
        "kexue_rejected_total", {"model": NAME, "reason": reason}
    )
    return value or 0.0


def decode_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"generate-{NAME}" and t.is_alive()]


def letters(start: int, count: int) -> str:
    """What a row writes from position `start` on, `count` tokens (see FakeStepModel)."""
    return "".join(chr(ord("a") + (start + i) % 10) for i in range(count))


def test_rows_submitted_while_others_decode_join_at_the_next_step(model: FakeStepModel) -> None:
    async def main() -> None:
        loop = scheduler(model)
        model.hold()
        first = loop.submit(rows(1), timeout_s=30)
        model.release(3)
        await until(lambda: model.started == 4, "step 4 begun")  # steps 1-3 done, 4 held
        # Two rows with a prompt of 2 tokens: admitted together (one prefill) after step 4.
        second = loop.submit(rows(2, count=2, stop_at=5, prompt=(20, 21)), timeout_s=30)
        model.release()
        await until(lambda: model.started == 5, "step 5 begun")
        assert model.steps == [[1], [1], [1], [1]] and model.prefills == [[2, 2]]
        model.run_freely()
        await second.done
        # Their first step fed the prompt's last token (position 2) and wrote "c"; the step that
        # fed position 5 ended them ([SEP]).
        assert second.texts == [letters(2, 3)] * 2
        assert [row.finish_reason for row in second.rows] == ["stop", "stop"]
        assert model.steps[4] == [1, 2, 2]  # the step right after joining, beside row 1
        await first.done
        assert first.texts == [letters(0, 50)]
        assert first.rows[0].finish_reason == "length"

    asyncio.run(main())


def test_a_finished_row_frees_its_place_for_a_waiting_request(model: FakeStepModel) -> None:
    async def main() -> None:
        loop = scheduler(model, max_rows=2)
        short = await in_first_step(loop, model, rows(1, stop_at=2))
        long = loop.submit(rows(2, stop_at=8), timeout_s=30)
        waiting = loop.submit(rows(3, stop_at=3), timeout_s=30)
        assert loop.waiting_rows == 2
        model.release(4)
        await until(lambda: model.started == 5, "step 5 begun")
        # Row 1 writes 2 tokens and ends at step 3 ([SEP]); row 3 takes its place at step 4,
        # the batch no wider than max_rows, while row 2 still writes.
        assert model.steps == [[1], [1, 2], [1, 2], [3, 2]]
        assert loop.waiting_rows == 0 and loop.active_rows == 2
        await short.done
        assert not long.done.done()
        model.run_freely()
        await asyncio.gather(long.done, waiting.done)
        assert [short.texts, long.texts, waiting.texts] == [["ab"], [letters(0, 8)], ["abc"]]
        assert max(len(step) for step in model.steps) == 2
        await until(lambda: loop.active_rows == 0, "every place freed")

    asyncio.run(main())


def test_rows_end_at_sep_or_max_new_tokens_and_the_events_add_up(model: FakeStepModel) -> None:
    async def main() -> None:
        loop = scheduler(model)
        stops = loop.submit(rows(1, stop_at=3, max_new_tokens=10), timeout_s=30)
        limited = loop.submit(rows(2, count=2, stop_at=10, max_new_tokens=4), timeout_s=30)
        for ticket, texts, reason in ((stops, ["abc"], "stop"), (limited, ["abcd"] * 2, "length")):
            streamed = [""] * len(ticket.rows)
            ends = []
            while events := await ticket.updates():
                for event in events:
                    streamed[event.index] += event.text
                    if event.finish_reason is not None:
                        ends.append((event.index, event.token_count, event.finish_reason))
            await ticket.done
            assert streamed == ticket.texts == texts
            count = len(texts[0])  # the [SEP] is not a token of the text
            assert sorted(ends) == [(i, count, reason) for i in range(len(texts))]
            assert all(row.new_ids == list(range(FIRST_WORD, FIRST_WORD + count))
                       for row in ticket.rows)  # fmt: skip

    asyncio.run(main())


def test_a_caller_who_leaves_frees_its_rows_at_the_next_step(model: FakeStepModel) -> None:
    """`cancel` is what the route calls when the client disconnects."""

    async def main() -> None:
        loop = scheduler(model)
        leaving = await in_first_step(loop, model, rows(1, count=2))
        staying = loop.submit(rows(2), timeout_s=30)
        model.release(3)
        await until(lambda: model.started == 4, "step 4 begun")
        leaving.cancel()
        model.release(2)
        await until(lambda: model.started == 6, "step 6 begun")
        # Step 4 was under way: the rows held their places in it but wrote nothing more, and
        # left the batch (compacted to the one row left) before step 5.
        assert model.steps == [[1, 1], [1, 1, 2], [1, 1, 2], [1, 1, 2], [2]]
        assert [len(row.new_ids) for row in leaving.rows] == [3, 3]
        while await leaving.updates():  # what was delivered before it left, then nothing
            pass
        assert leaving.done.cancelled()
        assert loop.active_rows == 1
        model.run_freely()
        await staying.done
        assert staying.texts == [letters(0, 50)]
        await until(lambda: loop.active_rows == 0, "every place freed")

    asyncio.run(main())


def test_a_caller_who_leaves_the_queue_never_reaches_the_model(model: FakeStepModel) -> None:
    async def main() -> None:
        loop = scheduler(model, max_rows=1)
        busy = await in_first_step(loop, model, rows(1, stop_at=3))
        gone = loop.submit(rows(2), timeout_s=30)
        gone.cancel()
        model.run_freely()
        await busy.done
        after = loop.submit(rows(3, stop_at=2), timeout_s=30)
        await after.done
        assert model.tags() == {1, 3}
        assert rejected(loop, "cancelled") == 1 and loop.waiting_rows == 0

    asyncio.run(main())


def test_queue_limits(model: FakeStepModel) -> None:
    async def main() -> None:
        loop = scheduler(model, max_rows=2, max_queue=3)
        # Wider than the batch (a guided sample takes two rows), or than the queue: 413.
        for too_wide in (rows(1, count=3), rows(1, count=2, guided=True)):
            with pytest.raises(PayloadTooLarge, match="MAX_BATCH_SIZE") as wide:
                loop.submit(too_wide, timeout_s=30)
            # Guidance is named only when the request asked for it (it was named in every 413).
            guided = any(row.guidance is not None for row in too_wide)
            assert ("guidance" in wide.value.detail) == guided, wide.value.detail
        small_queue = scheduler(model, max_rows=4, max_queue=3)
        with pytest.raises(PayloadTooLarge, match="MAX_QUEUE=3") as never:
            small_queue.submit(rows(1, count=4), timeout_s=30)
        assert "Retry-After" not in (never.value.headers or {})
        assert rejected(small_queue, "too_large") == 4
        # A full queue: 429, to retry.
        decoding = await in_first_step(loop, model, rows(1, count=2, stop_at=2))
        queued = loop.submit(rows(2, count=1, guided=True, stop_at=2), timeout_s=30)
        assert loop.waiting_rows == 2
        with pytest.raises(Overloaded) as full:
            loop.submit(rows(3, count=2), timeout_s=30)
        assert int(full.value.headers["Retry-After"]) >= 1
        assert rejected(loop, "queue_full") == 2
        fits = loop.submit(rows(4, stop_at=1), timeout_s=30)  # what still fits is queued
        model.run_freely()
        await asyncio.gather(decoding.done, queued.done, fits.done)
        assert queued.texts == ["ab"] and fits.texts == ["a"]
        assert 3 not in model.tags()

    asyncio.run(main())


def test_still_queued_at_the_deadline_is_504_without_running(model: FakeStepModel) -> None:
    async def main() -> None:
        loop = scheduler(model, max_rows=1)
        decoding = await in_first_step(loop, model, rows(1, stop_at=3))
        late = loop.submit(rows(2), timeout_s=0.01)
        await until(lambda: time.monotonic() > late.deadline, "the deadline passed")
        # A row already decoding is past its deadline too: it still finishes.
        decoding.deadline = time.monotonic() - 1
        model.run_freely()
        with pytest.raises(DeadlineExceeded):
            await late.done
        await decoding.done
        assert decoding.texts == ["abc"]
        assert 2 not in model.tags()
        assert rejected(loop, "deadline") == 1

    asyncio.run(main())


def test_a_row_without_finite_log_probs_fails_its_request_alone(model: FakeStepModel) -> None:
    async def main() -> None:
        loop = scheduler(model)
        good = await in_first_step(loop, model, rows(1, count=3, stop_at=30))
        # One request of two rows, one of which the model cannot take.
        bad = loop.submit([*rows(2, not_finite=True), *rows(3)], timeout_s=30)
        model.release(2)
        with pytest.raises(BadInput, match="not finite"):
            await bad.done
        assert all(row.done for row in bad.rows)  # its other row stopped with it
        await until(lambda: model.started == 3, "step 3 begun")
        assert model.steps == [[1, 1, 1], [1, 1, 1, 2, 3]]
        # Joining the rows still decoding, where the failed row's place (NaN) must not be reused:
        # FakeStepModel answers NaN to a row that reads it.
        after = loop.submit(rows(4, count=2, stop_at=4), timeout_s=30)
        model.run_freely()
        await asyncio.gather(good.done, after.done)
        assert good.texts == [letters(0, 30)] * 3 and after.texts == ["abcd"] * 2
        assert not {2, 3} & model.tags(since=2)

    asyncio.run(main())


def test_a_failing_model_call_fails_its_batch_and_the_loop_goes_on(model: FakeStepModel) -> None:
    async def main() -> None:
        loop = scheduler(model)
        model.fail_tags = {9}
        with pytest.raises(BackendError, match="model call failed"):
            await loop.submit(rows(9), timeout_s=30).done
        after = loop.submit(rows(1, stop_at=2), timeout_s=30)
        await after.done
        assert after.texts == ["ab"]

    asyncio.run(main())


def test_the_queue_drains_then_the_thread_ends(model: FakeStepModel) -> None:
    async def main() -> None:
        loop = scheduler(model, max_rows=2)
        # All queued while the first step is held: else a busy machine may let the decode thread
        # finish each request before the next is submitted, and no step holds two rows.
        tickets = [await in_first_step(loop, model, rows(1, stop_at=1))]
        tickets += [loop.submit(rows(tag, stop_at=tag), timeout_s=30) for tag in range(2, 7)]
        model.run_freely()
        await asyncio.gather(*(ticket.done for ticket in tickets))
        assert [ticket.texts for ticket in tickets] == [[letters(0, tag)] for tag in range(1, 7)]
        assert max(len(step) for step in model.steps) == 2
        # Nothing left to do: no thread; the next request starts one again.
        await until(lambda: not decode_threads(), "the decode thread ended")
        again = loop.submit(rows(7, stop_at=1), timeout_s=30)
        await again.done
        assert again.texts == ["a"]

    asyncio.run(main())


def test_the_loop_stops_when_the_event_loop_has_closed(model: FakeStepModel) -> None:
    """Shutdown: nobody is left to read the rows, so they stop and the thread ends."""
    tickets: list[GenerationTicket] = []

    async def main() -> None:
        loop = scheduler(model)
        model.hold()
        tickets.append(loop.submit(rows(1, count=2), timeout_s=30))
        model.release()
        assert [event.text for event in await tickets[0].updates()] == ["a", "a"]

    asyncio.run(main())  # returns, closing its event loop, with step 2 held
    [thread] = decode_threads()
    model.run_freely()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert all(row.cancelled and len(row.new_ids) == 2 for row in tickets[0].rows)
