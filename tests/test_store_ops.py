"""What operators do to a model store while the service runs, each against a real
`python -m service` process on 127.0.0.1: a version copied in by hand (not atomically), odd
folder names, the serving version's folder deleted, a manifest whose read hangs, and a request
that names no model where several could answer."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.live_server import live_server_process, wait_until
from tests.tiny_store import tiny_version

pytestmark = pytest.mark.slow

JOSE = "jose"
ADMIN = {"Authorization": "Bearer t"}
# Poll often, retry soon: the tests wait for what the registry does, never for fixed times.
POLLING = {"POLL_INTERVAL_S": "0.3", "LOAD_RETRY_BACKOFF_S": "0.5", "ADMIN_TOKEN": "t"}


@pytest.fixture(scope="module")
def jose_version(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One exported version of a tiny JoSE model (a folder to copy versions from)."""
    return tiny_version(tmp_path_factory, "embedding", tmp_path_factory.mktemp("store-ops"), JOSE)


def publish(source: Path, target: Path) -> Path:
    """As training jobs and the README say: copy beside as `.tmp-*`, then rename into place."""
    staging = target.parent / f".tmp-{target.name}"
    shutil.copytree(source, staging)
    return staging.rename(target)


def model(url: str, name: str = JOSE) -> dict:
    return httpx.get(f"{url}/v1/models/{name}", timeout=10).json()


def listed(url: str) -> list[str]:
    return [m["name"] for m in httpx.get(f"{url}/v1/models", timeout=10).json()["data"]]


def versions(url: str, name: str = JOSE) -> dict[int, dict]:
    return {v["version"]: v for v in model(url, name)["versions"]}


def embed(url: str, name: str = JOSE) -> httpx.Response:
    return httpx.post(f"{url}/v1/embeddings", json={"model": name, "input": ["好"]}, timeout=30)


def some_polls(count: int = 5) -> None:
    """Gives the poller time for about `count` scans (0.3 s apart). What follows asserts that
    something did not change, so a slower machine cannot make it pass wrongly."""
    time.sleep(0.3 * count)


def test_a_version_copied_in_by_hand_is_loaded_once_complete(
    jose_version: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    publish(jose_version, store / JOSE / "1")
    with live_server_process(store, **POLLING) as (url, _):
        # `mkdir 2`, then a pause, then `cp -a 1/. 2/`: the empty folder is not tried yet.
        (store / JOSE / "2").mkdir()
        wait_until(lambda: 2 in versions(url), 30, "version 2 listed")
        some_polls()
        v2 = versions(url)[2]
        assert v2["state"] == "UNLOADED", v2
        assert "not complete yet" in v2["error"] and "manifest.json" in v2["error"], v2
        shutil.copytree(jose_version, store / JOSE / "2", dirs_exist_ok=True)
        wait_until(lambda: model(url)["serving_version"] == 2, 60, "version 2 serving")
        assert embed(url).headers["X-Model-Version"] == "2"

        # A version that failed (a corrupt SavedModel) is tried again once its folder is fixed.
        staging = store / JOSE / ".tmp-3"
        shutil.copytree(jose_version, staging)
        (staging / "saved_model.pb").write_bytes(b"not a SavedModel")
        v3 = staging.rename(store / JOSE / "3")
        wait_until(lambda: versions(url).get(3, {}).get("state") == "FAILED", 60, "v3 FAILED")
        assert model(url)["serving_version"] == 2
        assert "retried when its folder changes" in versions(url)[3]["error"]
        shutil.copy2(jose_version / "saved_model.pb", v3 / "saved_model.pb")
        wait_until(lambda: model(url)["serving_version"] == 3, 60, "fixed version 3 serving")
        assert versions(url)[3]["state"] == "AVAILABLE"
        assert embed(url).headers["X-Model-Version"] == "3"


def test_readyz_names_models_none_of_whose_versions_loads(
    jose_version: Path, tmp_path: Path
) -> None:
    """`broken`: its only version fails (a corrupt SavedModel). `late`: its only version is an
    empty folder (a copy not begun). Neither holds the instance unready for ever: `broken` not
    at all, `late` for READY_GRACE_S; /readyz names both, with the reason."""
    store = tmp_path / "store"
    publish(jose_version, store / JOSE / "1")
    broken = publish(jose_version, store / "broken" / "1")
    (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
    (store / "late" / "1").mkdir(parents=True)
    with live_server_process(store, ready_timeout_s=120, READY_GRACE_S="3", **POLLING) as (url, _):
        r = httpx.get(f"{url}/readyz")
        assert r.status_code == 200 and r.json()["not_ready"] == [], r.text
        reasons = {u["model"]: u["reason"] for u in r.json()["unavailable"]}
        assert set(reasons) == {"broken", "late"}, reasons
        assert "every version failed to load: version 1:" in reasons["broken"], reasons
        assert "not complete yet" in reasons["late"] and "READY_GRACE_S" in reasons["late"]
        assert embed(url).status_code == 200
        assert embed(url, "broken").status_code == 503

        # The copy happens, by hand: `late` loads and leaves the list.
        shutil.copytree(jose_version, store / "late" / "1", dirs_exist_ok=True)
        wait_until(lambda: model(url, "late")["serving_version"] == 1, 60, "late serving")
        r = httpx.get(f"{url}/readyz")
        assert r.status_code == 200
        assert [u["model"] for u in r.json()["unavailable"]] == ["broken"], r.text


def test_odd_folder_names_are_skipped_once_and_never_stop_a_scan(
    jose_version: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    publish(jose_version, store / JOSE / "1")
    shutil.copytree(jose_version, store / JOSE / "²")  # str.isdigit() is true, int() raises
    shutil.copytree(jose_version, store / JOSE / "١٢")  # Arabic-Indic: int() reads 12
    (store / JOSE / "notes.txt").write_text("not a version")
    shutil.copytree(jose_version, store / "not a model name" / "1")
    log = tmp_path / "server.log"
    with live_server_process(store, ready_timeout_s=120, log_path=log, **POLLING) as (url, _):
        assert sorted(versions(url)) == [1]  # neither '²' nor '١٢' is a version
        assert listed(url) == [JOSE]
        # New versions still load, and the admin reload answers.
        publish(jose_version, store / JOSE / "2")
        wait_until(lambda: model(url)["serving_version"] == 2, 60, "version 2 serving")
        r = httpx.post(f"{url}/v1/models/{JOSE}/reload", headers=ADMIN, timeout=60)
        assert r.status_code == 200 and r.json()["serving_version"] == 2, r.text
        some_polls()
    text = log.read_text(encoding="utf-8")
    # One warning per odd entry, not one per poll.
    assert text.count("'\\xb2' is not a version folder") == 1, text[-3000:]
    assert text.count("'\\u0661\\u0662' is not a version folder") == 1, text[-3000:]
    assert text.count("'notes.txt' is not a version folder") == 1
    assert text.count("'not a model name' is not a model folder") == 1


def test_deleting_the_serving_version_keeps_it_answering_from_memory(
    jose_version: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    publish(jose_version, store / JOSE / "1")
    corrupt = store / JOSE / ".tmp-2"
    shutil.copytree(jose_version, corrupt)
    (corrupt / "saved_model.pb").write_bytes(b"not a SavedModel")
    corrupt.rename(store / JOSE / "2")
    with live_server_process(store, **POLLING) as (url, _):
        assert model(url)["serving_version"] == 1 and versions(url)[2]["state"] == "FAILED"
        # The serving version's folder deleted; the only other version is FAILED.
        shutil.rmtree(store / JOSE / "1")
        wait_until(lambda: "left the store" in (versions(url)[1]["error"] or ""), 30, "noticed")
        assert model(url)["serving_version"] == 1
        assert embed(url).status_code == 200 and httpx.get(f"{url}/readyz").status_code == 200
        # No version folder left at all: still listed, still answering.
        shutil.rmtree(store / JOSE / "2")
        wait_until(lambda: 2 not in versions(url), 30, "version 2 gone")
        some_polls()
        assert model(url)["serving_version"] == 1
        r = embed(url)
        assert r.status_code == 200 and r.headers["X-Model-Version"] == "1"
        # A new version takes over, and the deleted one leaves the list.
        publish(jose_version, store / JOSE / "3")
        wait_until(lambda: model(url)["serving_version"] == 3, 60, "version 3 serving")
        assert sorted(versions(url)) == [3]


def test_a_manifest_whose_read_hangs_does_not_freeze_the_server(
    jose_version: Path, tmp_path: Path
) -> None:
    """A FIFO as manifest.json: opening it blocks until a writer comes, as a read from a hung
    network filesystem does. /healthz, /v1/models and the other models keep answering, the
    stuck read is not started again at every poll, and SIGTERM still ends the process."""
    store = tmp_path / "store"
    publish(jose_version, store / JOSE / "1")
    settings = {**POLLING, "STORE_READ_TIMEOUT_S": "1"}
    with live_server_process(store, **settings) as (url, proc):
        for hung in (store / "hung" / "1", store / JOSE / "2"):
            hung.mkdir(parents=True)
            shutil.copy2(jose_version / "saved_model.pb", hung / "saved_model.pb")
            os.mkfifo(hung / "manifest.json")
        wait_until(lambda: "hung" in listed(url), 30, "hung listed")
        threads = len(os.listdir(f"/proc/{proc.pid}/task"))
        some_polls(count=10)
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
        note = versions(url, "hung")[1]["error"]
        assert "reading its folder has not returned" in note, note
        assert "has not returned" in versions(url)[2]["error"]
        r = httpx.get(f"{url}/readyz", timeout=5)  # a new model within READY_GRACE_S: held
        assert r.status_code == 503 and r.json()["not_ready"] == ["hung"], r.text
        assert "has not returned" in r.json()["unavailable"][0]["reason"]
        # One stuck thread per stuck read, not one more per poll.
        assert len(os.listdir(f"/proc/{proc.pid}/task")) < threads + 10
        # The other versions of the same model still load.
        publish(jose_version, store / JOSE / "3")
        wait_until(lambda: model(url)["serving_version"] == 3, 60, "version 3 serving")
        assert embed(url).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)


def test_a_request_naming_no_model_among_several_is_400_naming_them(
    jose_version: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    publish(jose_version, store / JOSE / "1")
    publish(jose_version, store / "jose-b" / "1")
    with live_server_process(store) as (url, _):
        r = httpx.post(f"{url}/v1/embeddings", json={"input": ["好"]})
        assert r.status_code == 400 and r.json()["code"] == "bad_input", r.text
        assert "jose, jose-b" in r.json()["detail"]
        assert embed(url, "jose-b").status_code == 200
        r = httpx.post(f"{url}/v1/qa", json={"question": "q", "passages": ["p"]})
        assert r.status_code == 404 and r.json()["code"] == "model_not_found"
