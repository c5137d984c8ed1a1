"""The container files say what the README promises: every setting reaches the api service from
`.env`, the trainer fills an empty store first, the api is healthy on /readyz, a gpu profile
reserves an NVIDIA device, and the store is a volume that never enters the image."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib

import pytest
import yaml

from service.settings import Settings
from tests.live_server import ROOT

SETTINGS = {name.upper() for name in Settings.model_fields}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_every_setting_is_in_env_example_and_passed_to_the_api(compose: dict) -> None:
    example = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^([A-Z_]+)=", example, flags=re.M))
    assert listed == SETTINGS - {"MODEL_STORE"}
    for service in ("api", "api-gpu"):
        environment = compose["services"][service]["environment"]
        assert set(environment) == SETTINGS, service
        assert environment["MODEL_STORE"] == "/models"
        for key in SETTINGS - {"MODEL_STORE"}:
            # Substituted from .env or the shell, with the default of .env.example.
            default = re.search(rf"^{key}=(.*)$", example, flags=re.M)
            assert default and environment[key] == f"${{{key}:-{default.group(1)}}}", key


def test_trainer_then_api_with_the_store_as_a_volume(compose: dict) -> None:
    services = compose["services"]
    trainer, api, gpu = services["trainer"], services["api"], services["api-gpu"]
    assert "training.demo --out /models" in trainer["command"][-1]
    assert 'if [ -z "$$(ls -A /models)" ]' in trainer["command"][-1]
    for service in (api, gpu):
        assert service["depends_on"]["trainer"]["condition"] == "service_completed_successfully"
        assert "/readyz" in " ".join(service["healthcheck"]["test"])
    for service in (trainer, api, gpu):
        assert any(v.endswith(":/models") for v in service["volumes"])
    assert gpu["profiles"] == ["gpu"] and gpu["build"]["args"]["VARIANT"] == "gpu"
    [device] = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]

    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "model_store/" in ignored and ".env" in ignored


def test_dockerfile_runs_as_a_user_with_a_healthcheck_and_the_pinned_tensorflow() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", dockerfile, flags=re.M)) == 2  # build and runtime stages
    assert re.search(r"^USER kexue$", dockerfile, flags=re.M)
    assert re.search(r"^HEALTHCHECK .*\n.*/healthz", dockerfile, flags=re.M)
    assert 'VOLUME ["/models"]' in dockerfile
    assert not re.search(r"^COPY .*model_store", dockerfile, flags=re.M)
    pinned = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    [tensorflow] = [d for d in pinned if d.startswith("tensorflow-cpu==")]
    version = tensorflow.split("==")[1].split(";")[0].strip()
    assert f"ARG TENSORFLOW_VERSION={version}" in dockerfile


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
@pytest.mark.parametrize("profile", [[], ["--profile", "gpu"]], ids=["default", "gpu"])
def test_docker_compose_validates_the_file(profile: list[str]) -> None:
    run = subprocess.run(
        ["docker-compose", *profile, "config", "--quiet"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
