"""The model store as the service sees it: scan, load, warm up, swap versions, report state.

Layout (TensorFlow Serving's): $MODEL_STORE/<name>/<version>/ with a SavedModel and manifest.json.
Policy, as TF Serving's "latest" policy with a fallback:
- the highest version that loads and warms up is served; a newer one is loaded and warmed *beside*
  it and swapped in with one assignment, so requests never see a half-ready version;
- a version that fails to load is FAILED and the previous one keeps serving;
- an older version is UNLOADED when a newer one takes over; requests already queued on it keep
  their reference and finish on it (the batcher never mixes versions in one batch);
- a serving version whose folder disappears is replaced by the highest remaining one.
Temporary folders of training jobs (`.tmp-*`) and anything that is not a positive integer
are ignored.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.batching import BatcherConfig, DynamicBatcher
from service.errors import ModelNotFound, NotReady
from service.metrics import Metrics
from service.runtimes.base import Runtime, read_manifest
from service.schemas.common import MODEL_NAME_PATTERN
from service.schemas.models import ModelStatus, VersionState, VersionStatus
from service.settings import Settings

log = logging.getLogger(__name__)

RuntimeFactory = Callable[[str, int, Path, Settings], Runtime]


@dataclass(frozen=True)
class BatchItem:
    """What a route queues: the prepared input and the runtime (version) that prepared it."""

    runtime: Runtime
    payload: Any


def _run_on_own_runtime(items: Sequence[BatchItem]) -> Sequence[Any]:
    # Batches never mix groups and the group is the runtime, so items[0] speaks for all.
    return items[0].runtime.run_batch([item.payload for item in items])


@dataclass
class ModelVersion:
    version: int
    path: Path
    state: VersionState = VersionState.UNLOADED
    error: str | None = None
    runtime: Runtime | None = None


@dataclass
class ServedModel:
    name: str
    batcher: DynamicBatcher[BatchItem, Any]
    versions: dict[int, ModelVersion] = field(default_factory=dict)
    serving: ModelVersion | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def task(self) -> str | None:
        manifest = self.manifest
        return manifest.get("task") if manifest else self._peek("task")

    @property
    def runtime(self) -> Runtime | None:
        return self.serving.runtime if self.serving else None

    @property
    def manifest(self) -> dict[str, Any] | None:
        return self.serving.runtime.manifest if self.serving and self.serving.runtime else None

    def _peek(self, key: str) -> Any:
        # Before any version is served, the task comes from the newest manifest that reads.
        for v in sorted(self.versions, reverse=True):
            try:
                return read_manifest(self.versions[v].path).get(key)
            except (OSError, ValueError):
                continue
        return None

    def status(self) -> ModelStatus:
        return ModelStatus(
            name=self.name,
            task=self.task,
            family=(self.manifest or {}).get("family") or self._peek("family"),
            serving_version=self.serving.version if self.serving else None,
            versions=[
                VersionStatus(version=v.version, state=v.state, error=v.error)
                for v in sorted(self.versions.values(), key=lambda v: v.version, reverse=True)
            ],
            manifest=self.manifest,
        )


def default_runtime_factory(name: str, version: int, path: Path, settings: Settings) -> Runtime:
    from service.runtimes import runtime_class

    manifest = read_manifest(path)
    cls = runtime_class(manifest["task"], manifest["family"])
    return cls(name, version, path, settings)


class ModelRegistry:
    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        runtime_factory: RuntimeFactory = default_runtime_factory,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._factory = runtime_factory
        self._models: dict[str, ServedModel] = {}
        self._poller: asyncio.Task[None] | None = None
        self.started = False  # the first scan has finished
        self.shutting_down = False
        self.draining = False  # SIGTERM: readiness 503, requests still served (service.__main__)

    # ------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """First scan (loads and warms every model), then poll the store if configured."""
        await self.scan()
        self.started = True
        if self.settings.poll_interval_s > 0:
            self._poller = asyncio.get_running_loop().create_task(self._poll(), name="store-poll")

    async def stop(self, drain_timeout_s: float = 30.0) -> None:
        self.shutting_down = True
        if self._poller is not None:
            self._poller.cancel()
        await asyncio.gather(
            *(m.batcher.close(drain_timeout_s) for m in self._models.values()),
            return_exceptions=True,
        )

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.settings.poll_interval_s)
            try:
                await self.scan()
            except Exception:  # polling must outlive a bad scan
                log.exception("store scan failed")

    # ------------------------------------------------------------- lookups
    def names(self) -> list[str]:
        return sorted(self._models)

    def get(self, name: str) -> ServedModel:
        model = self._models.get(name)
        if model is None:
            raise ModelNotFound(f"no model named {name!r} in the store")
        return model

    def resolve(self, task: str, name: str | None, default: str | None = None) -> ServedModel:
        """The model a request means: named, the configured default, or the only one of its task."""
        if self.shutting_down:
            raise NotReady("the service is shutting down")
        name = name or default
        if name is None:
            candidates = [m for m in self._models.values() if m.task == task]
            if len(candidates) != 1:
                found = ", ".join(sorted(m.name for m in candidates)) or "none"
                raise ModelNotFound(
                    f"name a model: the store holds {len(candidates)} {task} models ({found})"
                )
            model = candidates[0]
        else:
            model = self.get(name)
            if model.task != task:
                raise ModelNotFound(f"model {name!r} is a {model.task} model, not {task}")
        if model.serving is None or model.serving.runtime is None:
            raise NotReady(f"model {model.name!r} has no loaded version yet")
        return model

    def not_ready(self) -> list[str]:
        if not self.started:
            return ["(store scan in progress)"]
        return sorted(name for name, m in self._models.items() if m.serving is None)

    def statuses(self) -> list[ModelStatus]:
        return [self._models[n].status() for n in self.names()]

    # ------------------------------------------------------------- scanning
    async def reload(self, name: str) -> ModelStatus:
        """The admin reload: rescan one model, giving FAILED versions another try."""
        model = self._models.get(name)
        if model is not None:
            for entry in model.versions.values():
                if entry.state is VersionState.FAILED:
                    entry.state, entry.error = VersionState.UNLOADED, None
        await self.scan(only=name)
        return self.get(name).status()

    async def scan(self, only: str | None = None) -> None:
        store = self.settings.model_store
        found = _list_models(store) if store.is_dir() else {}
        if only is not None:
            found = {only: found[only]} if only in found else {}
            if only not in found and only in self._models:
                await self._forget(only)
        else:
            for gone in set(self._models) - set(found):
                await self._forget(gone)
        for name, versions in found.items():
            await self._sync(name, versions)

    async def _forget(self, name: str) -> None:
        model = self._models.pop(name)
        log.info("model %s left the store", name)
        await model.batcher.close(drain_timeout_s=self.settings.request_timeout_s)

    async def _sync(self, name: str, on_disk: dict[int, Path]) -> None:
        model = self._models.get(name)
        if model is None:
            model = ServedModel(name=name, batcher=self._new_batcher(name))
            self._models[name] = model
        async with model.lock:
            for v in set(model.versions) - set(on_disk):
                log.info("model %s version %d left the store", name, v)
                del model.versions[v]
            for v, path in on_disk.items():
                model.versions.setdefault(v, ModelVersion(version=v, path=path))
            # A serving version whose folder was deleted keeps answering (it is in memory) until
            # another version is loaded and warm: deleting a version never leaves a gap.
            leaving = model.serving
            if leaving is not None and leaving.version in on_disk:
                leaving = None
            # Try newest first; stop at the first that serves (it may be the one already serving).
            for v in sorted(model.versions, reverse=True):
                entry = model.versions[v]
                if model.serving is entry:
                    break
                if entry.state is VersionState.FAILED:
                    continue
                if leaving is None and model.serving is not None and v < model.serving.version:
                    break
                if await self._load(model, entry):
                    old, model.serving = model.serving, entry
                    if old is not None:
                        old.state, old.runtime = VersionState.UNLOADED, None
                    log.info("model %s now serves version %d", name, v)
                    break
            if leaving is not None and model.serving is leaving:  # nothing on disk could serve
                model.serving = None
                leaving.state, leaving.runtime = VersionState.UNLOADED, None
            self._export_states(model)

    async def _load(self, model: ServedModel, entry: ModelVersion) -> bool:
        entry.state, entry.error = VersionState.LOADING, None
        self._export_states(model)
        started = time.monotonic()
        try:
            runtime = self._factory(model.name, entry.version, entry.path, self.settings)
            runtime.metrics = self.metrics
            await asyncio.to_thread(runtime.load)
            if self.settings.warmup:
                await asyncio.to_thread(runtime.warmup)
        except Exception as exc:  # any failure leaves the previous version serving
            log.exception("model %s version %d failed to load", model.name, entry.version)
            entry.state, entry.error = VersionState.FAILED, f"{type(exc).__name__}: {exc}"
            return False
        entry.runtime, entry.state = runtime, VersionState.AVAILABLE
        log.info(
            "model %s version %d loaded and warm in %.1f s",
            model.name,
            entry.version,
            time.monotonic() - started,
        )
        return True

    def _new_batcher(self, name: str) -> DynamicBatcher[BatchItem, Any]:
        s = self.settings
        config = BatcherConfig(
            max_batch_size=s.max_batch_size,
            max_batch_delay_s=s.max_batch_delay_ms / 1000.0,
            max_batch_tokens=s.max_batch_tokens,
            max_queue=s.max_queue,
        )
        return DynamicBatcher(name, _run_on_own_runtime, config, self.metrics)

    def _export_states(self, model: ServedModel) -> None:
        gauge = self.metrics.model_versions
        for entry in model.versions.values():
            for state in VersionState:
                gauge.labels(model.name, str(entry.version), state.value).set(
                    1.0 if entry.state is state else 0.0
                )


def _list_models(store: Path) -> dict[str, dict[int, Path]]:
    """{name: {version: path}} for every well-named model folder and integer version folder."""
    found: dict[str, dict[int, Path]] = {}
    for model_dir in sorted(store.iterdir()):
        if not model_dir.is_dir() or not re.match(MODEL_NAME_PATTERN, model_dir.name):
            continue
        versions = {
            int(v.name): v
            for v in model_dir.iterdir()
            if v.is_dir() and v.name.isdigit() and int(v.name) > 0
        }
        if versions:  # a folder with only a job's `.tmp-*` in it is not a model yet
            found[model_dir.name] = versions
    return found
