"""The registry's store scan step by step, with the fake model and no server: when a version is
tried (complete, settled), how a FAILED one is retried (on change, bounded, backing off), what
/readyz says about a model none of whose versions loads, and that a first scan that raises still
ends the start."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from models.store import version_folders
from service.app import create_app
from service.metrics import Metrics
from service.registry import ModelRegistry
from service.runtimes.base import Runtime
from service.settings import Settings
from tests.service.fakes import fake_factory, write_version


class CountingFactory:
    """The fake factory, counting the versions it builds."""

    def __init__(self) -> None:
        self.built: Counter[tuple[str, int]] = Counter()

    def __call__(self, name: str, version: int, path: Path, settings: Settings) -> Runtime:
        self.built[(name, version)] += 1
        return fake_factory(name, version, path, settings)


def registry(store: Path, factory: Any = fake_factory, **settings: Any) -> ModelRegistry:
    return ModelRegistry(
        Settings(model_store=store, poll_interval_s=0, **settings), Metrics(), factory
    )


def states(reg: ModelRegistry, name: str) -> dict[int, tuple[str, str | None]]:
    return {v.version: (v.state.value, v.error) for v in reg.get(name).status().versions}


def rewrite_manifest(path: Path, **changes: Any) -> None:
    manifest = json.loads((path / "manifest.json").read_text())
    manifest.update(changes)
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_a_polled_version_is_tried_only_complete_and_settled(store: Path) -> None:
    async def run() -> None:
        reg = registry(store)
        write_version(store, "words", 1)
        await reg.start()
        assert reg.get("words").serving.version == 1  # type: ignore[union-attr]
        # A copy begun: the manifest is there, the SavedModel not yet.
        v2 = write_version(store, "words", 2)
        (v2 / "saved_model.pb").unlink()
        await reg.scan()
        await reg.scan()
        assert states(reg, "words")[2] == ("UNLOADED", "not complete yet: no saved_model.pb")
        # Complete, but just changed: tried only when the next scan finds the same files.
        (v2 / "saved_model.pb").write_bytes(b"")
        await reg.scan()
        state, note = states(reg, "words")[2]
        assert state == "UNLOADED" and note is not None and "next scan" in note
        (v2 / "variables").mkdir()  # still being copied
        await reg.scan()
        assert reg.get("words").serving.version == 1  # type: ignore[union-attr]
        await reg.scan()
        assert reg.get("words").serving.version == 2  # type: ignore[union-attr]
        assert states(reg, "words")[2] == ("AVAILABLE", None)
        await reg.stop()

    asyncio.run(run())


def test_a_failed_version_is_retried_on_change_bounded_then_only_by_reload(store: Path) -> None:
    factory = CountingFactory()

    async def run() -> None:
        reg = registry(store, factory, max_load_retries=2, load_retry_backoff_s=0)
        write_version(store, "words", 1)
        v2 = write_version(store, "words", 2, fail_load=True)
        await reg.start()
        assert factory.built[("words", 2)] == 1
        assert "retried when its folder changes" in str(states(reg, "words")[2][1])
        for _ in range(3):  # unchanged: never tried again
            await reg.scan()
        assert factory.built[("words", 2)] == 1
        for attempt in (2, 3):  # changed, then settled: a retry each, up to MAX_LOAD_RETRIES
            rewrite_manifest(v2, attempt=attempt)
            await reg.scan()
            assert factory.built[("words", 2)] == attempt - 1  # not while it changes
            await reg.scan()
            assert factory.built[("words", 2)] == attempt
        assert "no retry left of MAX_LOAD_RETRIES=2" in str(states(reg, "words")[2][1])
        rewrite_manifest(v2, fail_load=False)  # fixed, but the budget is spent
        for _ in range(3):
            await reg.scan()
        assert factory.built[("words", 2)] == 3
        assert reg.get("words").serving.version == 1  # type: ignore[union-attr]
        status = await reg.reload("words")  # an admin reload always tries again
        assert status.serving_version == 2 and factory.built[("words", 2)] == 4
        await reg.stop()

    asyncio.run(run())


def test_retries_back_off(store: Path) -> None:
    factory = CountingFactory()

    async def run() -> None:
        reg = registry(store, factory, load_retry_backoff_s=3600)
        write_version(store, "words", 1)
        v2 = write_version(store, "words", 2, fail_load=True)
        await reg.start()
        rewrite_manifest(v2, fail_load=False)
        for _ in range(3):
            await reg.scan()
        assert factory.built[("words", 2)] == 1  # the first retry waits an hour
        note = str(states(reg, "words")[2][1])
        assert "retry 1 of 5 in 3600 s" in note or "retry 1 of 5 in 3599 s" in note, note
        await reg.stop()

    asyncio.run(run())


def readiness(client: TestClient) -> Any:
    """/readyz once the first scan has ended."""
    r = client.get("/readyz")
    while "(store scan in progress)" in r.json()["not_ready"]:
        r = client.get("/readyz")
    return r


def test_readyz_names_a_model_whose_versions_all_failed_but_is_not_held_by_it(
    store: Path,
) -> None:
    write_version(store, "words", 1)
    write_version(store, "broken", 1, fail_load=True)
    settings = Settings(model_store=store, poll_interval_s=0)
    with TestClient(create_app(settings, runtime_factory=fake_factory)) as client:
        r = readiness(client)
        assert r.status_code == 200 and r.json()["not_ready"] == []
        (broken,) = r.json()["unavailable"]
        assert broken["model"] == "broken"
        assert broken["reason"].startswith("every version failed to load: version 1: RuntimeError")


@pytest.mark.parametrize(("grace_s", "status"), [(3600, 503), (0, 200)])
def test_readyz_holds_for_a_version_still_to_come_only_within_the_grace(
    store: Path, grace_s: float, status: int
) -> None:
    write_version(store, "words", 1)
    (store / "late" / "1").mkdir(parents=True)  # a copy not begun yet
    settings = Settings(model_store=store, poll_interval_s=0, ready_grace_s=grace_s)
    with TestClient(create_app(settings, runtime_factory=fake_factory)) as client:
        r = readiness(client)
        assert r.status_code == status, r.text
        assert r.json()["not_ready"] == (["late"] if status == 503 else [])
        (late,) = r.json()["unavailable"]
        assert late["model"] == "late" and "not complete yet" in late["reason"]
        assert ("past READY_GRACE_S" in late["reason"]) == (status == 200)


def test_a_first_scan_that_raises_still_ends_the_start(
    store: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def run() -> None:
        reg = registry(store)

        async def broken_scan(**_: Any) -> None:
            raise RuntimeError("boom")

        reg.scan = broken_scan  # type: ignore[method-assign]
        await reg.start()
        assert reg.started and reg.not_ready() == []
        await reg.stop()

    with caplog.at_level(logging.ERROR, logger="service.registry"):
        asyncio.run(run())
    assert "the first store scan failed" in caplog.text


def test_an_unreadable_model_folder_is_skipped_and_the_others_load(
    store: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import service.registry

    def listing(model_dir: Path) -> tuple[dict[int, Path], list[str]]:
        if model_dir.name == "locked":  # as a folder of mode 000 does (but also for root)
            raise PermissionError(13, "Permission denied", str(model_dir))
        return version_folders(model_dir)

    monkeypatch.setattr(service.registry, "version_folders", listing)
    write_version(store, "words", 1)
    write_version(store, "locked", 1)
    (store / "dangling").symlink_to(store / "nowhere")
    (store / "words" / "7").symlink_to(store / "nowhere")  # a broken version link

    async def run() -> None:
        reg = registry(store)
        await reg.start()
        for _ in range(3):
            await reg.scan()
        assert reg.names() == ["words"] and reg.not_ready() == []
        assert reg.get("words").serving.version == 1  # type: ignore[union-attr]
        await reg.stop()

    with caplog.at_level(logging.WARNING, logger="service.registry"):
        asyncio.run(run())
    assert caplog.text.count("model folder locked: PermissionError") == 1, caplog.text
    assert caplog.text.count("'7' is not a version folder") == 1, caplog.text


def test_a_version_of_another_task_never_takes_over_the_model(store: Path, caplog) -> None:
    # A JoSE version copied into demo-digits' folder became its serving version: density callers
    # got 404 ("an embedding model, not density"), and embedding callers naming no model got 400.
    async def run() -> None:
        reg = registry(store)
        write_version(store, "words", 1)
        await reg.start()
        write_version(store, "words", 2, task="density")
        with caplog.at_level(logging.ERROR, logger="service.registry"):
            await reg.scan()
            await reg.scan()
        assert reg.get("words").serving.version == 1  # type: ignore[union-attr]
        assert reg.get("words").task == "embedding"
        state, note = states(reg, "words")[2]
        assert state == "FAILED" and note is not None
        assert "its task is density, and the model serves embedding (version 1)" in note
        assert "another model name" in note
        assert "Traceback" not in caplog.text and "version 2 not loaded" in caplog.text
        await reg.stop()

    asyncio.run(run())


def test_a_model_with_no_version_read_yet_is_not_ready_rather_than_of_task_none(
    store: Path,
) -> None:
    # Its only version still being copied (no manifest): a request naming it got 404 "model
    # 'pending' is a None model, not embedding"; it is 503, as for a version still loading.
    (store / "pending" / "1").mkdir(parents=True)
    app = create_app(Settings(model_store=store, poll_interval_s=0), runtime_factory=fake_factory)
    with TestClient(app) as client:
        readiness(client)
        response = client.post("/v1/embeddings", json={"model": "pending", "input": ["a"]})
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "not_ready"
        assert "None" not in response.json()["detail"]


def test_a_request_during_the_first_scan_is_not_ready_not_a_missing_model(store: Path) -> None:
    # Sent right after start-up (docker compose up, then a client), before the scan reached the
    # model: 503 "still being scanned", as /readyz says, not 404 "no such model".
    from service.errors import ModelNotFound, NotReady

    async def run() -> None:
        reg = registry(store)
        write_version(store, "words", 1)
        for name in (None, "words"):
            with pytest.raises(NotReady, match="still being scanned"):
                reg.resolve("embedding", name)
        await reg.start()
        assert reg.resolve("embedding", "words").runtime.version == 1  # type: ignore[union-attr]
        assert reg.resolve("embedding", "words").name == "words"
        # after the scan a missing model is missing
        with pytest.raises(ModelNotFound):
            reg.resolve("embedding", "absent")
        with pytest.raises(ModelNotFound):
            reg.resolve("qa", None)
        await reg.stop()

    asyncio.run(run())


class FakeDensityRuntime(Runtime):
    """A density version that loads: what a version of another task is to the fake family."""

    task, family = "density", "fake"

    def load(self) -> None:
        pass

    def warmup(self) -> None:
        pass


def any_task_factory(name: str, version: int, path: Path, settings: Settings) -> Runtime:
    if json.loads((path / "manifest.json").read_text())["task"] == "density":
        return FakeDensityRuntime(name, version, path, settings)
    return fake_factory(name, version, path, settings)


def test_at_start_up_a_version_of_another_task_than_the_oldest_is_refused(
    store: Path, caplog
) -> None:
    # A density version copied by hand into an embedding model's folder was refused by a running
    # service, but after a restart it loaded first (the newest) and took the model's name:
    # /v1/embeddings answered 404 "the store holds no embedding model".
    write_version(store, "words", 1)
    write_version(store, "words", 2, task="density")
    write_version(store, "other", 1)
    write_version(store, "other", 2)

    async def run() -> None:
        reg = registry(store, any_task_factory)
        with caplog.at_level(logging.ERROR, logger="service.registry"):
            await reg.start()
        assert reg.get("words").serving.version == 1  # type: ignore[union-attr]
        assert reg.get("words").task == "embedding"
        assert reg.resolve("embedding", "words").runtime.version == 1  # type: ignore[union-attr]
        state, note = states(reg, "words")[2]
        assert state == "FAILED" and note is not None
        assert "its task is density, and the model's oldest version (1) is embedding" in note
        assert "another model name" in note
        assert "Traceback" not in caplog.text
        assert caplog.text.count("model words version 2 not loaded") == 1
        # Versions of one task load as before, the newest serving.
        assert reg.get("other").serving.version == 2  # type: ignore[union-attr]
        # A running scan says the same of it, and of a third version of either task.
        write_version(store, "words", 3, task="density")
        await reg.scan()
        await reg.scan()
        assert states(reg, "words")[3][0] == "FAILED"
        assert reg.get("words").serving.version == 1  # type: ignore[union-attr]
        await reg.stop()

    asyncio.run(run())


def test_a_version_refused_for_its_task_loads_once_the_other_tasks_versions_leave(
    store: Path, caplog
) -> None:
    # Refused while the model's embedding version was in the store (the message says to remove
    # them), it stayed FAILED once they were removed: its own folder had not changed, so it was
    # never tried again, and an admin reload refused it again for the removed version still
    # serving from memory; only a restart loaded it.
    write_version(store, "words", 1)
    v2 = write_version(store, "words", 2, task="density")

    async def run() -> None:
        reg = registry(store, any_task_factory)
        await reg.start()
        state, note = states(reg, "words")[2]
        assert state == "FAILED" and note is not None and "other task have left its folder" in note
        await reg.scan()  # nothing changed: not tried again
        assert states(reg, "words")[2][0] == "FAILED"
        shutil.rmtree(store / "words" / "1")
        await reg.scan()
        assert reg.get("words").serving.version == 2  # type: ignore[union-attr]
        assert reg.get("words").task == "density"
        assert list(reg.get("words").versions) == [2]
        assert v2.is_dir()
        await reg.stop()

    asyncio.run(run())
