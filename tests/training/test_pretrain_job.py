"""training.pretrain: BERT's masking, packing, the job on tiny made-up text (the loss falls), and
its checkpoint folder as `training.qa --init-checkpoint` loads it (the same weights)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from safetensors.numpy import load_file

from models.bert.bert_backbone import BertBackbone, BertConfig
from models.bert.checkpoint import load_hf_folder, save_hf_folder
from models.bert.tokenizer import BertTokenizer
from models.qa.seq2seq import build_qa_model
from training.pretrain import (
    MaskedLM,
    PretrainJob,
    mask_tokens,
    pack_sequences,
    read_documents,
    train_pretrain,
)

PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4


def test_pack_sequences_joins_documents_with_sep_and_cuts_at_the_length():
    documents = [[10, 11, 12], [], [13, 14, 15, 16, 17], [18]]
    rows = pack_sequences(documents, seq_length=6, cls_id=CLS, sep_id=SEP)
    assert [r.tolist() for r in rows] == [
        [CLS, 10, 11, 12, SEP, SEP],  # body of 4: 10 11 12 [SEP]
        [CLS, 13, 14, 15, 16, SEP],
        [CLS, 17, SEP, 18, SEP],
    ]


def test_masking_follows_bert_15_percent_and_80_10_10():
    rng = np.random.default_rng(0)
    rows = [np.array([CLS, *rng.integers(5, 100, 198), SEP], np.int32) for _ in range(400)]
    batch = mask_tokens(rows, np.random.default_rng(1), 100, MASK, [PAD, UNK, CLS, SEP, MASK],
                        PAD, width=208, predictions=31)  # fmt: skip
    weights = batch["mlm_weights"]
    # 15% of the 198 ordinary tokens: 30 predictions a row, never a special token
    assert (weights.sum(axis=1) == 30).all()
    picked = batch["mlm_positions"][weights > 0]
    rows_of = np.repeat(np.arange(400), 30)
    originals = np.stack([np.pad(r, (0, 8)) for r in rows])
    assert (batch["mlm_ids"][weights > 0] == originals[rows_of, picked]).all()
    assert not np.isin(originals[rows_of, picked], [CLS, SEP]).any()
    now = batch["token_ids"][rows_of, picked]
    masked = (now == MASK).mean()
    kept = (now == originals[rows_of, picked]).mean()
    assert 0.77 < masked < 0.83 and 0.08 < kept < 0.12  # random replacements: the other ~10%
    # tokens not picked are untouched; padding after each row
    untouched = batch["token_ids"].copy()
    untouched[rows_of, picked] = originals[rows_of, picked]
    assert (untouched == originals).all()
    assert (batch["padding_mask"].sum(axis=1) == 200).all()


def test_read_documents_takes_text_tsv_and_qa_json(tmp_path):
    (tmp_path / "a.txt").write_text("第一篇。\n\n第二篇。\n", encoding="utf-8")
    (tmp_path / "b.tsv").write_text("很好\t1\n不好\t0\n", encoding="utf-8")
    squad = {"data": [{"paragraphs": [{"context": "张伟住在北京。", "qas": [
        {"id": "1", "question": "张伟住在哪里？", "answers": [{"text": "北京", "answer_start": 4}]},
        {"id": "2", "question": "谁住在北京？", "answers": [{"text": "张伟", "answer_start": 0}]},
    ]}]}]}  # fmt: skip
    (tmp_path / "c.json").write_text(json.dumps(squad, ensure_ascii=False), encoding="utf-8")
    assert list(read_documents(tmp_path)) == [
        "第一篇。", "第二篇。", "很好", "不好", "张伟住在北京。", "张伟住在哪里？", "谁住在北京？"
    ]  # fmt: skip


def _tiny_masked_lm(vocab_size: int) -> MaskedLM:
    config = BertConfig(vocab_size=vocab_size, hidden_size=16, num_layers=2, num_heads=2,
                        intermediate_size=32, max_position=40)  # fmt: skip
    model = MaskedLM(BertBackbone.from_bert_config(config, attention_mode="bidirectional"))
    rng = np.random.default_rng(0)
    for variable in model.weights:  # not the initial values, which a loader could leave alone
        variable.assign(rng.normal(0, 0.5, variable.shape).astype(np.float32))
    return model


def test_hf_folder_round_trip_keeps_every_weight(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"甲乙丙丁"]) + "\n",
                     encoding="utf-8")  # fmt: skip
    model = _tiny_masked_lm(9)
    save_hf_folder(tmp_path / "bert", model.backbone, model.mlm_head, vocab)
    loaded = load_hf_folder(tmp_path / "bert", with_mlm_head=True)
    assert loaded.missing == [] and loaded.config == model.config
    assert loaded.mlm_head is not None
    for mine, theirs in zip(
        model.backbone.weights + model.mlm_head.weights,
        loaded.backbone.weights + loaded.mlm_head.weights,
        strict=True,
    ):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy(), err_msg=mine.path)
    names = set(load_file(str(tmp_path / "bert" / "model.safetensors")))
    assert {"bert.embeddings.word_embeddings.weight", "cls.predictions.bias"} <= names


def _corpus(tmp_path):
    # Made-up text with a rule to learn: each line cycles through one of three 6-character
    # patterns, so a masked character follows from its neighbours.
    patterns = ["甲乙丙丁戊己", "子丑寅卯辰巳", "东南西北上下"]
    rng = np.random.default_rng(0)
    lines = []
    for _ in range(240):
        pattern = patterns[rng.integers(3)]
        start = int(rng.integers(6))
        lines.append("".join(pattern[(start + i) % 6] for i in range(int(rng.integers(10, 24)))))
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.slow
def test_job_learns_the_text_and_its_folder_loads_into_qa_with_the_same_weights(tmp_path, capsys):
    corpus = _corpus(tmp_path)
    folder = train_pretrain([
        "--data", str(corpus), "--name", "tiny-bert", "--out", str(tmp_path / "pretrained"),
        "--epochs", "12", "--batch-size", "8", "--seq-length", "32", "--max-position", "64",
        "--hidden-size", "32", "--num-layers", "1", "--num-heads", "2",
        "--intermediate-size", "64", "--lr", "5e-3", "--ema-decay", "0.9", "--dropout", "0",
        "--checkpoint-dir", str(tmp_path / "ckpt"), "--log-dir", "", "--no-progress",
        "--valid-fraction", "0.1",
    ])  # fmt: skip
    assert folder == tmp_path / "pretrained" / "tiny-bert"
    losses = [
        float(x) for x in re.findall(r"epoch \d+/12: loss ([0-9.]+)", capsys.readouterr().err)
    ]
    # 18 characters about equally frequent: a model of their frequencies alone stays at ln 18
    # (2.89); below it, the model reads a masked character's neighbours.
    assert len(losses) == 12 and losses[-1] < losses[0] - 0.3 and losses[-1] < np.log(18) - 0.2
    record = json.loads((folder / "pretrain.json").read_text(encoding="utf-8"))
    assert record["metrics"]["valid_mlm_accuracy"] > 2 / 18, record["metrics"]
    assert record["data"]["documents"] == 240

    # What `training.qa --init-checkpoint` builds: the folder's weights, unchanged.
    qa = build_qa_model(init_checkpoint=folder)
    tensors = load_file(str(folder / "model.safetensors"))
    np.testing.assert_array_equal(
        qa.backbone.token_embedding.embeddings.numpy(),
        tensors["bert.embeddings.word_embeddings.weight"],
    )
    np.testing.assert_array_equal(
        qa.backbone.transformer_layers[0].attention.query_dense.kernel.numpy(),
        tensors["bert.encoder.layer.0.attention.self.query.weight"].T,
    )
    np.testing.assert_array_equal(qa.mlm_head.output_bias.numpy(), tensors["cls.predictions.bias"])
    assert qa.config.max_position == 64 and qa.backbone.attention_mode == "unilm"
    tokenizer = BertTokenizer.from_folder(folder)
    assert tokenizer.vocab_size == qa.config.vocab_size
    assert tokenizer.token_to_id("甲") != tokenizer.unk_id


def test_init_checkpoint_is_refused():
    with pytest.raises(SystemExit):
        PretrainJob().parse_args(["--data", "x.txt", "--name", "n", "--init-checkpoint", "y"])


def test_pretraining_has_no_dropout_by_default():
    # Dropout's random masks were a fifth of a CPU step (a third with --jit) and a short run
    # underfits: bench/pretrain_step.py, docs/benchmarks.md "CMRC 2018".
    args = PretrainJob().parse_args(["--data", "x.txt", "--name", "n"])
    assert args.dropout == 0.0 and not args.jit
    assert PretrainJob().parse_args(["--data", "x.txt", "--name", "n", "--dropout", "0.1"]).dropout


@pytest.mark.slow
def test_the_step_is_traced_once_and_a_stopped_run_can_export(tmp_path, capsys):
    """One trace of the training step for the whole run (the epochs' last, smaller batches
    included: a retrace would rebuild the graph, an XLA compile with --jit); and
    `--export-at-stop` writes the averaged weights of a run stopped early, also when resumed at
    the checkpoint it stopped at."""
    corpus = _corpus(tmp_path)
    argv = [
        "--data", str(corpus), "--name", "tiny-bert", "--out", str(tmp_path / "pretrained"),
        "--epochs", "3", "--batch-size", "10", "--seq-length", "32", "--max-position", "64",
        "--hidden-size", "16", "--num-layers", "1", "--num-heads", "2",
        "--intermediate-size", "32", "--checkpoint-dir", str(tmp_path / "ckpt"),
        "--log-dir", "", "--no-progress", "--valid-fraction", "0.1",
    ]  # fmt: skip
    job = PretrainJob()
    assert job.run([*argv, "--stop-after-steps", "14"]) is None
    sequences = len(job.sequences)
    assert sequences % 10 and 14 > -(-sequences // 10)  # a short last batch was trained on
    assert job.train_step.experimental_get_tracing_count() == 1
    folder = PretrainJob().run([*argv, "--resume", "--stop-after-steps", "14", "--export-at-stop"])
    assert folder == tmp_path / "pretrained" / "tiny-bert"
    assert "at step 14" in capsys.readouterr().err
    record = json.loads((folder / "pretrain.json").read_text(encoding="utf-8"))
    assert record["metrics"]["steps_done"] == 14
    assert record["metrics"]["steps"] == 3 * -(-sequences // 10)
    assert build_qa_model(init_checkpoint=folder).config.hidden_size == 16
