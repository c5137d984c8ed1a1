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
    next_token,
    next_token_inputs,
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


def test_next_inputs_read_the_passage_token_after_the_span(tokenizer: BertTokenizer) -> None:
    previous = build_sample(tokenizer, "张伟住在北京的医生。", "住在哪里？", "北京")
    sample = build_sample(
        tokenizer, "张伟住在北京的医生。", "住在哪里？", "北京", answer_input="next"
    )
    tokens = [tokenizer.id_to_token(i) for i in sample.token_ids]
    # slot 0 reads 京 (after 北) and predicts 京; slot 1 reads 的 (after 京) and predicts [SEP]
    assert tokens[-3:] == ["京", "的", "[SEP]"]
    assert sample.label_ids == previous.token_ids
    assert sample.token_ids[:-3] == previous.token_ids[:-3]
    assert (sample.segment_ids, sample.loss_mask) == (previous.segment_ids, previous.loss_mask)
    # past the passage's end a slot reads the passage's [SEP]; no answer is the same sample
    end = build_sample(tokenizer, "张伟住在北京", "住在哪里？", "北京", answer_input="next")
    assert [tokenizer.id_to_token(i) for i in end.token_ids[-3:]] == ["京", "[SEP]", "[SEP]"]
    none = build_sample(tokenizer, "张伟是医生。", "住在哪里？", None, answer_input="next")
    assert none.label_ids is None and none.token_ids[-1] == tokenizer.sep_id
    # an answer that is not a span keeps the previous-token inputs
    assert (
        build_sample(tokenizer, "张伟。", "哪里？", "北京", answer_input="next").label_ids is None
    )
    with pytest.raises(ValueError, match="answer_input"):
        build_sample(tokenizer, "张伟。", "哪里？", "北京", answer_input="last")


def test_next_inputs_read_mask_where_the_span_goes_on_differently() -> None:
    passage = [1, 2, 7, 9, 1, 5, 1, 2, 6]
    end, mask = 0, 99
    assert next_token_inputs(passage, [7, 9], end, mask) == [9, 1]
    # 1 goes on as 2, 5 and 2; 1 2 as 7 and 6: which one depends on the occurrence
    assert next_token_inputs(passage, [1, 2], end, mask) == [mask, mask]
    assert next_token_inputs(passage, [9, 1, 5], end, mask) == [1, 5, 1]
    # past the end: the passage's [SEP]; 2 goes on as 7 and 6
    assert next_token_inputs(passage, [2, 6], end, mask) == [mask, end]
    assert next_token_inputs(passage, [3], end, mask) is None
    assert next_token(np.asarray(passage), np.asarray([1, 2, 7]), end, mask) == 9
    assert next_token(passage, [], end, mask) == mask


def test_pad_samples_keeps_the_labels_of_next_samples(tokenizer: BertTokenizer) -> None:
    plain = build_sample(tokenizer, "张伟住在北京。", "住在哪里？", "北京")
    assert "label_ids" not in pad_samples([plain], tokenizer.pad_id)
    ahead = build_sample(tokenizer, "张伟住在北京。", "住在哪里？", "北京", answer_input="next")
    batch = pad_samples([ahead, plain], tokenizer.pad_id, pad_to=20)
    assert batch["label_ids"].shape == (2, 20)
    np.testing.assert_array_equal(batch["label_ids"][0, : len(ahead.token_ids)], ahead.label_ids)
    np.testing.assert_array_equal(batch["label_ids"][1], batch["token_ids"][1])
    assert not np.array_equal(batch["label_ids"][0], batch["token_ids"][0])
    # a batch without any answer still has them when asked (one training signature)
    none = build_sample(tokenizer, "张伟。", "住在哪里？", None, answer_input="next")
    labelled = pad_samples([none], tokenizer.pad_id, with_labels=True)
    np.testing.assert_array_equal(labelled["label_ids"], labelled["token_ids"])
