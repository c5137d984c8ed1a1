"""The job harness (`training.common.job`) with a job that counts: the steps it trains, where a
stopped run resumes, the checkpoints it leaves, the epoch lines, the export of averaged weights."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

import training.common.job as job_module
from training.common.ema import ExponentialMovingAverage
from training.common.job import Batch, Fit, Job, Manifest, Plan

STEPS_PER_EPOCH = 4


class CountingJob(Job):
    """Each step adds the step's number to one weight; an epoch is four steps."""

    prog, description = "count", "a job that counts"
    task, family, label = "embedding", "count", "count"
    defaults = {"epochs": 3, "checkpoint_every": 2}

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--stop-after-steps", type=int, default=None)

    def setup(self, args: argparse.Namespace, strategy: Any) -> Plan:
        self.args = args
        self.weight = tf.Variable(0.0)
        self.trained: list[int] = []
        self.exported_weight: float | None = None
        ema = ExponentialMovingAverage([self.weight], decay=0.5, warmup=False)
        self.ema = ema
        return Plan(STEPS_PER_EPOCH * args.epochs, ema, {"weight": self.weight, "ema": ema})

    def batches(self, start: int, stop: int) -> Any:
        for step in range(start, stop):
            epoch, index = divmod(step, STEPS_PER_EPOCH)
            yield Batch(step, epoch, index == STEPS_PER_EPOCH - 1, np.array([step]))

    def train(self, batch: Batch, fit: Fit) -> dict[str, float]:
        self.weight.assign_add(float(batch.rows[0]))
        self.ema.update()
        self.trained.append(batch.step)
        return {"weight": float(self.weight.numpy())}

    def scalars(self, fit: Fit) -> dict[str, float]:
        return {"weight": float(self.weight.numpy())}

    def end_epoch(self, epoch: int, fit: Fit) -> str:
        return f"epoch {epoch + 1}/{self.args.epochs}: weight {float(self.weight.numpy()):g}"

    def manifest(self, args: argparse.Namespace, fit: Fit) -> Manifest:
        self.exported_weight = float(self.weight.numpy())
        return Manifest(lambda folder: [], {"steps": fit.total_steps}, {}, {}, {})


def _argv(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "--data", "unused", "--name", "count", "--out", str(tmp_path / "store"),
        "--checkpoint-dir", str(tmp_path / "ckpt"), "--log-dir", "", "--no-progress", *extra,
    ]  # fmt: skip


def _checkpoints(tmp_path: Path) -> list[str]:
    paths = (tmp_path / "ckpt").glob("ckpt-*.index")
    return sorted((p.stem for p in paths), key=lambda stem: int(stem.split("-")[1]))


@pytest.fixture
def exports(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def export_version(store: Path, name: str, **kwargs: Any) -> Path:
        calls.append(kwargs)
        return store / name / "1"

    monkeypatch.setattr(job_module, "export_version", export_version)
    return calls


def test_a_stopped_run_resumes_where_it_stopped_and_exports_the_average(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], exports: list[dict[str, Any]]
) -> None:
    first = CountingJob()
    assert first.run(_argv(tmp_path, "--stop-after-steps", "5")) is None
    assert first.trained == [0, 1, 2, 3, 4]
    # Every 2 steps, and the stop.
    assert _checkpoints(tmp_path) == ["ckpt-2", "ckpt-4", "ckpt-5"]
    err = capsys.readouterr().err
    assert "epoch 1/3: weight 6" in err and "epoch 2/3" not in err
    assert "stopped after step 5/12" in err
    assert not exports

    second = CountingJob()
    path = second.run(_argv(tmp_path, "--resume"))
    assert path == tmp_path / "store" / "count" / "1"
    assert second.trained == list(range(5, 12))
    assert float(second.weight.numpy()) == sum(range(12))  # 0 + 1 + ... + 11: nothing twice
    err = capsys.readouterr().err
    assert "at step 5" in err and "epoch 2/3: weight 28" in err and "epoch 3/3: weight 66" in err
    assert _checkpoints(tmp_path)[-1] == "ckpt-12"
    # The export saw the averaged weight, and the trained one came back after it.
    assert second.exported_weight is not None and second.exported_weight < sum(range(12))
    assert float(second.weight.numpy()) == sum(range(12))
    assert len(exports) == 1 and exports[0]["task"] == "embedding"
    assert exports[0]["family"] == "count" and exports[0]["config"] == {"steps": 12}


def test_without_periodic_checkpoints_the_stop_is_saved(
    tmp_path: Path, exports: list[dict[str, Any]]
) -> None:
    job = CountingJob()
    argv = _argv(tmp_path, "--checkpoint-every", "0", "--epochs", "1")
    assert job.run(argv) is not None
    assert _checkpoints(tmp_path) == ["ckpt-4"]
    written = (tmp_path / "ckpt" / "ckpt-4.index").stat().st_mtime_ns
    # Resumed at the end: no step to take, nothing saved again, the export still happens.
    again = CountingJob()
    assert again.run([*argv, "--resume"]) is not None
    assert again.trained == [] and _checkpoints(tmp_path) == ["ckpt-4"] and len(exports) == 2
    assert (tmp_path / "ckpt" / "ckpt-4.index").stat().st_mtime_ns == written
