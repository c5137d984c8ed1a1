"""Data-parallel training: a global batch's shares, the options, and two workers on 127.0.0.1
training the generation, density and embedding jobs with MultiWorkerMirroredStrategy, whose
exports the service loads."""

from __future__ import annotations

import json
import os
import re
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


def _two_workers(tmp_path: Path, module: str, args: list[str]) -> tuple[Path, str, str]:
    """Runs `python -m module args` as workers 0 and 1 of a MultiWorkerMirroredStrategy cluster
    on 127.0.0.1; checks that only the chief exported; returns the export and both logs."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    workers = []
    for index in range(2):
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
        task = {"type": "worker", "index": index}
        env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": task})
        command = [sys.executable, "-m", module, *args, "--strategy", "multiworker"]
        workers.append(
            subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = []
    try:
        for worker in workers:
            out, err = worker.communicate(timeout=300)
            assert worker.returncode == 0, err[-3000:]
            outputs.append((out, err))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    (chief_out, chief_err), (other_out, other_err) = outputs
    exported = Path(chief_out.strip())
    assert exported.is_dir(), chief_err[-2000:]
    assert other_out.strip() == "" and "worker 1 done; the chief exports" in other_err
    assert [p.name for p in exported.parent.iterdir()] == [exported.name]
    manifest = json.loads((exported / "manifest.json").read_text())
    assert manifest["config"]["strategy"] == "multiworker"
    return exported, chief_err, other_err


def _served(store: Path, path: str, body: dict) -> dict:
    settings = Settings(model_store=store, warmup=False)
    with TestClient(create_app(settings)) as client:
        wait_ready(client, timeout_s=60)
        r = client.post(path, json=body)
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]


@pytest.mark.slow
@pytest.mark.distributed
def test_two_workers_train_the_lm_and_the_chief_exports_a_servable_model(tmp_path: Path) -> None:
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
    ]  # fmt: skip
    exported, _, _ = _two_workers(tmp_path, "training.generation", args)
    # The workers stepped together through 2 epochs of 3 global batches of 8 rows each.
    manifest = json.loads((exported / "manifest.json").read_text())
    assert manifest["metrics"]["steps"] == 6
    assert any((tmp_path / "ckpt").glob("ckpt-*.index")) and (tmp_path / "runs").exists()
    body = {"model": "cln-mw", "condition": {"label": "1"}, "max_new_tokens": 5, "seed": 3}
    sample = _served(tmp_path / "store", "/v1/generate", body)["samples"][0]
    assert sample["finish_reason"] in {"stop", "length"}


@pytest.mark.slow
@pytest.mark.distributed
def test_two_workers_train_a_density_model(tmp_path: Path) -> None:
    args = [
        "--data", "builtin:moons", "--out", str(tmp_path / "store"), "--name", "moons-mw",
        "--epochs", "2", "--batch-size", "64", "--blocks", "2", "--hidden", "8",
        "--checkpoint-dir", str(tmp_path / "ckpt"), "--log-dir", "", "--no-progress",
        "--warmup-steps", "2", "--score-terms", "4", "--score-probes", "1",
        "--toy-samples", "256",
    ]  # fmt: skip
    exported, _, _ = _two_workers(tmp_path, "training.density", args)
    manifest = json.loads((exported / "manifest.json").read_text())
    assert manifest["metrics"]["steps"] == 8  # 2 epochs of 4 global batches of 64
    assert np.isfinite(manifest["metrics"]["valid_bits_per_dim"])
    scores = _served(tmp_path / "store", "/v1/density/score", {"inputs": [[0.5, -0.2]]})
    assert np.isfinite(scores["log_prob"][0])


@pytest.mark.slow
@pytest.mark.distributed
def test_two_workers_train_jose_embeddings(tmp_path: Path) -> None:
    from training.demo import demo_embedding_corpus

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(demo_embedding_corpus(n_docs=120, seed=1)) + "\n", "utf-8")
    args = [
        "--data", str(corpus), "--out", str(tmp_path / "store"), "--name", "jose-mw",
        "--tokenizer", "jieba", "--dim", "16", "--min-count", "1", "--epochs", "2",
        "--batch-size", "400", "--checkpoint-dir", str(tmp_path / "ckpt"), "--log-dir", "",
        "--no-progress", "--workers", "0",
    ]  # fmt: skip
    exported, chief_log, other_log = _two_workers(tmp_path, "training.jose", args)

    # The losses are summed across workers, so both log the same epoch losses.
    def epoch_losses(log: str) -> list[list[str]]:
        return [
            re.findall(r"loss ([0-9.]+)", line) for line in log.splitlines() if "epoch " in line
        ]

    assert epoch_losses(chief_log) == epoch_losses(other_log)
    assert len(epoch_losses(chief_log)) == 2
    manifest = json.loads((exported / "manifest.json").read_text())
    assert manifest["metrics"]["steps"] >= 2
    assert np.isfinite(manifest["metrics"]["final_word_document_loss"])
    body = {"input": ["手机 屏幕", "酒店 房间"]}
    vectors = [d["embedding"] for d in _served(tmp_path / "store", "/v1/embeddings", body)["data"]]
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
