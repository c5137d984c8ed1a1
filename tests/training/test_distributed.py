"""Data-parallel training: a global batch's shares, the options, and two workers on 127.0.0.1
training the generation job with MultiWorkerMirroredStrategy, whose export the service loads."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from tests.service.conftest import wait_ready
from training.common.distribute import make_strategy, share_of_batch, worker_count

ROOT = Path(__file__).resolve().parents[2]
GOOD = ["这家酒店很好，服务很好。", "房间干净，早餐不错！", "非常满意，下次还来。"]
BAD = ["房间很差，服务很差。", "早餐难吃，太失望了！", "再也不来了，后悔。"]


def test_shares_cover_the_batch_once() -> None:
    batch = np.arange(10)
    shares = [share_of_batch(batch, 3, i) for i in range(3)]
    assert [len(s) for s in shares] == [4, 3, 3]
    np.testing.assert_array_equal(np.concatenate(shares), batch)
    # A last batch smaller than the workers: every worker still gets a row to step with.
    assert [share_of_batch(np.array([7]), 2, i).tolist() for i in range(2)] == [[7], [7]]
    assert share_of_batch(batch, 1, 0) is batch
    with pytest.raises(ValueError, match="outside"):
        share_of_batch(batch, 2, 2)


def test_strategy_options(monkeypatch: pytest.MonkeyPatch) -> None:
    assert worker_count(make_strategy("default")) == 1
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        make_strategy("multiworker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="not JSON"):
        make_strategy("multiworker")
    with pytest.raises(ValueError, match="unknown strategy"):
        make_strategy("parameter-server")


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_train_and_the_chief_exports_a_servable_model(tmp_path: Path) -> None:
    data = tmp_path / "train.tsv"
    lines = [f"{t}\t1" for t in GOOD] + [f"{t}\t0" for t in BAD]
    data.write_text("\n".join(lines * 4) + "\n", encoding="utf-8")
    args = [
        "--data", str(data), "--out", str(tmp_path / "store"), "--name", "cln-mw",
        "--epochs", "2", "--batch-size", "8", "--max-length", "24",
        "--hidden-size", "16", "--num-layers", "1", "--num-heads", "2",
        "--intermediate-size", "32", "--label-embedding-size", "8",
        "--checkpoint-dir", str(tmp_path / "ckpt"), "--checkpoint-every", "2",
        "--log-dir", str(tmp_path / "runs"), "--no-progress", "--min-char-count", "1",
        "--strategy", "multiworker",
    ]  # fmt: skip
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    workers = []
    for index in range(2):
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
        env["TF_CONFIG"] = json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}}
        )
        workers.append(
            subprocess.Popen(
                [sys.executable, "-m", "training.generation", *args],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = []
    for worker in workers:
        try:
            out, err = worker.communicate(timeout=300)
        finally:
            for w in workers:
                if w.poll() is None:
                    w.kill()
        assert worker.returncode == 0, err[-3000:]
        outputs.append((out, err))

    # Only the chief (worker 0) printed an export, wrote checkpoints and TensorBoard logs.
    (chief_out, chief_err), (other_out, other_err) = outputs
    exported = Path(chief_out.strip())
    assert exported.parent == tmp_path / "store" / "cln-mw", chief_err[-2000:]
    assert other_out.strip() == "" and "worker 1 done" in other_err
    assert [p.name for p in (tmp_path / "store" / "cln-mw").iterdir()] == [exported.name]
    assert any((tmp_path / "ckpt").glob("ckpt-*.index")) and (tmp_path / "runs").exists()
    # The workers stepped together through 2 epochs of 3 global batches of 8 rows each.
    manifest = json.loads((exported / "manifest.json").read_text())
    assert manifest["metrics"]["steps"] == 6
    assert manifest["config"]["strategy"] == "multiworker"

    settings = Settings(model_store=tmp_path / "store", warmup=False)
    with TestClient(create_app(settings)) as client:
        wait_ready(client, timeout_s=60)
        r = client.post(
            "/v1/generate",
            json={"model": "cln-mw", "condition": {"label": "1"}, "max_new_tokens": 5, "seed": 3},
        )
        assert r.status_code == 200, r.text
        assert r.json()["samples"][0]["finish_reason"] in {"stop", "length"}
