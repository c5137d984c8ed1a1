"""Several versions of a model at once (VERSION_POLICY) and version labels (labels.json), with the
fake model and no server: the policy's parsing, the labels file's edge cases, which versions the
registry keeps loaded, and the `version` field of a request over HTTP."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import TypeAdapter, ValidationError

from models.store import LABELS_FILENAME, MAX_VERSION, parse_labels, version_folders
from service.errors import VersionNotFound
from service.metrics import Metrics
from service.registry import ModelRegistry
from service.schemas.common import VersionSelector
from service.settings import Settings, versions_to_load
from tests.service.fakes import fake_factory, write_version


# ----------------------------------------------------------------- VERSION_POLICY
@pytest.mark.parametrize(
    ("policy", "count"),
    [("latest", 1), ("all", None), ("latest:1", 1), ("latest:3", 3), (" Latest:2 ", 2),
     ("ALL", None), ("latest:010", 10)],
)  # fmt: skip
def test_version_policy_parses(policy: str, count: int | None) -> None:
    assert versions_to_load(policy) == count
    settings = Settings(version_policy=policy)
    assert settings.versions_to_load == count
    assert settings.version_policy == policy.strip().lower()


@pytest.mark.parametrize(
    "policy",
    ["", "newest", "latest:", "latest:0", "latest:-1", "latest:x", "latest:1.5", "latest:²",
     "all:2", "latest 2", "specific:1", "latest:1:2"],
)  # fmt: skip
def test_a_bad_version_policy_is_refused_with_the_choices(policy: str) -> None:
    with pytest.raises(ValueError, match="'latest', 'latest:N'"):
        versions_to_load(policy)
    with pytest.raises(ValidationError, match="VERSION_POLICY must be"):
        Settings(version_policy=policy)


def test_version_policy_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERSION_POLICY", "latest:2")
    assert Settings().versions_to_load == 2
    assert Settings.model_fields["version_policy"].default == "latest"  # today's behaviour


# ----------------------------------------------------------------- labels.json, parsed
def test_labels_parse() -> None:
    assert parse_labels('{"stable": 1, "canary": 2}') == {"stable": 1, "canary": 2}
    assert parse_labels("{}") == {}
    assert parse_labels('{"v1.2-rc_3": 7}') == {"v1.2-rc_3": 7}


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('{"stable": 1', "not JSON"),
        ("", "not JSON"),
        ("[1, 2]", "a JSON object of label -> version is wanted, not list"),
        ('"stable"', "not str"),
        ('{"stable": "1"}', "'1' is not a version number"),
        ('{"stable": 1.0}', "1.0 is not a version number"),
        ('{"stable": true}', "True is not a version number"),
        ('{"stable": 0}', "0 is not a version number"),
        ('{"stable": -2}', "-2 is not a version number"),
        ('{"stable": null}', "None is not a version number"),
        ('{"stable": [1]}', "[1] is not a version number"),
        ('{"2": 1}', "'2' is not a label"),
        ('{"": 1}', "'' is not a label"),
        ('{"a b": 1}', "'a b' is not a label"),
        ('{"../x": 1}', "is not a label"),
        ('{"stable": 1, "stable": 2}', "labels given twice: 'stable'"),
        ('{"stable": 9007199254740992}', "9007199254740992 is not a version number"),
    ],
)
def test_a_bad_labels_file_is_refused_with_the_reason(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=None) as raised:
        parse_labels(text)
    assert why in str(raised.value)


def test_labels_json_is_no_version_folder_and_no_warning(tmp_path: Path) -> None:
    (tmp_path / "1").mkdir()
    (tmp_path / LABELS_FILENAME).write_text("{}")
    assert version_folders(tmp_path) == ({1: tmp_path / "1"}, [])


def test_a_version_folder_past_the_largest_version_a_request_may_name_is_skipped(
    tmp_path: Path,
) -> None:
    """A request names versions up to 2**53 - 1 (the largest integer every JSON client keeps
    exactly); a folder past it (`date +%s%N`, nanoseconds) was loaded and served by default,
    with `X-Model-Version: 1796438764085629000`, and a request naming it got 422."""
    for name in ("1", str(MAX_VERSION), str(MAX_VERSION + 1), "1796438764085629000", "9" * 200):
        (tmp_path / name).mkdir()
    versions, skipped = version_folders(tmp_path)
    assert sorted(versions) == [1, MAX_VERSION]
    assert sorted(skipped) == sorted([str(MAX_VERSION + 1), "1796438764085629000", "9" * 200])


def test_the_store_and_the_requests_agree_on_the_largest_version() -> None:
    adapter = TypeAdapter(VersionSelector)
    assert adapter.validate_python(MAX_VERSION) == MAX_VERSION
    with pytest.raises(ValidationError):
        adapter.validate_python(MAX_VERSION + 1)


# ----------------------------------------------------------------- the registry
def registry(store: Path, policy: str = "latest") -> ModelRegistry:
    settings = Settings(model_store=store, poll_interval_s=0, version_policy=policy)
    return ModelRegistry(settings, Metrics(), fake_factory)


def states(reg: ModelRegistry, name: str = "words") -> dict[int, str]:
    return {v.version: v.state.value for v in reg.get(name).status().versions}


def write_labels(store: Path, labels: Any, name: str = "words") -> None:
    """As an operator should: a new file renamed over the old one."""
    text = labels if isinstance(labels, str) else json.dumps(labels)
    staging = store / name / f".{LABELS_FILENAME}.new"
    staging.write_text(text)
    staging.rename(store / name / LABELS_FILENAME)


def answering(reg: ModelRegistry, version: int | str | None, name: str = "words") -> int:
    return reg.get(name).runtime_for(version).version


async def settle(reg: ModelRegistry) -> None:
    """Two polls: a new version is tried once its files are the same at two scans."""
    await reg.scan()
    await reg.scan()


def test_all_loads_every_version_and_the_newest_serves(store: Path) -> None:
    async def run() -> None:
        reg = registry(store, "all")
        for v in (1, 2, 3):
            write_version(store, "words", v)
        await reg.start()
        assert states(reg) == {3: "AVAILABLE", 2: "AVAILABLE", 1: "AVAILABLE"}
        assert [answering(reg, v) for v in (None, 1, 2, 3)] == [3, 1, 2, 3]
        status = reg.get("words").status()
        assert status.serving_version == 3 and status.version_policy == "all"
        write_version(store, "words", 4)
        await settle(reg)
        assert states(reg) == {4: "AVAILABLE", 3: "AVAILABLE", 2: "AVAILABLE", 1: "AVAILABLE"}
        assert answering(reg, None) == 4
        # A version whose folder leaves is unloaded (another is loaded); asking for it is 404.
        shutil.rmtree(store / "words" / "1")
        await reg.scan()
        assert states(reg) == {4: "AVAILABLE", 3: "AVAILABLE", 2: "AVAILABLE"}
        with pytest.raises(VersionNotFound, match="version 1 is not loaded .no such version"):
            answering(reg, 1)
        await reg.stop()

    asyncio.run(run())


def test_latest_n_keeps_the_n_newest_that_load(store: Path) -> None:
    async def run() -> None:
        reg = registry(store, "latest:2")
        for v in (1, 2, 3):
            write_version(store, "words", v)
        await reg.start()
        assert states(reg) == {3: "AVAILABLE", 2: "AVAILABLE", 1: "UNLOADED"}
        with pytest.raises(VersionNotFound) as raised:
            answering(reg, 1)
        assert "version 1 is not loaded (UNLOADED: VERSION_POLICY=latest:2); loaded: 2, 3" in str(
            raised.value
        )
        assert raised.value.status_code == 404 and raised.value.code == "version_not_found"
        # A new version loads beside them; the oldest of the three then leaves.
        write_version(store, "words", 4)
        await settle(reg)
        assert states(reg) == {4: "AVAILABLE", 3: "AVAILABLE", 2: "UNLOADED", 1: "UNLOADED"}
        # One that fails to load leaves the two serving.
        write_version(store, "words", 5, fail_load=True)
        await settle(reg)
        assert states(reg)[5] == "FAILED" and reg.get("words").loaded_versions() == [3, 4]
        with pytest.raises(VersionNotFound, match="version 5 is not loaded .FAILED: RuntimeError"):
            answering(reg, 5)
        # Both folders of the loaded ones leave: the next older version takes their place.
        shutil.rmtree(store / "words" / "4")
        await reg.scan()
        assert reg.get("words").loaded_versions() == [2, 3]
        await reg.stop()

    asyncio.run(run())


def test_latest_loads_one_version_and_only_it_answers(store: Path) -> None:
    async def run() -> None:
        reg = registry(store)
        write_version(store, "words", 1)
        write_version(store, "words", 2)
        await reg.start()
        assert states(reg) == {2: "AVAILABLE", 1: "UNLOADED"}
        assert answering(reg, 2) == answering(reg, None) == 2
        with pytest.raises(VersionNotFound, match="UNLOADED: VERSION_POLICY=latest"):
            answering(reg, 1)
        with pytest.raises(VersionNotFound, match="version 9 is not loaded .no such version"):
            answering(reg, 9)
        await reg.stop()

    asyncio.run(run())


def test_labels_name_loaded_versions_and_follow_the_file(store: Path) -> None:
    async def run() -> None:
        reg = registry(store, "all")
        write_version(store, "words", 1)
        write_labels(store, {"stable": 1})
        await reg.start()
        model = reg.get("words")
        assert model.labels == {"stable": 1} and answering(reg, "stable") == 1
        with pytest.raises(VersionNotFound, match=r"no label 'canary' \(its labels: stable -> 1\)"):
            answering(reg, "canary")

        # The canary and its label arrive together: the label waits for the version to load,
        # and the labels in force stay as they were meanwhile.
        write_version(store, "words", 2)
        write_labels(store, {"stable": 1, "canary": 2})
        await reg.scan()
        status = model.status()
        assert status.labels == {"stable": 1} and states(reg)[2] == "UNLOADED"
        assert status.labels_error is not None
        assert "not applied yet" in status.labels_error
        assert "'canary' -> version 2 (UNLOADED: new; tried once" in status.labels_error
        await reg.scan()  # version 2 settles and loads; then the file applies
        status = model.status()
        assert status.labels == {"canary": 2, "stable": 1} and status.labels_error is None
        assert [(v.version, v.labels) for v in status.versions] == [
            (2, ["canary"]),
            (1, ["stable"]),
        ]
        assert [answering(reg, v) for v in ("stable", "canary", None)] == [1, 2, 2]

        # Promotion, then the file deleted: no labels.
        write_labels(store, {"stable": 2, "canary": 2})
        await reg.scan()
        assert answering(reg, "stable") == 2
        assert model.status().versions[0].labels == ["canary", "stable"]
        (store / "words" / LABELS_FILENAME).unlink()
        await reg.scan()
        assert model.labels == {} and model.status().labels_error is None
        with pytest.raises(VersionNotFound, match="no label 'stable' .it has none: labels.json"):
            answering(reg, "stable")
        await reg.stop()

    asyncio.run(run())


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('{"stable": 2', "not JSON"),
        ('{"stable": "2"}', "stable: '2' is not a version number"),
        ('{"stable": 2.0}', "stable: 2.0 is not a version number"),
        ('{"stable": 3}', "'stable' -> version 3 (no such version in the store)"),
        ('{"stable": 1, "canary": 7}', "'canary' -> version 7 (no such version in the store)"),
        (b"\xff\xfe", "not UTF-8"),
        ("x" * 70000, "larger than 65536 bytes"),
    ],
)
def test_a_bad_labels_file_keeps_the_last_good_labels_and_says_why(
    store: Path, text: str | bytes, why: str
) -> None:
    async def run() -> None:
        reg = registry(store, "all")
        write_version(store, "words", 1)
        write_version(store, "words", 2)
        write_labels(store, {"stable": 1, "canary": 2})
        await reg.start()
        model = reg.get("words")
        if isinstance(text, bytes):
            (store / "words" / LABELS_FILENAME).write_bytes(text)
        else:
            write_labels(store, text)
        for _ in range(2):
            await reg.scan()
            status = model.status()
            assert status.labels == {"canary": 2, "stable": 1}
            assert status.labels_error is not None and why in status.labels_error
            assert "the labels in force are those of the last good one" in status.labels_error
            assert answering(reg, "stable") == 1 and answering(reg, "canary") == 2
        write_labels(store, {"stable": 2})  # fixed: in force at the next scan
        await reg.scan()
        assert model.labels == {"stable": 2} and model.status().labels_error is None
        await reg.stop()

    asyncio.run(run())


def test_under_latest_a_label_may_name_only_the_serving_version(store: Path) -> None:
    async def run() -> None:
        reg = registry(store)
        write_version(store, "words", 1)
        write_version(store, "words", 2)
        write_labels(store, {"stable": 1})
        await reg.start()
        status = reg.get("words").status()
        assert status.labels == {}
        assert status.labels_error is not None
        assert "'stable' -> version 1 (UNLOADED: VERSION_POLICY=latest)" in status.labels_error
        write_labels(store, {"stable": 2})
        await reg.scan()
        assert answering(reg, "stable") == 2
        await reg.stop()

    asyncio.run(run())


def test_a_label_whose_version_is_unloaded_answers_404_and_the_status_says_so(
    store: Path,
) -> None:
    async def run() -> None:
        reg = registry(store, "all")
        write_version(store, "words", 1)
        write_version(store, "words", 2)
        write_labels(store, {"stable": 1})
        await reg.start()
        shutil.rmtree(store / "words" / "1")
        await reg.scan()
        with pytest.raises(
            VersionNotFound, match="label 'stable' names version 1, which is not loaded"
        ):
            answering(reg, "stable")
        error = reg.get("words").status().labels_error
        assert error == (
            "label 'stable' names version 1, which is not loaded (no such version in the store)"
        )
        await reg.stop()

    asyncio.run(run())


def test_the_only_loaded_version_serves_from_memory_when_its_folder_leaves(store: Path) -> None:
    async def run() -> None:
        reg = registry(store, "all")
        write_version(store, "words", 1)
        await reg.start()
        shutil.rmtree(store / "words" / "1")
        (store / "words" / "2").mkdir()  # keeps the model: a version being copied in
        await reg.scan()
        assert answering(reg, 1) == answering(reg, None) == 1
        await reg.stop()

    asyncio.run(run())


# ----------------------------------------------------------------- over HTTP
def embed(client: TestClient, **body: Any) -> Any:
    return client.post("/v1/embeddings", json={"input": "a b", **body})


def test_a_request_names_a_version_by_number_or_label(
    store: Path, make_client: Callable[..., TestClient]
) -> None:
    write_version(store, "words", 1)
    write_version(store, "words", 2)
    write_labels(store, {"stable": 1, "canary": 2})
    client = make_client(version_policy="all")
    for version, answered in [(None, 2), (1, 1), (2, 2), ("1", 1), ("stable", 1), ("canary", 2)]:
        r = embed(client, **({} if version is None else {"version": version}))
        assert r.status_code == 200, r.text
        assert r.json()["version"] == answered and r.headers["X-Model-Version"] == str(answered)
    model = client.get("/v1/models/words").json()
    assert model["labels"] == {"canary": 2, "stable": 1} and model["version_policy"] == "all"
    assert [(v["version"], v["state"], v["labels"]) for v in model["versions"]] == [
        (2, "AVAILABLE", ["canary"]),
        (1, "AVAILABLE", ["stable"]),
    ]
    assert client.get("/v1/models").json()["data"][0]["labels"] == {"canary": 2, "stable": 1}


@pytest.mark.parametrize(
    ("version", "detail"),
    [
        (3, "model 'words': version 3 is not loaded (no such version in the store); loaded: 1, 2"),
        ("beta", "model 'words' has no label 'beta' (its labels: canary -> 2, stable -> 1)"),
    ],
)
def test_an_unknown_version_or_label_is_404(
    store: Path, make_client: Callable[..., TestClient], version: Any, detail: str
) -> None:
    write_version(store, "words", 1)
    write_version(store, "words", 2)
    write_labels(store, {"stable": 1, "canary": 2})
    client = make_client(version_policy="all")
    r = embed(client, version=version)
    assert r.status_code == 404
    body = r.json()
    assert (body["detail"], body["code"]) == (detail, "version_not_found")
    assert (body["error"]["message"], body["error"]["param"]) == (detail, "version")


def test_a_version_not_loaded_by_the_policy_is_404_naming_its_state(
    store: Path, make_client: Callable[..., TestClient]
) -> None:
    write_version(store, "words", 1)
    write_version(store, "words", 2)
    client = make_client()
    r = embed(client, version=1)
    assert r.status_code == 404 and r.json()["code"] == "version_not_found"
    assert "UNLOADED: VERSION_POLICY=latest" in r.json()["detail"]


@pytest.mark.parametrize(
    "version", [0, -1, True, False, 1.5, 2.0, "", "2b", "stable!", "a" * 65, [1], {"n": 1}, 2**53]
)
def test_a_malformed_version_is_422(client: TestClient, version: Any) -> None:
    assert embed(client, version=version).status_code == 422


def test_the_version_field_is_in_every_inference_request_schema(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    for name in (
        "EmbeddingRequest",
        "QARequest",
        "GenerateRequest",
        "DensityScoreRequest",
        "DensitySampleRequest",
    ):
        version = schemas[name]["properties"]["version"]
        kinds = {option.get("type") for option in version["anyOf"]}
        assert kinds == {"integer", "string", "null"}, (name, version)


def test_an_admin_reload_reads_the_labels_at_once(
    store: Path, make_client: Callable[..., TestClient]
) -> None:
    write_version(store, "words", 1)
    write_version(store, "words", 2)
    client = make_client(version_policy="latest:2", admin_token="t")
    assert embed(client, version="stable").json()["code"] == "version_not_found"
    write_labels(store, {"stable": 1, "canary": 2})
    status = client.post("/v1/models/words/reload", headers={"Authorization": "Bearer t"}).json()
    assert status["labels"] == {"canary": 2, "stable": 1}
    assert embed(client, version="stable").json()["version"] == 1


def test_a_labels_path_that_is_no_file_is_reported_not_raised(store: Path) -> None:
    async def run() -> None:
        reg = registry(store, "all")
        write_version(store, "words", 1)
        (store / "words" / LABELS_FILENAME).mkdir()
        await reg.start()
        await reg.scan()
        error = reg.get("words").status().labels_error
        assert error is not None and "IsADirectoryError" in error, error
        assert answering(reg, None) == 1
        await reg.stop()

    asyncio.run(run())
