"""The container files say what the README promises: every setting reaches the api service from
`.env`, the trainer fills an empty store first, the api is healthy on /readyz, a gpu profile
reserves an NVIDIA device, and the store is a volume that never enters the image."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

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
    # Fixed inside the container: the store volume's mount, and where the api listens (the
    # host's port is the `ports:` mapping, which PORT sets).
    fixed = {"MODEL_STORE": "/models", "HOST": "0.0.0.0", "PORT": "8000"}
    for service in ("api", "api-gpu"):
        environment = compose["services"][service]["environment"]
        assert set(environment) == SETTINGS, service
        assert {key: environment[key] for key in fixed} == fixed, service
        for key in SETTINGS - set(fixed):
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
        # One shell string: podman's Docker API splits a ["CMD", ...] list's arguments at spaces,
        # so `python -c "import ..."` never passed there (`make image-test`).
        kind, command = service["healthcheck"]["test"]
        assert kind == "CMD-SHELL" and "/readyz" in command
    for service in (trainer, api, gpu):
        assert any(v.endswith(":/models") for v in service["volumes"])
    assert gpu["profiles"] == ["gpu"] and gpu["build"]["args"]["VARIANT"] == "gpu"
    [device] = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]

    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "model_store/" in ignored and ".env" in ignored


def test_dockerfile_runs_as_a_user_with_a_healthcheck_and_the_variant_extra() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", dockerfile, flags=re.M)) == 2  # build and runtime stages
    assert re.search(r"^USER kexue$", dockerfile, flags=re.M)
    assert re.search(r"^HEALTHCHECK .*\n.*/healthz", dockerfile, flags=re.M)
    assert 'VOLUME ["/models"]' in dockerfile
    assert not re.search(r"^COPY .*model_store", dockerfile, flags=re.M)
    # TensorFlow comes from the extra named by VARIANT (cpu by default), nothing installed over it.
    assert re.search(r"^ARG VARIANT=cpu$", dockerfile, flags=re.M)
    assert 'pip install --no-cache-dir ".[${VARIANT}]"' in dockerfile
    assert "uninstall" not in dockerfile
    # A Debian base has python3 but no `python` until the venv exists.
    assert "RUN python3 -m venv /opt/venv" in dockerfile


def tensorflow_requirements(requirements: list[str]) -> list[str]:
    return [r for r in requirements if re.match(r"tensorflow(-cpu)?\b", r)]


def test_cpu_and_gpu_extras_each_bring_one_tensorflow_of_one_version() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    # Both builds install into one package folder: the base may pin neither, or `.[gpu]` puts
    # TensorFlow with CUDA on top of tensorflow-cpu.
    assert tensorflow_requirements(project["dependencies"]) == []
    extras = project["optional-dependencies"]
    [cpu] = tensorflow_requirements(extras["cpu"])
    [gpu] = tensorflow_requirements(extras["gpu"])
    assert cpu.startswith("tensorflow-cpu==") and gpu.startswith("tensorflow[and-cuda]==")
    for name, extra in extras.items():
        if name not in ("cpu", "gpu"):
            assert tensorflow_requirements(extra) == [], name
    version = gpu.split("==")[1]
    assert cpu.split("==")[1].split(";")[0].strip() == version


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
@pytest.mark.parametrize(
    ("variables", "venv", "extra"), [([], ".venv", "cpu"), (["TF=gpu"], ".venv-gpu", "gpu")]
)
def test_make_install_puts_each_tensorflow_in_a_venv_of_its_own(
    variables: list[str], venv: str, extra: str
) -> None:
    plan = subprocess.run(
        ["make", "-n", "-B", "install", *variables],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert plan.returncode == 0, plan.stderr
    assert f"{venv}/bin/pip install --quiet -e '.[{extra},dev,ray]'" in plan.stdout


def test_compose_builds_from_any_python_image_and_sets_the_api_descriptor_limit(
    compose: dict,
) -> None:
    services = compose["services"]
    for service in ("trainer", "api-gpu"):
        assert services[service]["build"]["args"]["PYTHON_IMAGE"] == (
            "${PYTHON_IMAGE:-python:3.11-slim-bookworm}"
        )
    assert "--out /models ${DEMO_ARGS:-};" in services["trainer"]["command"][-1]
    for service in ("api", "api-gpu"):
        nofile = services[service]["ulimits"]["nofile"]
        # scripts/image_test.py: 256 open connections take ~300 descriptors (README "Docker").
        assert nofile["soft"] == nofile["hard"] >= 1024
    dockerfile = (ROOT / "Dockerfile").read_text()
    [default] = re.findall(r"^ARG PYTHON_IMAGE=(.*)$", dockerfile, flags=re.M)
    assert default == "python:3.11-slim-bookworm"


def test_ci_runs_the_image_test_after_the_suite() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/container_host_setup.sh" in ci
    assert ci.index("make test") < ci.index("make image-test")
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^image-test:\n\t\$\(PYTHON\) scripts/image_test.py", makefile, flags=re.M)


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
@pytest.mark.parametrize("profile", [[], ["--profile", "gpu"]], ids=["default", "gpu"])
def test_docker_compose_validates_the_file(profile: list[str]) -> None:
    run = subprocess.run(
        ["docker-compose", *profile, "config", "--quiet"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr


def test_the_quick_demo_options_reach_the_qa_demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import training.demo
    import training.qa

    calls: list[dict] = []
    for name in ("train_jose_demo", "train_generation_demo", "train_density_demo"):
        monkeypatch.setattr(training.demo, name, lambda *args: None)
    monkeypatch.setattr(training.qa, "train_qa_demo", lambda *args, **kw: calls.append(kw))
    quick = ["--qa-epochs", "1", "--qa-questions", "800"]
    training.demo.main(["--out", str(tmp_path), "--jobs", "1", *quick])
    training.demo.main(
        ["--out", str(tmp_path), "--jobs", "1"]
    )  # `make run`'s demo: the QA demo's own
    assert calls == [
        {"epochs": 1, "train_questions": 800},
        {"epochs": training.qa.DEMO_EPOCHS, "train_questions": training.qa.DEMO_TRAIN_QUESTIONS},
    ]
