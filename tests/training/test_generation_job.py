"""The generation job: data formats, cutting long texts, a tiny run that stops, resumes and exports
a model the service can decode, and the evaluation's metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.bert.lm_reader import SavedModelLMStepModel
from models.bert.tokenizer import BertTokenizer
from models.generation.data import cut_text, label_names, read_conditional_texts
from models.generation.decoding import generate, make_rows
from models.generation.sampling import SamplingParams
from models.store import REQUIRED_MANIFEST_KEYS
from tests.tiny_store import load_in_runtime
from training.generation import train_generation
from training.generation_eval import distinct_n, evaluate_generation

GOOD = ["这家酒店很好，服务很好。", "房间干净，早餐不错！", "非常满意，下次还来。"]
BAD = ["房间很差，服务很差。", "早餐难吃，太失望了！", "再也不来了，后悔。"]


def _labelled(path: Path, repeat: int = 4) -> Path:
    lines = [f"{t}\t1" for t in GOOD] + [f"{t}\t0" for t in BAD]
    path.write_text("\n".join(lines * repeat) + "\n", encoding="utf-8")
    return path


def _args(tmp_path: Path, data: Path, *extra: str) -> list[str]:
    return [
        "--data", str(data), "--out", str(tmp_path / "store"), "--name", "cln-tiny",
        "--epochs", "2", "--batch-size", "8", "--max-length", "24",
        "--hidden-size", "16", "--num-layers", "1", "--num-heads", "2",
        "--intermediate-size", "32", "--label-embedding-size", "8",
        "--checkpoint-dir", str(tmp_path / "ckpt"), "--checkpoint-every", "2",
        "--log-dir", "", "--no-progress", "--min-char-count", "1", *extra,
    ]  # fmt: skip


def test_reader_takes_tsv_labels_and_json_vectors(tmp_path: Path) -> None:
    tsv = tmp_path / "a.tsv"
    tsv.write_text("好\tpos\n\n有\t制表符\tneg\n", encoding="utf-8")
    texts = read_conditional_texts(tsv)
    assert [(t.text, t.label) for t in texts] == [("好", "pos"), ("有\t制表符", "neg")]
    assert label_names(texts) == ["neg", "pos"]
    assert label_names(read_conditional_texts(_labelled(tmp_path / "b.tsv"))) == ["0", "1"]
    jsonl = tmp_path / "v.jsonl"
    jsonl.write_text('{"text": "好", "vector": [1, 2]}\n{"text": "坏", "vector": [0, 1]}\n')
    assert read_conditional_texts(jsonl)[1].vector == (0.0, 1.0)


@pytest.mark.parametrize(
    "content",
    ["no tab here\n", "text\t\n", '{"text": "a", "vector": [1]}\n{"text": "b", "vector": [1, 2]}\n',
     '{"text": "a"}\n'],
)  # fmt: skip
def test_reader_names_the_bad_line(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.txt:\d"):
        read_conditional_texts(path)


def test_long_texts_are_cut_after_sentence_punctuation() -> None:
    text = "第一句很短。第二句也不长！第三句稍微长一点点？最后"
    pieces = cut_text(text, 13)
    assert "".join(pieces) == text
    assert pieces == ["第一句很短。第二句也不长！", "第三句稍微长一点点？最后"]
    assert all(len(p) <= 13 for p in cut_text("没有标点的一个很长很长很长的句子" * 3, 10))
    assert cut_text("  ", 10) == []


def test_job_exports_labels_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = _labelled(tmp_path / "train.tsv")
    valid = _labelled(tmp_path / "valid.tsv", repeat=1)
    assert train_generation(_args(tmp_path, data, "--stop-after-steps", "2")) is None
    capsys.readouterr()
    path = train_generation(_args(tmp_path, data, "--resume", "--valid", str(valid)))
    assert "at step 2" in capsys.readouterr().err
    assert path is not None
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    for key in (*REQUIRED_MANIFEST_KEYS, "labels", "max_length", "tokenizer", "sampling"):
        assert key in manifest
    assert load_in_runtime(path).labels == ["0", "1"]  # the store's round trip
    assert manifest["task"] == "generation" and manifest["family"] == "cln-lm"
    assert manifest["labels"] == ["0", "1"] and "condition_dim" not in manifest
    assert {"prefill", "step", "label_condition"} <= set(manifest["signatures"])
    perplexity = manifest["metrics"]["valid_perplexity"]
    assert set(perplexity) == {"0", "1"} and all(1 < p < 1e4 for p in perplexity.values())

    model = SavedModelLMStepModel(path)
    tokenizer = BertTokenizer(path / manifest["tokenizer"]["vocab"], lowercase=True)
    rows = make_rows(tokenizer, model.label_condition([1])[0], 3, 5, SamplingParams(), seed=1)
    generate(model, tokenizer, rows)
    assert all(1 <= len(r.new_ids) <= 5 or r.finish_reason == "stop" for r in rows)


def test_vector_conditioned_job(tmp_path: Path) -> None:
    data = tmp_path / "v.jsonl"
    records = [{"text": t, "vector": [float(i % 2), 1.0, -1.0]} for i, t in enumerate(GOOD + BAD)]
    data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n")
    path = train_generation(_args(tmp_path, data, "--epochs", "1"))
    assert path is not None
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["condition_dim"] == 3 and "labels" not in manifest
    assert load_in_runtime(path).condition_dim == 3
    assert SavedModelLMStepModel(path).condition_size == 3


def test_distinct_n_counts_unique_character_ngrams() -> None:
    assert distinct_n(["abab", "ab"], 1) == 2 / 6
    assert distinct_n(["abab", "ab"], 2) == 2 / 4
    assert distinct_n([""], 2) == 0.0


def test_evaluation_reports_fidelity_and_perplexity(tmp_path: Path) -> None:
    data = _labelled(tmp_path / "train.tsv", repeat=6)
    path = train_generation(_args(tmp_path, data, "--epochs", "1"))
    assert path is not None
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    model = SavedModelLMStepModel(path)
    tokenizer = BertTokenizer(path / "assets" / "vocab.txt", lowercase=True)
    texts = read_conditional_texts(data)
    metrics, samples = evaluate_generation(
        model, tokenizer, manifest["labels"], texts, texts, 24, 4, SamplingParams(top_k=5)
    )
    assert set(samples) == {"0", "1"} and all(len(v) == 4 for v in samples.values())
    assert metrics["classifier_valid_accuracy"] == 1.0
    assert all(0 <= f <= 1 for f in metrics["label_fidelity"].values())
    assert (
        0 < metrics["distinct_1"] <= 1 and np.isfinite(list(metrics["perplexity"].values())).all()
    )
