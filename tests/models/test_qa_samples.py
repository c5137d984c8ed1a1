"""QA samples: `[CLS] passage [SEP] question [SEP] answer [SEP]` (bert4keras) on a tiny vocab."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.bert.tokenizer import BertTokenizer
from models.qa.samples import (
    build_prefix,
    build_sample,
    max_prefix_length,
    max_sample_length,
    pad_samples,
)

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"张伟住在北京的职业是医生哪里？。"]


@pytest.fixture
def tokenizer(tmp_path: Path) -> BertTokenizer:
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    return BertTokenizer(path)


def test_layout_segments_and_loss_mask(tokenizer: BertTokenizer) -> None:
    sample = build_sample(tokenizer, "张伟住在北京。", "住在哪里？", "北京")
    tokens = [tokenizer.id_to_token(i) for i in sample.token_ids]
    assert tokens == [
        "[CLS]", *"张伟住在北京。", "[SEP]", *"住在哪里？", "[SEP]", "北", "京", "[SEP]",
    ]  # fmt: skip
    # Source (up to the question's [SEP]) is segment 0, answer and its [SEP] segment 1.
    assert sample.segment_ids == [0] * 15 + [1] * 3
    # The loss covers exactly the target tokens (aligned with token_ids).
    assert sample.loss_mask == sample.segment_ids


def test_no_answer_teaches_an_immediate_sep(tokenizer: BertTokenizer) -> None:
    for answer in (None, ""):
        sample = build_sample(tokenizer, "张伟是医生。", "住在哪里？", answer)
        prefix, _ = build_prefix(tokenizer, "张伟是医生。", "住在哪里？")
        assert sample.token_ids == [*prefix, tokenizer.sep_id]
        assert sample.loss_mask == [0] * len(prefix) + [1]
        assert sample.segment_ids[-1] == 1


def test_prefix_is_the_sample_without_its_target(tokenizer: BertTokenizer) -> None:
    ids, segments = build_prefix(tokenizer, "张伟住在北京。", "住在哪里？")
    sample = build_sample(tokenizer, "张伟住在北京。", "住在哪里？", "北京")
    assert sample.token_ids[: len(ids)] == ids
    assert segments == [0] * len(ids)
    assert ids[-1] == tokenizer.sep_id


def test_each_part_is_cut_to_its_limit(tokenizer: BertTokenizer) -> None:
    sample = build_sample(tokenizer, "张伟住在北京。" * 10, "住在哪里？" * 10, "北京" * 10, 8, 4, 3)
    assert len(sample.token_ids) == max_sample_length(8, 4, 3) == 8 + 4 + 3 + 4
    ids, _ = build_prefix(tokenizer, "张伟住在北京。" * 10, "住在哪里？" * 10, 8, 4)
    assert len(ids) == max_prefix_length(8, 4)
    assert sum(sample.loss_mask) == 3 + 1


def test_pad_samples(tokenizer: BertTokenizer) -> None:
    long = build_sample(tokenizer, "张伟住在北京。", "住在哪里？", "北京")
    short = build_sample(tokenizer, "张伟", "哪里", None)
    batch = pad_samples([long, short], tokenizer.pad_id, pad_to=20)
    assert {k: v.shape for k, v in batch.items()} == {
        k: (2, 20) for k in ("token_ids", "segment_ids", "padding_mask", "loss_mask")
    }
    n = len(short.token_ids)
    np.testing.assert_array_equal(batch["token_ids"][1, :n], short.token_ids)
    assert (batch["token_ids"][1, n:] == tokenizer.pad_id).all()
    assert batch["padding_mask"][1].sum() == n
    assert batch["loss_mask"][0].sum() == 3
