"""The match-length "exact match" feature (`models.bert.overlap.match_length_overlap`,
`--overlap-feature ngram`): lengths against a plain-Python reference, the bigram marks as its
lengths of 2 and more, and QA models that read it (cached decoding equal to full recomputation,
the SavedModel computing it itself, a re-export keeping it, a zero table giving the plain model)."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from models.bert.overlap import bigram_overlap, match_length_overlap
from models.qa.kv_cache import KerasStepModel
from models.qa.seq2seq import UniLMSeq2Seq, build_qa_model, small_qa_config
from tests.models.test_qa_cache import (
    MAX_ANSWER_TOKENS,
    RANDOM_WEIGHT_STD,
    SEP,
    SEP_BIAS,
    VOCAB_SIZE,
    CachedScorer,
    FullScorer,
    assert_same_decoding,
    beam_search,
    make_sep_likely,
    pad,
)
from tests.models.test_qa_overlap import (
    CLS,
    assert_version_and_reexport_decode_as_keras,
    ids,
    overlap_prefixes,
)

CAP = 8


def match_length_reference(
    first: list[int], second: list[int], cap: int
) -> tuple[list[int], list[int]]:
    """For each token, the longest substring of its part covering it that the other part also
    holds (capped), by brute force: the test's reference."""

    def holds(ids: list[int], sub: list[int]) -> bool:
        return any(ids[k : k + len(sub)] == sub for k in range(len(ids) - len(sub) + 1))

    def lengths(ids: list[int], other: list[int]) -> list[int]:
        out = []
        for i in range(len(ids)):
            best = 0
            for start in range(i + 1):
                for end in range(i + 1, len(ids) + 1):
                    if end - start > best and holds(other, ids[start:end]):
                        best = end - start
            out.append(min(best, cap))
        return out

    return lengths(first, second), lengths(second, first)


def lengths_of(passage: str, question: str, answer: str = "", cap: int = CAP) -> list[int]:
    source = [CLS, *ids(passage), SEP, *ids(question), SEP]
    target = [*ids(answer), SEP] if answer else []
    row, segments = source + target, [0] * len(source) + [1] * len(target)
    out = match_length_overlap(tf.constant([row]), tf.constant([segments]), SEP, cap)
    return [int(x) for x in out.numpy()[0]]


def test_lengths_tell_the_whole_name_from_a_like_name() -> None:
    passage, question = "张芳住在上海。李伟住在北京。张伟住在北京。", "张伟住在哪里？"
    out = lengths_of(passage, question, answer="北京")
    p = out[1 : 1 + len(passage)]
    q = out[2 + len(passage) : 2 + len(passage) + len(question)]
    assert p[0:4] == [1, 0, 2, 2]  # 张芳住在: 住在, and 张 alone (of 张伟)
    assert p[7:11] == [0, 3, 3, 3]  # 李伟住在: 伟住在, 3 long; 李 not in the question
    assert p[14:18] == [4, 4, 4, 4]  # 张伟住在: the whole 4
    assert q == [4, 4, 4, 4, 0, 0, 0]
    # [CLS], the [SEP]s and the answer (segment 1) get nothing.
    assert out[0] == out[1 + len(passage)] == 0 and out[-3:] == [0, 0, 0]
    assert (p, q) == match_length_reference(ids(passage), ids(question), CAP)
    # A single common character is 1 (the bigram marks never see it).
    assert lengths_of("李娜住。", "张伟住在哪里？")[1:5] == [0, 0, 1, 0]


def test_lengths_are_capped() -> None:
    passage = question = "张伟住在北京。"
    assert lengths_of(passage, question, cap=3)[1:8] == [3] * 7
    assert lengths_of(passage, question, cap=CAP)[1:8] == [7] * 7


def test_lengths_match_the_reference_and_the_bigram_marks_on_random_rows() -> None:
    """Random rows over a small alphabet (many repeats), a target segment and padding after."""
    rng = np.random.default_rng(0)
    rows, segments, expected = [], [], []
    for _ in range(40):
        first = rng.integers(5, 9, int(rng.integers(1, 14))).tolist()
        second = rng.integers(5, 9, int(rng.integers(1, 9))).tolist()
        source = [CLS, *first, SEP, *second, SEP]
        rows.append(source + [7, 7, SEP])
        segments.append([0] * len(source) + [1, 1, 1])
        p, q = match_length_reference(first, second, 5)
        expected.append([0, *p, 0, *q, 0, 0, 0, 0])
    width = max(len(r) for r in rows)
    batch = np.array([r + [0] * (width - len(r)) for r in rows])
    segment_batch = np.array([s + [0] * (width - len(s)) for s in segments])
    out = match_length_overlap(tf.constant(batch), tf.constant(segment_batch), SEP, 5).numpy()
    marks = bigram_overlap(tf.constant(batch), tf.constant(segment_batch), SEP).numpy()
    for row, want, got, mark in zip(rows, expected, out, marks, strict=True):
        assert got[: len(row)].tolist() == want
        assert not got[len(row) :].any()
        np.testing.assert_array_equal(mark, (got >= 2).astype(np.float32))


def ngram_model(seed: int = 0, max_position: int = 48) -> UniLMSeq2Seq:
    """`test_qa_cache.tiny_model` with the match-length feature, its table random too."""
    keras.utils.set_random_seed(seed)
    config = small_qa_config(
        VOCAB_SIZE, max_position, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32
    )
    model = build_qa_model(config, overlap_sep_id=SEP, overlap_max_length=4)
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        if len(variable.shape) == 2:
            variable.assign(rng.normal(0.0, RANDOM_WEIGHT_STD, variable.shape).astype(np.float32))
    make_sep_likely(model, 0.0)
    bias = model.mlm_head.output_bias.numpy()
    bias[0] = -100.0  # never [PAD] as an answer token (the reference scorer's padding)
    model.mlm_head.output_bias.assign(bias)
    return model


def _inputs(rows: list[list[int]]) -> dict[str, np.ndarray]:
    batch = pad(rows)
    return {
        "token_ids": batch,
        "segment_ids": np.zeros_like(batch),
        "padding_mask": (batch != 0).astype(np.int32),
    }


def test_a_zero_table_gives_the_plain_model_and_the_config_round_trips(tmp_path: Path) -> None:
    model = ngram_model()
    table = model.backbone.embeddings.overlap_lengths
    assert tuple(table.shape) == (4, model.config.hidden_size)
    inputs = _inputs(overlap_prefixes())
    expected = model(inputs).numpy()
    config = model.backbone.get_config()
    assert config["overlap_sep_id"] == SEP and config["overlap_max_length"] == 4
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.backbone.overlap_max_length == 4
    np.testing.assert_allclose(loaded(inputs).numpy(), expected, atol=1e-5)
    plain = build_qa_model(model.config)
    for target, source in zip(
        plain.weights, [w for w in model.weights if "overlap" not in w.path], strict=True
    ):
        target.assign(source)
    assert not np.allclose(plain(inputs).numpy(), expected, atol=1e-3)
    table.assign(np.zeros(table.shape, np.float32))
    np.testing.assert_allclose(model(inputs).numpy(), plain(inputs).numpy(), atol=1e-5)
    # A fresh table starts at zero; the bigram model's config has no cap.
    fresh = build_qa_model(model.config, overlap_sep_id=SEP, overlap_max_length=4)
    assert not np.any(fresh.backbone.embeddings.overlap_lengths.numpy())
    bigram = build_qa_model(model.config, overlap_sep_id=SEP)
    assert "overlap_max_length" not in bigram.backbone.get_config()


@pytest.mark.parametrize("beam_size", [1, 3])
def test_cached_decoding_with_match_lengths_equals_full_recomputation(beam_size: int) -> None:
    model = ngram_model(seed=1)
    if beam_size > 1:
        make_sep_likely(model, SEP_BIAS)
    step_model = KerasStepModel(model, MAX_ANSWER_TOKENS)
    prefixes = overlap_prefixes(seed=1)
    cached = beam_search(CachedScorer(step_model, prefixes), 3, beam_size, MAX_ANSWER_TOKENS)
    full = beam_search(FullScorer(step_model, prefixes), 3, beam_size, MAX_ANSWER_TOKENS)
    assert_same_decoding(cached, full)
    assert len(cached.log_probs) > 1


def test_the_saved_model_computes_match_lengths_and_a_reexport_keeps_them(
    tmp_path: Path,
) -> None:
    model = ngram_model(seed=2)
    make_sep_likely(model, SEP_BIAS)
    config = {"overlap_sep_id": SEP, "overlap_feature": "ngram", "overlap_max_length": 4}
    assert_version_and_reexport_decode_as_keras(tmp_path, model, overlap_prefixes(seed=2), config)
