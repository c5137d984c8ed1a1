"""The model store as the service sees it: scan, load, warm up, swap versions, report state.

Layout (TensorFlow Serving's, models.store): $MODEL_STORE/<name>/<version>/ with a SavedModel and
manifest.json, and optionally <name>/labels.json. Policy, as TF Serving's version policies
(VERSION_POLICY: "latest", "latest:N", "all") with a fallback:
- the N highest versions that load and warm up are loaded (N = 1 for "latest", every version for
  "all"); the highest loaded one serves requests that name no version. A newer version is loaded
  and warmed *beside* them and swapped in with one assignment, so requests never see a
  half-ready version;
- a version that fails to load is FAILED and the versions loaded before keep serving; under
  "latest:N" the next older version that loads takes its place in the N;
- a version beyond the N newest loaded is UNLOADED as soon as the newer one is warm; requests
  already queued on it keep their reference and finish on it (the batcher never mixes versions in
  one batch);
- a loaded version whose folder disappears is unloaded once another version is loaded; while none
  is, the newest of those keeps serving from memory; only removing the model's folder removes the
  model.

Requests may name a version: its number, or a label of labels.json ({"stable": 1, "canary": 2},
TF Serving's version labels). Only a loaded (AVAILABLE) version answers; any other is 404
`version_not_found` naming its state, as TF Serving answers NOT_FOUND for a version it has not
loaded (whatever the reason: loading, failed, unloaded by the policy); an unknown label is 404 too
(TF Serving: INVALID_ARGUMENT), one answer for "no such version" however it was named.

labels.json is read at every scan (a few bytes, on a store thread) and parsed when it changed. As
in TF Serving (whose config reload fails when a label names a version that is not available), a
file that is not valid, or whose labels name a version that is not loaded, is not applied: the
labels in force stay those of the last good file, and the model's status says why; the file is
applied at the first scan where every version it names is loaded (so labels.json may be written
before its new version has loaded). A missing file means no labels. A label in force whose version
is later unloaded answers 404 until the file moves it.

A version copied in by hand may be caught half-copied, so a version is tried only when it looks
complete (REQUIRED_FILES there) and, when a poll found it, once its files (names, sizes, mtimes) are
the same at two consecutive scans. The first scan and an admin reload try at once. A FAILED
version is tried again when its folder changes and then stops changing, at most MAX_LOAD_RETRIES
times, waiting LOAD_RETRY_BACKOFF_S, then twice as long each time (TF Serving retries a failed load
a fixed number of times whatever the folder holds; retrying an unchanged folder would fail the same
way); an admin reload always tries again.

Entries that break the store's rules (models.store) are skipped with one warning each: a model
folder whose name is not a model name, a version folder that is not ASCII digits. No entry stops a
scan: every read is per model or per version, and its errors stay there.

Every store read (listings, fingerprints, manifests, building a runtime) runs on a daemon thread,
never on the event loop, so /healthz answers whatever the store does. A read is waited for at
most STORE_READ_TIMEOUT_S; one that hangs (a stuck network filesystem) is reported and not started
again until it returns, so hung threads never pile up one per poll, and being daemons they never
hold the process at exit.

Readiness (/readyz, DESIGN.md): a model with no loaded version holds the instance unready while it
is being loaded, or, for at most READY_GRACE_S, while one of its versions is still to be tried
(incomplete, settling, due for a retry, its read hanging). A model whose versions all failed, or
that is past the grace, is reported with the reason but does not hold readiness: the instance still
serves every other model, and a broken model in the store must not take all of them out.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from models.store import (
    LABELS_FILENAME,
    MANIFEST_FILENAME,
    MAX_VERSION,
    SAVED_MODEL_FILENAME,
    TEMP_PREFIX,
    is_model_name,
    parse_labels,
    version_folders,
)
from service.batching import BatcherConfig, DynamicBatcher
from service.errors import BadInput, ModelNotFound, NotReady, VersionNotFound
from service.metrics import Metrics
from service.runtimes.base import BatchedRuntime, Runtime, read_manifest
from service.schemas.health import UnavailableModel
from service.schemas.models import ModelStatus, VersionState, VersionStatus, created_seconds
from service.settings import Settings

log = logging.getLogger(__name__)

RuntimeFactory = Callable[[str, int, Path, Settings], Runtime]
T = TypeVar("T")

# labels.json is a few labels; a bigger one is refused rather than read into memory every poll.
MAX_LABELS_BYTES = 65536

# What a version folder holds before it is tried at all.
REQUIRED_FILES = (MANIFEST_FILENAME, SAVED_MODEL_FILENAME)


def task_and_family(manifest: Any) -> tuple[str, str]:
    """The two manifest fields the registry itself reads (the one place that knows their shape)."""
    return manifest["task"], manifest["family"]


@dataclass(frozen=True)
class BatchItem:
    """What a route queues: the prepared input and the runtime (version) that prepared it."""

    runtime: BatchedRuntime
    payload: Any


def _run_on_own_runtime(items: Sequence[BatchItem]) -> Sequence[Any]:
    # Batches never mix groups and the group begins with the runtime (service.inference.infer),
    # so items[0] speaks for all.
    return items[0].runtime.run_batch([item.payload for item in items])


# ----------------------------------------------------------------- store reads (on store threads)
Fingerprint = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class VersionFiles:
    """One look at a version folder."""

    fingerprint: Fingerprint  # (path inside the folder, size, mtime in ns), sorted; -1: unreadable
    missing: tuple[str, ...] = ()  # REQUIRED_FILES not there (yet)
    task: str | None = None
    family: str | None = None
    error: str | None = None  # the manifest did not read: the version fails without a load


def look_at_version(path: Path, previous: VersionFiles | None) -> VersionFiles:
    """Blocking. The manifest is read only when the files changed since `previous`."""
    entries: list[tuple[str, int, int]] = []
    for root, dirs, files in os.walk(path):  # errors (a vanished or unreadable folder) skip it
        for name in dirs + files:
            full = os.path.join(root, name)
            try:
                st = os.stat(full)  # a broken symlink or a vanished file: marked, not raised
                entries.append((os.path.relpath(full, path), st.st_size, st.st_mtime_ns))
            except OSError:
                entries.append((os.path.relpath(full, path), -1, -1))
    fingerprint = tuple(sorted(entries))
    if previous is not None and previous.fingerprint == fingerprint:
        return previous
    present = {name for name, size, _ in fingerprint if size >= 0}
    missing = tuple(name for name in REQUIRED_FILES if name not in present)
    if missing:
        return VersionFiles(fingerprint, missing)
    try:
        task, family = task_and_family(read_manifest(path))
    except Exception as exc:
        return VersionFiles(fingerprint, error=f"{MANIFEST_FILENAME}: {type(exc).__name__}: {exc}")
    return VersionFiles(fingerprint, task=task, family=family)


@dataclass(frozen=True)
class LabelsLook:
    """One look at a model's labels.json."""

    content: bytes | None  # None: no file
    labels: dict[str, int] | None = None  # as the file says (None: no file, or it did not parse)
    error: str | None = None  # why the file did not parse


def look_at_labels(model_dir: Path, previous: LabelsLook | None) -> LabelsLook:
    """Blocking. Reads the file at every look (a few bytes) and parses it only when its content
    changed: a change in place within one tick of the file system's clock keeps size and mtime."""
    try:
        with open(model_dir / LABELS_FILENAME, "rb") as file:
            content = file.read(MAX_LABELS_BYTES + 1)
    except FileNotFoundError:
        content = None
    except OSError as exc:
        content, error = f"{exc!r}".encode(), f"{type(exc).__name__}: {exc}"
        if previous is not None and previous.content == content:
            return previous
        return LabelsLook(content, error=error)
    if previous is not None and previous.content == content:
        return previous
    if content is None:
        return LabelsLook(None)
    if len(content) > MAX_LABELS_BYTES:
        return LabelsLook(content, error=f"larger than {MAX_LABELS_BYTES} bytes")
    try:
        return LabelsLook(content, parse_labels(content.decode("utf-8")))
    except UnicodeDecodeError as exc:
        return LabelsLook(content, error=f"not UTF-8 ({exc})")
    except ValueError as exc:
        return LabelsLook(content, error=str(exc))


def list_store(store: Path) -> tuple[dict[str, Path], list[str]]:
    """Blocking. ({name: folder} of the model folders, [entries skipped]); no store, no models."""
    if not store.is_dir():
        return {}, []
    models: dict[str, Path] = {}
    skipped: list[str] = []
    for entry in sorted(store.iterdir(), key=lambda p: p.name):
        try:
            is_dir = entry.is_dir()
        except OSError:
            skipped.append(entry.name)
            continue
        if not is_dir or entry.name.startswith(TEMP_PREFIX):
            continue  # files beside the models, and a job's temporary folders, are no models
        if is_model_name(entry.name):
            models[entry.name] = entry
        else:
            skipped.append(entry.name)
    return models, skipped


def _in_daemon_thread(name: str, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """fn(*args) on a new daemon thread: a thread stuck in the filesystem never holds the exit
    (asyncio.to_thread's pool threads are joined at exit)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    # Nobody may wait for a read that hung past its scan: retrieve its error so none is logged.
    future.add_done_callback(lambda f: f.cancelled() or f.exception())

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def run() -> None:
        result, error = None, None
        try:
            result = fn(*args)
        except BaseException as exc:  # handed to the awaiting side, whatever it is
            error = exc
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:  # the loop has closed: nobody waits any more
            pass

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


class ReadHangs(Exception):
    def __init__(self, since: float) -> None:
        super().__init__(f"a store read has not returned since {since:.0f}")
        self.since = since


class StoreReads:
    """Store reads on daemon threads, at most one in flight per key, each waited for at most
    `timeout_s`; a read still running past it raises ReadHangs at once (no new thread) until it
    returns, and its result then serves the next caller."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._pending: dict[str, tuple[float, asyncio.Future[Any]]] = {}

    async def run(self, key: str, fn: Callable[..., T], *args: Any) -> T:
        started, future = self._pending.get(key, (0.0, None))
        if future is None:
            started, future = time.monotonic(), _in_daemon_thread(f"store:{key}", fn, *args)
            self._pending[key] = (started, future)
        if not future.done():
            left = started + self.timeout_s - time.monotonic()
            if left <= 0:
                raise ReadHangs(started)
            try:
                await asyncio.wait_for(asyncio.shield(future), left)
            except TimeoutError:
                raise ReadHangs(started) from None
        if self._pending.get(key, (0.0, None))[1] is future:
            del self._pending[key]
        result: T = future.result()
        return result


class VersionRefused(ValueError):
    """A version that reads but may not serve: of another task than the model's
    (`_other_task`, OtherTask), or with weights that hold NaN or infinity (`_build`)."""


class OtherTask(VersionRefused):
    """Refused for its task: tried again once the model's other versions no longer say so."""


# ----------------------------------------------------------------- state
@dataclass
class ModelVersion:
    version: int
    path: Path
    state: VersionState = VersionState.UNLOADED
    error: str | None = None  # why it FAILED
    runtime: Runtime | None = None
    files: VersionFiles | None = None  # the latest look at its folder
    settled: bool = False  # the latest two looks found the same files
    hangs_since: float | None = None  # a look at its folder has not returned since (monotonic)
    failed_files: Fingerprint | None = None  # its files when it last failed
    other_task: bool = False  # it FAILED for its task (OtherTask), not for its files
    retries: int = 0  # retries since the last admin reload
    retry_at: float = 0.0  # no retry before (monotonic)
    loading_since: float = 0.0  # the current or last load began (monotonic)
    deleted: bool = False  # its folder left the store while it was serving
    waiting: str | None = "found, not tried yet"  # why it has not been tried, while it may be

    @property
    def note(self) -> str | None:
        """What /v1/models shows as the version's `error`."""
        if self.deleted:
            return "its folder left the store; served from memory until another version loads"
        if self.state is VersionState.FAILED:
            return f"{self.error}; {self.waiting}" if self.waiting else self.error
        return self.waiting if self.state is VersionState.UNLOADED else None


@dataclass
class ServedModel:
    name: str
    # Made when a version that batches loads (a BatchedRuntime): generation has none.
    batcher: DynamicBatcher[BatchItem, Any] | None = None
    versions: dict[int, ModelVersion] = field(default_factory=dict)
    serving: ModelVersion | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    unserved_since: float = field(default_factory=time.monotonic)  # found, none serving yet
    listing_hangs_since: float | None = None  # listing its folder has not returned since
    policy: str = "latest"  # VERSION_POLICY, as the status shows it
    labels: dict[str, int] = field(default_factory=dict)  # in force (the last good labels.json)
    labels_look: LabelsLook | None = None  # the latest look at labels.json
    labels_error: str | None = None  # why labels.json is not in force

    def loaded(self, version: int) -> Runtime | None:
        entry = self.versions.get(version)
        if entry is None or entry.state is not VersionState.AVAILABLE:
            return None
        return entry.runtime

    def runtime_for(self, version: int | str | None) -> Runtime:
        """The runtime a request's `version` names: None, the serving one; a number, that
        version; a string, the version its label names. 404 if that version is not loaded."""
        if version is None:
            if self.runtime is None:
                raise NotReady(f"model {self.name!r} has no loaded version yet")
            return self.runtime
        if isinstance(version, str):
            number = self.labels.get(version)
            if number is None:
                raise VersionNotFound(
                    f"model {self.name!r} has no label {version!r} ({self._labels_text()})"
                )
            what = f"label {version!r} names version {number}, which"
        else:
            number, what = version, f"version {version}"
        runtime = self.loaded(number)
        if runtime is None:
            raise VersionNotFound(
                f"model {self.name!r}: {what} is not loaded ({self._why_not_loaded(number)}); "
                f"loaded: {', '.join(map(str, self.loaded_versions())) or 'none'}"
            )
        return runtime

    def loaded_versions(self) -> list[int]:
        return sorted(v for v in self.versions if self.loaded(v) is not None)

    def _labels_text(self) -> str:
        if not self.labels:
            return f"it has none: {LABELS_FILENAME} names them"
        return "its labels: " + ", ".join(f"{k} -> {v}" for k, v in sorted(self.labels.items()))

    def _why_not_loaded(self, version: int) -> str:
        entry = self.versions.get(version)
        if entry is None:
            return "no such version in the store"
        if entry.state is VersionState.UNLOADED and entry.waiting is None:
            return f"UNLOADED: VERSION_POLICY={self.policy}"
        note = entry.note
        return f"{entry.state.value}: {note}" if note else entry.state.value

    @property
    def runtime(self) -> Runtime | None:
        return self.serving.runtime if self.serving else None

    async def close(self, drain_timeout_s: float) -> None:
        """Refuse new requests; those queued finish within `drain_timeout_s`."""
        if self.batcher is not None:
            await self.batcher.close(drain_timeout_s)

    @property
    def manifest(self) -> dict[str, Any] | None:
        return self.serving.runtime.manifest if self.serving and self.serving.runtime else None

    def _described(self) -> tuple[str | None, str | None]:
        # The serving version's manifest, else the newest one a scan read (no I/O here: this
        # runs on the event loop for every request that names no model).
        if self.manifest is not None:
            return task_and_family(self.manifest)
        for v in sorted(self.versions, reverse=True):
            files = self.versions[v].files
            if files is not None and files.task is not None:
                return files.task, files.family
        return None, None

    @property
    def task(self) -> str | None:
        return self._described()[0]

    def status(self) -> ModelStatus:
        task, family = self._described()
        return ModelStatus(
            id=self.name,
            created=created_seconds(self.manifest),
            name=self.name,
            task=task,
            family=family,
            serving_version=self.serving.version if self.serving else None,
            version_policy=self.policy,
            versions=[
                VersionStatus(
                    version=v.version,
                    state=v.state,
                    error=v.note,
                    labels=sorted(k for k, n in self.labels.items() if n == v.version),
                )
                for v in sorted(self.versions.values(), key=lambda v: v.version, reverse=True)
            ],
            labels=dict(sorted(self.labels.items())),
            labels_error=self._labels_status(),
            manifest=self.manifest,
        )

    def _labels_status(self) -> str | None:
        stale = [
            f"label {k!r} names version {n}, which is not loaded ({self._why_not_loaded(n)})"
            for k, n in sorted(self.labels.items())
            if self.loaded(n) is None
        ]
        parts = ([self.labels_error] if self.labels_error else []) + stale
        return "; ".join(parts) or None

    def apply_labels(self) -> None:
        """Puts labels.json in force if it parsed and every version it names is loaded; else
        keeps the labels in force and says why (module doc)."""
        look = self.labels_look
        if look is None:
            return
        if look.error is not None:
            self.labels_error = (
                f"{LABELS_FILENAME} not applied: {look.error}; the labels in force are those of "
                "the last good one"
            )
            return
        wanted = look.labels or {}
        if wanted == self.labels:  # in force already (a version it names may have left since)
            self.labels_error = None
            return
        unloaded = [
            f"{k!r} -> version {n} ({self._why_not_loaded(n)})"
            for k, n in sorted(wanted.items())
            if self.loaded(n) is None
        ]
        if unloaded:
            self.labels_error = (
                f"{LABELS_FILENAME} not applied yet: a label may name only a loaded version, and "
                f"{'; '.join(unloaded)}; the labels in force are those of the last good one, "
                "until every version it names is loaded"
            )
            return
        if wanted != self.labels:
            log.info("model %s labels: %s", self.name, wanted or "none")
            self.labels = dict(wanted)
        self.labels_error = None

    def unavailable(self, now: float, grace_s: float) -> tuple[str, bool] | None:
        """None while a version serves; else (why not, whether that holds readiness)."""
        if self.serving is not None:
            return None
        newest_first = sorted(self.versions.values(), key=lambda v: v.version, reverse=True)
        loading = [v for v in newest_first if v.state is VersionState.LOADING]
        if loading:  # a load ends by itself (or hangs in plain sight, named here)
            return (
                f"loading version {loading[0].version} for {now - loading[0].loading_since:.0f} s",
                True,
            )
        waiting = [f"version {v.version}: {v.waiting}" for v in newest_first if v.waiting]
        if self.listing_hangs_since is not None:
            waiting.insert(
                0, f"listing its folder has not returned for {now - self.listing_hangs_since:.0f} s"
            )
        if waiting:
            waited = now - self.unserved_since
            if waited < grace_s:
                return "; ".join(waiting), True
            return (
                f"{'; '.join(waiting)} (no version loaded in {waited:.0f} s, past READY_GRACE_S: "
                "no longer holding readiness)",
                False,
            )
        failed = [f"version {v.version}: {v.error}" for v in newest_first if v.error]
        if failed:
            return "every version failed to load: " + "; ".join(failed), False
        return "no version to load", False


def default_runtime_factory(name: str, version: int, path: Path, settings: Settings) -> Runtime:
    from service.runtimes import runtime_class

    task, family = task_and_family(read_manifest(path))
    cls = runtime_class(task, family)
    return cls(name, version, path, settings)


@dataclass
class _ModelLook:
    """One scan's look at a model folder: versions on disk and a look at each (None: it hangs)."""

    paths: dict[int, Path]
    files: dict[int, VersionFiles | ReadHangs]
    labels: LabelsLook | ReadHangs | None = None  # None: not read (an error, logged)


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
        self._reads = StoreReads(settings.store_read_timeout_s)
        self._loads: set[asyncio.Future[Runtime]] = set()
        self._warned: set[tuple[str, ...]] = set()
        self.started = False  # the first scan has finished
        self.shutting_down = False
        self.draining = False  # SIGTERM: readiness 503, requests still served (service.__main__)

    # ------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """First scan (loads and warms every model), then poll the store if configured."""
        try:
            await self.scan(eager=True)
        except Exception:  # the scan contains its errors; this is the last net
            log.exception("the first store scan failed")
        finally:
            self.started = True  # /readyz then names what is missing, never "scan in progress"
        self._check_defaults()
        if self.settings.poll_interval_s > 0:
            self._poller = asyncio.get_running_loop().create_task(self._poll(), name="store-poll")

    def _check_defaults(self) -> None:
        """One warning for each DEFAULT_<TASK>_MODEL that the first scan found no model of that
        task for: every request of the task that names no model would get 404."""
        for setting in type(self.settings).model_fields:
            if not (setting.startswith("default_") and setting.endswith("_model")):
                continue
            name, task = getattr(self.settings, setting), setting[len("default_") : -len("_model")]
            found = self._models.get(name) if name is not None else None
            if name is None or (found is not None and found.task in (None, task)):
                continue
            what = "no model of that name" if found is None else f"it, of task {found.task}"
            log.warning(
                "%s=%s: the store %s holds %s; every %s request that names no model gets 404",
                setting.upper(),
                name,
                self.settings.model_store,
                what,
                task,
            )

    async def stop(self, drain_timeout_s: float = 30.0) -> None:
        self.shutting_down = True
        if self._poller is not None:
            self._poller.cancel()
        if self._loads:  # a load mid-way finishes first, within bounds (a hung one is a daemon)
            await asyncio.wait(set(self._loads), timeout=drain_timeout_s)
        await asyncio.gather(
            *(m.close(drain_timeout_s) for m in self._models.values()),
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
        # A model the request does not name is the configured default's: an error about it
        # says so, or the caller looks for a mistake in a request that names no model.
        configured = (
            f" (DEFAULT_{task.upper()}_MODEL={default}; the request names no model)"
            if name is None and default is not None
            else ""
        )
        name = name or default
        # Until the first scan ends, a model not seen yet may still be found: a request sent
        # right after start-up waits for it (503, as /readyz says), it is not told "no such model".
        scanning = not self.started
        if name is None:
            candidates = sorted(m.name for m in self._models.values() if m.task == task)
            if not candidates and scanning:
                raise NotReady(f"the store is still being scanned for a {task} model (GET /readyz)")
            if not candidates:
                raise ModelNotFound(f"the store holds no {task} model")
            if len(candidates) > 1:  # ambiguous, not missing: the caller must choose
                raise BadInput(
                    f"name a model: the store holds {len(candidates)} {task} models "
                    f"({', '.join(candidates)}); set `model`, or DEFAULT_{task.upper()}_MODEL",
                    param="model",
                )
            model = self._models[candidates[0]]
        else:
            if scanning and name not in self._models:
                raise NotReady(f"the store is still being scanned for model {name!r} (GET /readyz)")
            if name not in self._models:
                raise ModelNotFound(f"no model named {name!r} in the store{configured}")
            model = self._models[name]
            if model.task is None:  # no version's manifest read yet (incomplete, still copying)
                raise NotReady(
                    f"model {name!r} has no loaded version yet (GET /v1/models/{name} says why)"
                )
            if model.task != task:
                article = "an" if (model.task or "")[:1] in ("a", "e", "i", "o", "u") else "a"
                raise ModelNotFound(
                    f"model {name!r} is {article} {model.task} model, not {task}{configured}"
                )
        if model.serving is None or model.serving.runtime is None:
            raise NotReady(f"model {model.name!r} has no loaded version yet")
        return model

    def not_ready(self) -> list[str]:
        """What holds readiness: the first scan, and models that may still load (module doc)."""
        held = [] if self.started else ["(store scan in progress)"]
        now = time.monotonic()
        for name in self.names():
            why = self._models[name].unavailable(now, self.settings.ready_grace_s)
            if why is not None and why[1]:
                held.append(name)
        return held

    def unavailable(self) -> list[UnavailableModel]:
        now = time.monotonic()
        found = []
        for name in self.names():
            why = self._models[name].unavailable(now, self.settings.ready_grace_s)
            if why is not None:
                found.append(UnavailableModel(model=name, reason=why[0]))
        return found

    def statuses(self) -> list[ModelStatus]:
        return [self._models[n].status() for n in self.names()]

    # ------------------------------------------------------------- scanning
    async def reload(self, name: str) -> ModelStatus:
        """The admin reload: rescan one model now, trying FAILED and unsettled versions at once."""
        await self.scan(only=name, eager=True)
        return self.get(name).status()

    async def scan(self, only: str | None = None, *, eager: bool = False) -> None:
        """One look at the store (or one model of it), then loads. `eager`: try versions without
        waiting for them to settle, and FAILED ones again (the first scan, an admin reload)."""
        try:
            folders, skipped = await self._reads.run("", list_store, self.settings.model_store)
        except ReadHangs:
            self._warn_once(
                ("store-hangs",), "listing the store %s hangs", self.settings.model_store
            )
            return
        except OSError as exc:  # the store itself unreadable: keep serving what is loaded
            self._warn_once(("store", str(exc)), "the store could not be listed: %s", exc)
            return
        self._warned.discard(("store-hangs",))
        for entry in skipped:
            self._warn_once(
                ("entry", entry),
                "store entry %a is not a model folder (models.store): skipped",
                entry,
            )
        if only is not None:
            folders = {only: folders[only]} if only in folders else {}
            gone = set() if only in folders or only not in self._models else {only}
        else:
            gone = set(self._models) - set(folders)
        for name in sorted(gone):
            await self._forget(name)
        names = sorted(folders)
        looks = await asyncio.gather(*(self._look(n, folders[n]) for n in names))
        for name, look in zip(names, looks, strict=True):
            try:
                await self._sync(name, look, eager)
            except Exception as exc:  # contained to this model; the others are still scanned
                if self._first_time(("sync", name, repr(exc))):
                    log.exception("model %s: scan failed", name)

    async def _look(self, name: str, folder: Path) -> _ModelLook | ReadHangs | None:
        """Reads one model folder and each version in it (concurrently, on store threads)."""
        try:
            paths, skipped = await self._reads.run(f"{name}/", version_folders, folder)
        except ReadHangs as hangs:
            return hangs
        except Exception as exc:  # unreadable, vanished mid-scan: this model only
            self._warn_once(("model", name, str(exc)), "model folder %s: %r", name, exc)
            return None
        for entry in skipped:
            self._warn_once(
                ("version", name, entry),
                "model %s: %a is not a version folder (ASCII digits, a number from 1 to %d, one "
                "folder a number): skipped",
                name,
                entry,
                MAX_VERSION,
            )
        known = self._models.get(name)

        async def one(v: int, path: Path) -> VersionFiles | ReadHangs:
            previous = known.versions[v].files if known and v in known.versions else None
            try:
                return await self._reads.run(f"{name}/{v}", look_at_version, path, previous)
            except ReadHangs as hangs:
                return hangs

        async def labels() -> LabelsLook | ReadHangs | None:
            previous = known.labels_look if known else None
            try:
                return await self._reads.run(f"{name}/labels", look_at_labels, folder, previous)
            except ReadHangs as hangs:
                return hangs
            except Exception as exc:  # look_at_labels keeps its own errors; this is the last net
                self._warn_once(("labels", name, repr(exc)), "model %s: labels: %r", name, exc)
                return None

        versions = sorted(paths)
        files, look = await asyncio.gather(
            asyncio.gather(*(one(v, paths[v]) for v in versions)), labels()
        )
        return _ModelLook(paths, dict(zip(versions, files, strict=True)), look)

    async def _forget(self, name: str) -> None:
        model = self._models.pop(name)
        log.info("model %s left the store", name)
        await model.close(drain_timeout_s=self.settings.request_timeout_s)

    async def _sync(self, name: str, look: _ModelLook | ReadHangs | None, eager: bool) -> None:
        model = self._models.get(name)
        if model is None:
            if look is None or (isinstance(look, _ModelLook) and not look.paths):
                return  # no version folder (only a job's `.tmp-*`, say): not a model yet
            model = ServedModel(name=name, policy=self.settings.version_policy)
            self._models[name] = model
        async with model.lock:
            if isinstance(look, ReadHangs):
                model.listing_hangs_since = look.since
            elif isinstance(look, _ModelLook):
                model.listing_hangs_since = None
                if not look.paths and model.serving is None:
                    self._models.pop(name)  # its last version left before it ever served
                    log.info("model %s has no version left", name)
                    await model.close(drain_timeout_s=self.settings.request_timeout_s)
                    return
                self._apply(model, look)
            await self._try_versions(model, eager)
            model.apply_labels()  # after the loads: a label may name only a loaded version
            self._export_states(model)

    def _apply(self, model: ServedModel, look: _ModelLook) -> None:
        """Brings the model's versions in line with what the scan saw on disk."""
        if isinstance(look.labels, LabelsLook) and look.labels is not model.labels_look:
            if look.labels.error is not None:
                log.warning(
                    "model %s: %s not applied: %s", model.name, LABELS_FILENAME, look.labels.error
                )
            elif model.labels_look is not None:
                log.info("model %s: %s changed", model.name, LABELS_FILENAME)
            model.labels_look = look.labels
        for v in set(model.versions) - set(look.paths):
            entry = model.versions[v]
            if entry.runtime is not None:  # unloaded once another version is (module doc)
                if not entry.deleted:
                    log.warning(
                        "model %s version %d: its folder left the store; unloaded once another "
                        "version is loaded",
                        model.name,
                        v,
                    )
                entry.deleted = True
                continue
            log.info("model %s version %d left the store", model.name, v)
            del model.versions[v]
        for v, path in look.paths.items():
            entry = model.versions.setdefault(v, ModelVersion(version=v, path=path))
            entry.deleted = False
            seen = look.files[v]
            if isinstance(seen, ReadHangs):
                entry.hangs_since = seen.since
                continue
            entry.hangs_since = None
            entry.settled = entry.files is not None and entry.files.fingerprint == seen.fingerprint
            entry.files = seen

    async def _try_versions(self, model: ServedModel, eager: bool) -> None:
        """Loads what VERSION_POLICY wants and is due, newest first, until the policy's count of
        versions (still in the store) is loaded; then unloads the loaded versions beyond it."""
        wanted = self.settings.versions_to_load  # None: every version
        now = time.monotonic()
        counted = 0  # loaded versions whose folder is still in the store, newest first
        for v in sorted(model.versions, reverse=True):
            if wanted is not None and counted >= wanted:
                break
            entry = model.versions[v]
            if model.loaded(v) is not None:
                counted += 0 if entry.deleted else 1
                continue
            if not self._due(model, entry, eager, now):
                continue
            if await self._load(model, entry):
                if isinstance(entry.runtime, BatchedRuntime) and model.batcher is None:
                    model.batcher = self._new_batcher(model.name)
                counted += 1
        self._keep_wanted(model, wanted)

    def _keep_wanted(self, model: ServedModel, wanted: int | None) -> None:
        """Unloads the loaded versions beyond the `wanted` newest still in the store (a version
        whose folder left serves from memory only while nothing else is loaded) and points
        `serving` at the newest loaded one, in one assignment."""
        loaded = [model.versions[v] for v in reversed(model.loaded_versions())]
        present = [entry for entry in loaded if not entry.deleted]
        keep = (present if wanted is None else present[:wanted]) or loaded[:1]
        for entry in loaded:
            if entry in keep:
                continue
            entry.state, entry.runtime = VersionState.UNLOADED, None
            if entry.deleted:
                del model.versions[entry.version]
            log.info("model %s version %d unloaded", model.name, entry.version)
        serving = keep[0] if keep else None
        if serving is not model.serving and serving is not None:
            log.info("model %s now serves version %d", model.name, serving.version)
        model.serving = serving
        if wanted is not None and len(keep) == wanted and not keep[-1].deleted:
            for older in model.versions.values():  # below the policy's versions: not wanted
                if older.version < keep[-1].version and older.runtime is None:
                    older.waiting = None

    def _due(self, model: ServedModel, entry: ModelVersion, eager: bool, now: float) -> bool:
        """Whether to try `entry` now; if not, entry.waiting says why (None: nothing will change
        that short of its folder changing or an admin reload)."""
        entry.waiting = None
        files = entry.files
        if entry.hangs_since is not None:
            entry.waiting = (
                f"reading its folder has not returned for {now - entry.hangs_since:.0f} s"
            )
            return False
        if files is None:
            entry.waiting = "not looked at yet"
            return False
        if files.missing:
            entry.waiting = f"not complete yet: no {', '.join(files.missing)}"
            return False
        max_retries = self.settings.max_load_retries
        if entry.state is VersionState.FAILED:
            if eager:  # an admin reload: another try, and a fresh retry budget
                entry.retries = 0
                return True
            if entry.other_task:  # its folder is as it was; the model's other versions changed
                return self._other_task(model, entry) is None
            if files.fingerprint == entry.failed_files:
                return False  # unchanged since it failed: it would fail the same way
            if entry.retries >= max_retries:
                return False  # gave up (its error says so)
            if not entry.settled:
                entry.waiting = "its folder changed since it failed; retried once it stops changing"
                return False
            if now < entry.retry_at:
                entry.waiting = (
                    f"its folder changed since it failed; retry {entry.retries + 1} of "
                    f"{max_retries} in {entry.retry_at - now:.0f} s"
                )
                return False
            entry.retries += 1
            return True
        if not eager and not entry.settled:
            entry.waiting = "new; tried once its files are the same at the next scan"
            return False
        return True

    async def _load(self, model: ServedModel, entry: ModelVersion) -> bool:
        assert entry.files is not None
        tried_files = entry.files.fingerprint
        entry.state, entry.error, entry.waiting = VersionState.LOADING, None, None
        self._export_states(model)
        started = entry.loading_since = time.monotonic()
        try:
            if entry.files.error is not None:
                raise ValueError(entry.files.error)
            if (other := self._other_task(model, entry)) is not None:
                raise OtherTask(other)
            # Building a runtime reads its manifest, loading reads the SavedModel: a store thread.
            load = _in_daemon_thread(
                f"load:{model.name}/{entry.version}", self._build, model.name, entry
            )
            self._loads.add(load)
            load.add_done_callback(self._loads.discard)
            runtime = await asyncio.shield(load)  # a cancelled scan leaves the load to finish
        except Exception as exc:  # any failure leaves the previous version serving
            if isinstance(exc, VersionRefused):
                log.error("model %s version %d not loaded: %s", model.name, entry.version, exc)
            else:
                log.exception("model %s version %d failed to load", model.name, entry.version)
            entry.state, entry.error = VersionState.FAILED, f"{type(exc).__name__}: {exc}"
            entry.failed_files, entry.other_task = tried_files, isinstance(exc, OtherTask)
            entry.retry_at = (
                time.monotonic() + self.settings.load_retry_backoff_s * 2**entry.retries
            )
            if entry.other_task:
                entry.error += (
                    " (tried again when the model's versions of the other task have left its "
                    "folder)"
                )
            elif entry.retries >= self.settings.max_load_retries:
                entry.error += (
                    f" (no retry left of MAX_LOAD_RETRIES={self.settings.max_load_retries}; "
                    "an admin reload tries again)"
                )
            else:
                entry.error += " (retried when its folder changes)"
            return False
        entry.runtime, entry.state = runtime, VersionState.AVAILABLE
        log.info(
            "model %s version %d loaded and warm in %.1f s",
            model.name,
            entry.version,
            time.monotonic() - started,
        )
        return True

    @staticmethod
    def _other_task(model: ServedModel, entry: ModelVersion) -> str | None:
        """Why `entry` may not load: its task is another than the model's loaded versions' or,
        while none is loaded (at start-up), than the model's oldest version whose manifest reads
        (a version copied into the wrong model's folder would take over the model's name, and its
        callers would get 404 from their endpoint; a restart must not hand it the name the
        running service refused it); None when it may."""
        task = entry.files.task if entry.files is not None else None
        if task is None:
            return None
        # A loaded version whose folder left the store serves only until another loads: it
        # speaks for the model no more than for a restart.
        present = [v for v in model.loaded_versions() if not model.versions[v].deleted]
        for v in present:
            other = model.versions[v]
            theirs = task_and_family(other.runtime.manifest)[0] if other.runtime else None
            if v != entry.version and theirs is not None and task != theirs:
                return (
                    f"its task is {task}, and the model serves {theirs} (version {v}): a model's "
                    "versions share one task; publish it under another model name"
                )
        if present:
            return None
        for v in sorted(model.versions):
            files = model.versions[v].files
            if model.versions[v].deleted or files is None or files.task is None:
                continue  # not read yet, or its manifest does not read: says nothing of the model
            if v != entry.version and files.task != task:
                return (
                    f"its task is {task}, and the model's oldest version ({v}) is {files.task}: a "
                    "model's versions share one task; publish it under another model name (or "
                    f"remove the model's {files.task} versions)"
                )
            break
        return None

    def _build(self, name: str, entry: ModelVersion) -> Runtime:
        """Blocking: a runtime for `entry`, loaded and (if configured) warm; VersionRefused when
        its weights hold NaN or infinity (one pass over its variables, before the load)."""
        from models.saved_model import non_finite_variables

        bad, count = non_finite_variables(entry.path)
        if bad:
            # Jobs never export such weights (training.common.job.check_finite); a version copied
            # in by hand may hold them, and would answer NaN (null in JSON) to every request.
            raise VersionRefused(
                f"its weights hold NaN or infinity ({len(bad)} of its {count} floating-point "
                f"variables: {', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}); every "
                "answer would be NaN: export it again from a checkpoint before the training "
                "diverged"
            )
        runtime = self._factory(name, entry.version, entry.path, self.settings)
        runtime.metrics = self.metrics
        runtime.load()
        if self.settings.warmup:
            runtime.warmup()
        return runtime

    def _first_time(self, key: tuple[str, ...]) -> bool:
        """True the first time `key` is seen: one warning per odd entry, not one per poll."""
        if key in self._warned:
            return False
        self._warned.add(key)
        return True

    def _warn_once(self, key: tuple[str, ...], message: str, *args: Any) -> None:
        if self._first_time(key):
            log.warning(message, *args)

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
