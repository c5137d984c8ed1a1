"""The sentence-level "exact match" feature (`models.bert.overlap.sentence_overlap`,
`--sentence-feature count`, `--sentence-join`): counts against a plain-Python reference, a
pronoun's sentence joined to the named one, and QA models that read it (a zero table giving the
bigram-only model, the Keras config round trip, cached decoding equal to full recomputation, the
SavedModel computing it itself, a re-export keeping it)."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from models.bert.overlap import sentence_overlap
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
    VOCAB,
    assert_version_and_reexport_decode_as_keras,
    ids,
    overlap_prefixes,
)

END = VOCAB["。"]


def sentence_counts_reference(
    first: list[int],
    second: list[int],
    ends: set[int],
    cap: int,
    joins: frozenset[int] = frozenset(),
) -> list[int]:
    """For each token of `first`, the distinct bigrams of `second` that its sentence holds (a
    bigram belongs to the sentence of its first token; a sentence opening with a token of `joins`
    belongs to the one before), capped: the test's reference."""
    wanted = {(second[j], second[j + 1]) for j in range(len(second) - 1)}
    sentence_of, current = [], 0
    for i, token in enumerate(first):
        sentence_of.append(current)
        opens_joined = i + 1 < len(first) and first[i + 1] in joins
        current += token in ends and not opens_joined
    held: dict[int, set[tuple[int, int]]] = {}
    for i in range(len(first) - 1):
        if (first[i], first[i + 1]) in wanted:
            held.setdefault(sentence_of[i], set()).add((first[i], first[i + 1]))
    return [min(len(held.get(s, ())), cap) for s in sentence_of]


# The characters of the pronoun examples, beyond test_qa_overlap's vocabulary.
JOIN_VOCAB = {**VOCAB, **{c: 30 + i for i, c in enumerate("他她今年多大35岁王护士是一名")}}
HE, SHE = JOIN_VOCAB["他"], JOIN_VOCAB["她"]


def counts_of(
    passage: str, question: str, answer: str = "", cap: int = 16, joins: tuple[int, ...] = ()
) -> list[int]:
    def to_ids(text: str) -> list[int]:
        return [JOIN_VOCAB[c] for c in text]

    source = [CLS, *to_ids(passage), SEP, *to_ids(question), SEP]
    target = [*to_ids(answer), SEP] if answer else []
    row, segments = source + target, [0] * len(source) + [1] * len(target)
    out = sentence_overlap(tf.constant([row]), tf.constant([segments]), SEP, [END], cap, joins)
    return [int(x) for x in out.numpy()[0]]


def test_the_sentence_about_the_person_and_fact_asked_counts_most() -> None:
    passage, question = "李伟住在上海。张伟住在北京。张芳住在北京。", "张伟住在哪里？"
    out = counts_of(passage, question, answer="北京")
    p = out[1 : 1 + len(passage)]
    # 伟住 住在 | 张伟 伟住 住在 | 住在 (张芳's 张 is in no common bigram).
    assert p == [2] * 7 + [3] * 7 + [1] * 7
    # Only passage tokens get a count: [CLS], the [SEP]s, the question and the answer do not.
    assert out[0] == 0 and out[1 + len(passage) :] == [0] * (len(out) - 1 - len(passage))
    assert p == sentence_counts_reference(ids(passage), ids(question), {END}, 16)
    # The cap; a question bigram held twice in a sentence, or asked twice, counts once.
    assert counts_of(passage, question, cap=2)[1:22] == [2] * 14 + [1] * 7
    assert counts_of("张伟张伟。", "张伟住在张伟？")[1:6] == [1] * 5
    # No end mark: the passage is one sentence.
    assert counts_of("李伟住在上海", question)[1:7] == [2] * 6


def piece_counts(passage: str, question: str, joins: tuple[int, ...] = ()) -> list[int]:
    """The count of each piece of the passage up to and including a 。 (one count a piece)."""
    counts = counts_of(passage, question, joins=joins)[1 : 1 + len(passage)]
    out, start = [], 0
    for i, c in enumerate(passage):
        if c == "。":
            assert len(set(counts[start : i + 1])) == 1
            out.append(counts[start])
            start = i + 1
    return out


def test_a_sentence_opened_by_a_pronoun_counts_with_the_named_one() -> None:
    """Issue 18's probe: "他今年35岁。" is about 张伟, named just before; joined to his sentence it
    counts his name for 张伟's question and not for an absent 王芳's."""
    passage = "张伟住在北京。他今年35岁。王芳是一名护士。"
    joins = (HE, SHE)
    assert piece_counts(passage, "张伟今年多大？") == [1, 1, 0]  # 张伟 | 今年 | -
    assert piece_counts(passage, "张伟今年多大？", joins) == [2, 2, 0]  # 张伟 今年 | -
    # The absent person's question: alone, the pronoun's sentence ties with the asked name's.
    assert piece_counts(passage, "王芳今年多大？") == [0, 1, 1]
    assert piece_counts(passage, "王芳今年多大？", joins) == [1, 1, 1]  # 今年, no name | 王芳
    # A run of pronoun sentences joins the named one; 她 as 他.
    chain = "王芳是一名护士。她住在上海。她今年35岁。张伟住在北京。"
    assert piece_counts(chain, "王芳今年多大？", joins) == [2, 2, 2, 0]
    assert piece_counts(chain, "王芳今年多大？") == [1, 0, 1, 0]
    # A pronoun opening the passage has nothing before it; one inside a sentence joins nothing.
    assert piece_counts("他今年35岁。张伟住在北京。", "张伟今年多大？", joins) == [1, 1]
    assert piece_counts("张伟住在北京。今年他35岁。", "张伟今年多大？", joins) == [1, 1]
    for text, question in ((passage, "张伟今年多大？"), (chain, "王芳今年多大？")):
        first = [JOIN_VOCAB[c] for c in text]
        second = [JOIN_VOCAB[c] for c in question]
        want = sentence_counts_reference(first, second, {END}, 16, frozenset(joins))
        assert counts_of(text, question, joins=joins)[1 : 1 + len(text)] == want


@pytest.mark.parametrize("joins", [(), (6, 8)])
def test_counts_match_the_reference_on_random_rows_eager_and_compiled(
    joins: tuple[int, ...],
) -> None:
    """Random rows over a small alphabet (many repeats, id 5 ends sentences, and with `joins`
    ids 6 and 8 join a sentence they open to the one before), a target segment and padding
    after."""
    rng = np.random.default_rng(0)
    rows, segments, expected = [], [], []
    for _ in range(50):
        first = rng.integers(5, 10, int(rng.integers(1, 20))).tolist()
        second = rng.integers(5, 10, int(rng.integers(1, 10))).tolist()
        source = [CLS, *first, SEP, *second, SEP]
        rows.append(source + [7, 7, SEP])
        segments.append([0] * len(source) + [1, 1, 1])
        counts = sentence_counts_reference(first, second, {5}, 4, frozenset(joins))
        expected.append([0, *counts, 0, *[0] * len(second), 0, 0, 0, 0])
    width = max(len(r) for r in rows)
    batch = tf.constant([r + [0] * (width - len(r)) for r in rows])
    segment_batch = tf.constant([s + [0] * (width - len(s)) for s in segments])
    eager = sentence_overlap(batch, segment_batch, SEP, [5], 4, joins).numpy()
    compiled = tf.function(
        lambda t, s: sentence_overlap(t, s, SEP, [5], 4, joins), jit_compile=True
    )(batch, segment_batch).numpy()
    for row, want, got in zip(rows, expected, eager, strict=True):
        assert got[: len(row)].tolist() == want
        assert not got[len(row) :].any()
    np.testing.assert_array_equal(compiled, eager)
    with pytest.raises(ValueError):
        sentence_overlap(batch, segment_batch, SEP, [5], 0)


def sentence_model(
    seed: int = 0, max_position: int = 48, joins: tuple[int, ...] = ()
) -> UniLMSeq2Seq:
    """`test_qa_cache.tiny_model` with the bigram marks and the sentence counts (id 6 ends a
    sentence; `joins` join a sentence they open to the one before), their vectors random too."""
    keras.utils.set_random_seed(seed)
    config = small_qa_config(
        VOCAB_SIZE, max_position, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32
    )
    model = build_qa_model(
        config,
        overlap_sep_id=SEP,
        sentence_end_ids=[6],
        sentence_max_count=3,
        sentence_join_ids=joins,
    )
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        if len(variable.shape) == 2 or "overlap" in variable.path:
            variable.assign(rng.normal(0.0, RANDOM_WEIGHT_STD, variable.shape).astype(np.float32))
    make_sep_likely(model, 0.0)
    bias = model.mlm_head.output_bias.numpy()
    bias[0] = -100.0  # never [PAD] as an answer token (the reference scorer's padding)
    model.mlm_head.output_bias.assign(bias)
    return model


def prefixes(seed: int = 0) -> list[list[int]]:
    """`overlap_prefixes` with a sentence end (id 6) inside each passage."""
    rows = overlap_prefixes(seed)
    return [[row[0], *row[1:4], 6, *row[4:]] for row in rows]


def _inputs(rows: list[list[int]]) -> dict[str, np.ndarray]:
    batch = pad(rows)
    return {
        "token_ids": batch,
        "segment_ids": np.zeros_like(batch),
        "padding_mask": (batch != 0).astype(np.int32),
    }


def test_a_zero_table_gives_the_bigram_model_and_the_config_round_trips(tmp_path: Path) -> None:
    model = sentence_model()
    table = model.backbone.embeddings.sentence_counts
    assert tuple(table.shape) == (3, model.config.hidden_size)
    inputs = _inputs(prefixes())
    assert sentence_overlap(inputs["token_ids"], inputs["segment_ids"], SEP, [6], 3).numpy().any()
    expected = model(inputs).numpy()
    config = model.backbone.get_config()
    assert config["sentence_end_ids"] == [6] and config["sentence_max_count"] == 3
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.backbone.sentence_end_ids == (6,)
    np.testing.assert_allclose(loaded(inputs).numpy(), expected, atol=1e-5)
    bigram = build_qa_model(model.config, overlap_sep_id=SEP)
    assert "sentence_end_ids" not in bigram.backbone.get_config()
    for target, source in zip(
        bigram.weights, [w for w in model.weights if "sentence" not in w.path], strict=True
    ):
        target.assign(source)
    assert not np.allclose(bigram(inputs).numpy(), expected, atol=1e-3)
    table.assign(np.zeros(table.shape, np.float32))
    np.testing.assert_allclose(model(inputs).numpy(), bigram(inputs).numpy(), atol=1e-5)
    fresh = build_qa_model(model.config, overlap_sep_id=SEP, sentence_end_ids=[6])
    assert not np.any(fresh.backbone.embeddings.sentence_counts.numpy())
    with pytest.raises(ValueError, match="needs overlap_sep_id"):
        build_qa_model(model.config, sentence_end_ids=[6])


@pytest.mark.parametrize("beam_size", [1, 3])
def test_cached_decoding_with_sentence_counts_equals_full_recomputation(beam_size: int) -> None:
    model = sentence_model(seed=1)
    if beam_size > 1:
        make_sep_likely(model, SEP_BIAS)
    step_model = KerasStepModel(model, MAX_ANSWER_TOKENS)
    rows = prefixes(seed=1)
    cached = beam_search(CachedScorer(step_model, rows), 3, beam_size, MAX_ANSWER_TOKENS)
    full = beam_search(FullScorer(step_model, rows), 3, beam_size, MAX_ANSWER_TOKENS)
    assert_same_decoding(cached, full)
    assert len(cached.log_probs) > 1


def test_the_saved_model_computes_sentence_counts_and_a_reexport_keeps_them(
    tmp_path: Path,
) -> None:
    model = sentence_model(seed=2)
    make_sep_likely(model, SEP_BIAS)
    config = {"overlap_sep_id": SEP, "overlap_feature": "bigram", "sentence_feature": "count",
              "sentence_end_ids": [6], "sentence_max_count": 3}  # fmt: skip
    assert_version_and_reexport_decode_as_keras(tmp_path, model, prefixes(seed=2), config)


def test_joined_sentences_round_trip_and_a_reexport_keeps_them(tmp_path: Path) -> None:
    """`sentence_join_ids` in the Keras config (absent when none) and in the manifest that
    `training.qa_reexport` rebuilds from: rows where a join id opens the sentence after id 6
    count differently with it, and both versions decode them as the Keras model does."""
    rows = prefixes(seed=3)
    join = rows[0][5]  # the token that opens row 0's second sentence
    batch = _inputs(rows)
    args = (batch["token_ids"], batch["segment_ids"], SEP, [6], 3)
    assert not np.array_equal(sentence_overlap(*args).numpy(), sentence_overlap(*args, [join]))
    model = sentence_model(seed=3, joins=(join,))
    make_sep_likely(model, SEP_BIAS)
    assert model.backbone.get_config()["sentence_join_ids"] == [join]
    assert "sentence_join_ids" not in sentence_model(seed=3).backbone.get_config()
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.backbone.embeddings.sentence_join_ids == (join,)
    np.testing.assert_allclose(loaded(batch).numpy(), model(batch).numpy(), atol=1e-5)
    without = build_qa_model(
        model.config, overlap_sep_id=SEP, sentence_end_ids=[6], sentence_max_count=3
    )
    for target, source in zip(without.weights, model.weights, strict=True):
        target.assign(source)
    assert not np.allclose(without(batch).numpy(), model(batch).numpy(), atol=1e-3)
    config = {"overlap_sep_id": SEP, "overlap_feature": "bigram", "sentence_feature": "count",
              "sentence_end_ids": [6], "sentence_max_count": 3,
              "sentence_join_ids": [join]}  # fmt: skip
    assert_version_and_reexport_decode_as_keras(tmp_path, model, rows, config)
    with pytest.raises(ValueError, match="needs sentence_end_ids"):
        build_qa_model(model.config, overlap_sep_id=SEP, sentence_join_ids=[join])
