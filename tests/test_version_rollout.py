"""Versions and labels against a real `python -m service` process on 127.0.0.1: a canary rollout
under load, as TensorFlow Serving users run one (VERSION_POLICY=all; version 2 copied in beside
version 1; `canary` -> 2; traffic by label to both; `stable` moved to 2; version 1's folder
removed), with zero failed requests and every answer from the version its label named when it
was sent; and the `version` field of every inference route, streaming generation included."""

from __future__ import annotations

import json
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest

from models.store import LABELS_FILENAME
from tests.live_server import live_server_process, wait_until
from tests.tiny_store import export_tiny_jose, tiny_version

pytestmark = pytest.mark.slow

NAME = "words"
WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]
TEXT = "alpha gamma zeta"
# Polls often so that each step of the rollout shows within a second; a new version is loaded
# once the same files are seen at two polls.
SERVER = {"VERSION_POLICY": "all", "POLL_INTERVAL_S": "0.2"}
# Bounds of the traffic, whatever happens: at most this many requests and seconds.
MAX_REQUESTS = 6000
MAX_TRAFFIC_S = 150.0
WORKERS = 4


def write_labels(store: Path, labels: dict[str, int], name: str = NAME) -> float:
    """labels.json replaced atomically (a new file renamed over the old); returns when."""
    staging = store / name / f".{LABELS_FILENAME}.new"
    staging.write_text(json.dumps(labels))
    written = time.monotonic()
    staging.rename(store / name / LABELS_FILENAME)
    return written


def publish(source: Path, target: Path) -> None:
    """As the README says to copy a version in: beside as `.tmp-*`, then renamed into place."""
    staging = target.parent / f".tmp-{target.name}"
    shutil.copytree(source, staging)
    staging.rename(target)


def status(url: str, name: str = NAME) -> dict:
    return httpx.get(f"{url}/v1/models/{name}", timeout=10).json()


def embed(client: httpx.Client, url: str, version: int | str) -> httpx.Response:
    body = {"model": NAME, "input": TEXT, "method": "average", "version": version}
    return client.post(f"{url}/v1/embeddings", json=body, timeout=30)


@dataclass
class Answer:
    label: str
    sent: float
    received: float
    status: int
    version: int | None = None
    header: str | None = None
    vector: list[float] | None = None
    error: str | None = None


@dataclass
class Traffic:
    """WORKERS threads sending embedding requests by label (round-robin over `labels`), until
    stopped or past MAX_REQUESTS / MAX_TRAFFIC_S."""

    url: str
    labels: list[str]
    answers: list[Answer] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> list[threading.Thread]:
        self.started = time.monotonic()
        threads = [threading.Thread(target=self._work, args=(i,)) for i in range(WORKERS)]
        for thread in threads:
            thread.start()
        return threads

    def count(self, label: str | None = None) -> int:
        with self.lock:
            return sum(1 for a in self.answers if label is None or a.label == label)

    def _work(self, index: int) -> None:
        turn = index
        with httpx.Client() as client:
            while not self.stop.is_set():
                if self.count() >= MAX_REQUESTS or time.monotonic() - self.started > MAX_TRAFFIC_S:
                    return
                labels = list(self.labels)  # the main thread adds `canary` while this runs
                label = labels[turn % len(labels)]
                turn += 1
                sent = time.monotonic()
                try:
                    r = embed(client, self.url, label)
                except httpx.HTTPError as exc:
                    answer = Answer(label, sent, time.monotonic(), 0, error=repr(exc))
                else:
                    answer = Answer(label, sent, time.monotonic(), r.status_code)
                    if r.status_code == 200:
                        body = r.json()
                        answer.version, answer.vector = (
                            body["version"],
                            body["data"][0]["embedding"],
                        )
                        answer.header = r.headers.get("X-Model-Version")
                    else:
                        answer.error = r.text
                with self.lock:
                    self.answers.append(answer)


@dataclass
class LabelsChange:
    labels: dict[str, int]
    written: float  # the file renamed into place
    applied: float  # first seen in force in /v1/models (the server may have applied it earlier)


def wait_labels(url: str, labels: dict[str, int], written: float) -> LabelsChange:
    wait_until(lambda: status(url)["labels"] == labels, 60, f"labels {labels} in force")
    return LabelsChange(labels, written, time.monotonic())


def possible_versions(answer: Answer, history: list[LabelsChange]) -> set[int]:
    """The versions `answer.label` named at some moment between its sending and its answer: a
    change may have been in force from when its file was written until the next one was seen."""
    found = set()
    for i, change in enumerate(history):
        start = change.written
        end = history[i + 1].applied if i + 1 < len(history) else float("inf")
        if start <= answer.received and answer.sent <= end and answer.label in change.labels:
            found.add(change.labels[answer.label])
    return found


@pytest.fixture(scope="module")
def jose_versions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Versions 1 and 2 of a tiny JoSE model with different word vectors (seeds 0 and 1), so an
    answer's vector shows which version computed it."""
    root = tmp_path_factory.mktemp("jose-versions")
    for seed in (0, 1):
        export_tiny_jose(root, NAME, WORDS, {"kind": "basic", "lowercase": True}, seed=seed)
    return root / NAME


def test_a_canary_rollout_under_load_fails_no_request(jose_versions: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    publish(jose_versions / "1", store / NAME / "1")
    history = [LabelsChange({"stable": 1}, write_labels(store, {"stable": 1}), 0.0)]
    with live_server_process(store, log_path=tmp_path / "server.log", **SERVER) as (url, _):
        assert status(url)["labels"] == {"stable": 1}
        with httpx.Client() as client:
            reference = {1: embed(client, url, 1).json()["data"][0]["embedding"]}
        traffic = Traffic(url, ["stable"])
        threads = traffic.run()
        try:
            wait_until(lambda: traffic.count() >= 50, 60, "traffic under way")
            # The canary and its label together: the label waits until version 2 has loaded.
            publish(jose_versions / "2", store / NAME / "2")
            canary = {"stable": 1, "canary": 2}
            history.append(wait_labels(url, canary, write_labels(store, canary)))
            with httpx.Client() as client:
                reference[2] = embed(client, url, 2).json()["data"][0]["embedding"]
            assert not np.allclose(reference[1], reference[2])
            traffic.labels.append("canary")
            wait_until(lambda: traffic.count("canary") >= 100, 60, "canary traffic")

            promoted = {"stable": 2, "canary": 2}
            history.append(wait_labels(url, promoted, write_labels(store, promoted)))
            mark = traffic.count()
            wait_until(lambda: traffic.count() >= mark + 100, 60, "traffic on the promoted stable")

            # Version 1 leaves the store: unloaded while version 2 answers everything.
            shutil.rmtree(store / NAME / "1")
            wait_until(
                lambda: [v["version"] for v in status(url)["versions"]] == [2], 60, "v1 gone"
            )
            mark = traffic.count()
            wait_until(lambda: traffic.count() >= mark + 100, 60, "traffic after v1 left")
        finally:
            traffic.stop.set()
            for thread in threads:
                thread.join(timeout=60)
        final = status(url)
    answers = traffic.answers
    failed = [a for a in answers if a.status != 200]
    assert failed == [], failed[:5]
    assert final["labels"] == {"canary": 2, "stable": 2} and final["labels_error"] is None
    assert [(v["version"], v["state"]) for v in final["versions"]] == [(2, "AVAILABLE")]
    by_label: dict[tuple[str, int | None], int] = {}
    for a in answers:
        assert a.version in possible_versions(a, history), (a.label, a.version, a.sent, history)
        assert a.header == str(a.version)
        assert a.version is not None and np.allclose(a.vector, reference[a.version], atol=1e-6)
        by_label[(a.label, a.version)] = by_label.get((a.label, a.version), 0) + 1
    seconds = max(a.received for a in answers) - min(a.sent for a in answers)
    print(
        f"\n{len(answers)} requests in {seconds:.1f} s, {len(failed)} failed; by (label, version):"
    )
    print(dict(sorted(by_label.items())))
    # Both versions answered `stable`, only version 2 `canary`; none got lost in between.
    assert set(by_label) == {("stable", 1), ("stable", 2), ("canary", 2)}, by_label
    assert len(answers) < MAX_REQUESTS, "the traffic hit its bound before the rollout ended"


ROUTES = {  # kind of tiny model -> (path, request body)
    "embedding": ("/v1/embeddings", {"input": TEXT, "method": "average"}),
    "qa": ("/v1/qa", {"question": "张伟住在哪里？", "passages": ["张伟住在北京。"]}),
    "generation": (
        "/v1/generate",
        {"condition": {"label": "pos"}, "max_new_tokens": 3, "seed": 1},
    ),
    "density": ("/v1/density/score", {"inputs": [[0.1, 0.2]]}),
    "density-sample": ("/v1/density/sample", {"num_samples": 2, "seed": 1}),
}


def test_every_inference_route_takes_a_version_number_or_label(
    tmp_path_factory: pytest.TempPathFactory, jose_versions: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    names = {"qa": "reader", "generation": "writer", "density": "moons"}
    for kind, name in names.items():
        first = tiny_version(tmp_path_factory, kind, store, name)
        shutil.copytree(first, store / name / "2")
    names["embedding"] = NAME
    for v in ("1", "2"):
        shutil.copytree(jose_versions / v, store / NAME / v)
    for name in names.values():
        write_labels(store, {"stable": 1, "canary": 2}, name)
    # Small buckets and batches: eight versions are warmed up before the server is ready.
    env = {
        "VERSION_POLICY": "latest:2",
        "POLL_INTERVAL_S": "0",
        "MAX_BATCH_SIZE": "4",
        "LENGTH_BUCKETS": "16,32",
    }
    with live_server_process(store, log_path=tmp_path / "server.log", **env) as (url, _):
        for route, (path, body) in ROUTES.items():
            name = names[route.removesuffix("-sample")]
            model = status(url, name)
            assert model["labels"] == {"canary": 2, "stable": 1}, model
            for version, answered in [(None, 2), (1, 1), ("2", 2), ("stable", 1), ("canary", 2)]:
                asked = {"model": name, **body} | ({} if version is None else {"version": version})
                r = httpx.post(f"{url}{path}", json=asked, timeout=60)
                assert r.status_code == 200, (route, version, r.text)
                assert r.json()["version"] == answered, (route, version)
                assert r.headers["X-Model-Version"] == str(answered)
            for version in (3, "beta"):
                r = httpx.post(f"{url}{path}", json={"model": name, **body, "version": version})
                assert r.status_code == 404, (route, version, r.text)
                assert r.json()["code"] == "version_not_found"
            r = httpx.post(f"{url}{path}", json={"model": name, **body, "version": True})
            assert r.status_code == 422, (route, r.text)

        # Streaming generation: every chunk names the version its label chose.
        for label, answered in (("stable", 1), ("canary", 2)):
            asked = {"model": "writer", **ROUTES["generation"][1], "stream": True, "version": label}
            with httpx.stream("POST", f"{url}/v1/generate", json=asked, timeout=60) as r:
                assert r.status_code == 200 and r.headers["X-Model-Version"] == str(answered)
                events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
            assert events[-1] == "[DONE]" and len(events) > 1
            assert {json.loads(e)["version"] for e in events[:-1]} == {answered}
