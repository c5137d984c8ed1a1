"""Ray Serve deployment options from SERVE_* settings, and deploy/serve.yaml against Ray's own
schema (the live deployment is tests/test_ray_serve.py)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

pytest.importorskip("ray.serve")

from ray.serve.schema import ServeDeploySchema  # noqa: E402

from service.ray_app import DEPLOYMENT_NAME, RayServeSettings, build_app  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def test_fixed_replicas_and_resources_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SERVE_REPLICAS", "3")
    monkeypatch.setenv("SERVE_GPUS_PER_REPLICA", "0.5")
    options = RayServeSettings().deployment_options()
    assert options["num_replicas"] == 3 and "autoscaling_config" not in options
    assert options["ray_actor_options"] == {"num_cpus": 1.0, "num_gpus": 0.5}
    assert options["name"] == DEPLOYMENT_NAME


def test_autoscaling_when_both_bounds_are_set() -> None:
    options = RayServeSettings(min_replicas=1, max_replicas=4).deployment_options()
    assert "num_replicas" not in options
    assert options["autoscaling_config"] == {
        "min_replicas": 1,
        "max_replicas": 4,
        "target_ongoing_requests": 16.0,
    }
    with pytest.raises(ValueError, match="MIN_REPLICAS exceeds"):
        RayServeSettings(min_replicas=5, max_replicas=4).deployment_options()
    with pytest.raises(ValueError):
        RayServeSettings(replicas=0)


def test_application_builder_takes_serve_run_arguments() -> None:
    deployment = build_app({"replicas": "2", "max_ongoing_requests": "8"})._bound_deployment
    assert deployment.num_replicas == 2 and deployment.max_ongoing_requests == 8


def test_serve_config_file_is_valid_and_points_at_the_app() -> None:
    config = ServeDeploySchema.model_validate(
        yaml.safe_load((ROOT / "deploy" / "serve.yaml").read_text())
    )
    (application,) = config.applications
    module, attribute = application.import_path.split(":")
    assert hasattr(importlib.import_module(module), attribute)
    assert [d.name for d in application.deployments] == [DEPLOYMENT_NAME]
    assert "MODEL_STORE" in application.runtime_env["env_vars"]
