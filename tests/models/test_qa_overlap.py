"""The bigram "exact match" feature (`models.bert.overlap`) and QA models that read it: the marks on
issue 18's kind of names, cached decoding equal to full recomputation, the SavedModel computing
the feature itself, and models without it unchanged."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from models.bert.lm_reader import SavedModelLMStepModel
from models.bert.overlap import bigram_overlap
from models.qa.export import export_qa_saved_model
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

CLS = 2
CHARS = "张伟芳李娜住在北京上海哪里？。"
VOCAB = {c: i + 5 for i, c in enumerate(CHARS)}


def bigram_overlap_reference(first: list[int], second: list[int]) -> tuple[list[int], list[int]]:
    """`bigram_overlap`'s marks for two token lists, in plain Python: the test's reference."""

    def bigrams(ids: list[int]) -> set[tuple[int, int]]:
        return {(ids[i], ids[i + 1]) for i in range(len(ids) - 1)}

    def marks(ids: list[int], other: set[tuple[int, int]]) -> list[int]:
        out = [0] * len(ids)
        for i in range(len(ids) - 1):
            if (ids[i], ids[i + 1]) in other:
                out[i] = out[i + 1] = 1
        return out

    return marks(first, bigrams(second)), marks(second, bigrams(first))


def ids(text: str) -> list[int]:
    return [VOCAB[c] for c in text]


def marks(passage: str, question: str, answer: str = "", padding: int = 0) -> list[int]:
    """The TF marks of `[CLS] passage [SEP] question [SEP] answer [SEP]` (+ padding)."""
    source = [CLS, *ids(passage), SEP, *ids(question), SEP]
    target = [*ids(answer), SEP] if answer else []
    row = source + target + [0] * padding
    segments = [0] * len(source) + [1] * len(target) + [0] * padding
    out = bigram_overlap(tf.constant([row]), tf.constant([segments]), SEP).numpy()[0]
    return [int(x) for x in out]


def test_bigram_marks_tell_the_name_asked_from_names_that_share_a_character() -> None:
    passage, question = "张芳住在上海。李伟住在北京。张伟住在北京。", "张伟住在哪里？"
    out = marks(passage, question)
    p = out[1 : 1 + len(passage)]
    q = out[2 + len(passage) : 2 + len(passage) + len(question)]
    by_char = dict(zip(range(len(passage)), p, strict=True))
    # 张伟 is marked where it is named; 张芳 is not (only 住在 after it); of 李伟, 李 is not
    # (伟住在 is a common substring, so 伟 is).
    assert [by_char[i] for i in (0, 1)] == [0, 0]  # 张芳
    assert [by_char[i] for i in (7, 8)] == [0, 1]  # 李伟
    assert [by_char[i] for i in (14, 15)] == [1, 1]  # 张伟
    assert [by_char[i] for i in (2, 3, 4, 5)] == [1, 1, 0, 0]  # 住在上海
    assert q == [1, 1, 1, 1, 0, 0, 0]  # 张伟住在 | 哪里？
    # Special tokens are never marked.
    assert out[0] == 0 and out[1 + len(passage)] == 0 and out[-1] == 0
    # The plain-Python reference agrees.
    assert (p, q) == tuple(bigram_overlap_reference(ids(passage), ids(question)))


def test_a_person_no_passage_names_is_unmarked_in_the_question() -> None:
    question = "李娜住在哪里？"
    out = marks("张伟住在北京。李伟住在上海。", question)
    q = out[-1 - len(question) : -1]
    assert q == [0, 0, 1, 1, 0, 0, 0]  # only 住在
    # Unigram overlap would have marked 李 (李伟) too: bigrams do not.


def test_answers_and_padding_are_never_marked_and_rows_are_independent() -> None:
    passage, question = "张伟住在北京。", "张伟住在哪里？"
    alone = marks(passage, question)
    with_answer = marks(passage, question, answer="北京", padding=4)
    assert with_answer[: len(alone)] == alone
    assert with_answer[len(alone) :] == [0] * 7  # 北京 [SEP] (segment 1) and padding
    # A batch: each row's marks are its own (a shorter row padded after its prefix).
    rows = [
        [CLS, *ids(passage), SEP, *ids(question), SEP],
        [CLS, *ids("李娜。"), SEP, *ids(question), SEP],
    ]
    batch = pad(rows)
    out = bigram_overlap(tf.constant(batch), tf.zeros_like(batch), SEP).numpy()
    assert out[0].tolist() == alone
    assert out[1].sum() == 0


def overlap_model(seed: int = 0, max_position: int = 48) -> UniLMSeq2Seq:
    """`test_qa_cache.tiny_model` with the feature, its overlap vector random too."""
    keras.utils.set_random_seed(seed)
    config = small_qa_config(
        VOCAB_SIZE, max_position, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32
    )
    model = build_qa_model(config, overlap_sep_id=SEP)
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        if len(variable.shape) == 2 or "overlap" in variable.path:
            variable.assign(rng.normal(0.0, RANDOM_WEIGHT_STD, variable.shape).astype(np.float32))
    # Never [PAD] as an answer token: the test's reference scorer reads id 0 as padding.
    make_sep_likely(model, 0.0)
    bias = model.mlm_head.output_bias.numpy()
    bias[0] = -100.0
    model.mlm_head.output_bias.assign(bias)
    return model


def overlap_prefixes(seed: int = 0) -> list[list[int]]:
    """`[CLS] passage [SEP] question [SEP]` rows whose questions copy bigrams of their passages."""
    rng = np.random.default_rng(seed)
    rows = []
    for passage_length, question_length in ((9, 4), (5, 3), (12, 6)):
        passage = rng.integers(5, VOCAB_SIZE, passage_length).tolist()
        start = int(rng.integers(0, passage_length - 2))
        question = [*passage[start : start + 2], *rng.integers(5, VOCAB_SIZE, question_length)]
        rows.append([CLS, *passage, SEP, *question, SEP])
    return rows


def test_the_feature_changes_the_model_only_through_the_marks() -> None:
    model = overlap_model()
    plain = build_qa_model(model.config)
    for target, source in zip(
        plain.weights, [w for w in model.weights if "overlap" not in w.path], strict=True
    ):
        target.assign(source)
    prefixes = overlap_prefixes()
    batch = pad(prefixes)
    inputs = {
        "token_ids": batch,
        "segment_ids": np.zeros_like(batch),
        "padding_mask": (batch != 0).astype(np.int32),
    }
    with_feature, without = model(inputs).numpy(), plain(inputs).numpy()
    assert not np.allclose(with_feature, without, atol=1e-3)
    # A zero overlap vector (its initial value) gives the plain model's outputs.
    vector = next(w for w in model.weights if "overlap" in w.path)
    assert tuple(vector.shape) == (model.config.hidden_size,)
    vector.assign(np.zeros(vector.shape, np.float32))
    np.testing.assert_allclose(model(inputs).numpy(), without, atol=1e-5)
    assert not np.any(
        build_qa_model(model.config, overlap_sep_id=SEP).backbone.embeddings.overlap_vector.numpy()
    )


@pytest.mark.parametrize("beam_size", [1, 3])
def test_cached_decoding_with_the_feature_equals_full_recomputation(beam_size: int) -> None:
    model = overlap_model(seed=1)
    if beam_size > 1:  # some beams end early; greedy rows would all end at once
        make_sep_likely(model, SEP_BIAS)
    step_model = KerasStepModel(model, MAX_ANSWER_TOKENS)
    prefixes = overlap_prefixes(seed=1)
    cached = beam_search(CachedScorer(step_model, prefixes), 3, beam_size, MAX_ANSWER_TOKENS)
    full = beam_search(FullScorer(step_model, prefixes), 3, beam_size, MAX_ANSWER_TOKENS)
    assert_same_decoding(cached, full)
    # Something was decoded past the prefill: at least one answer of two tokens or more.
    assert len(cached.log_probs) > 1


def placeholder_vocab(path: Path) -> Path:
    """A vocab.txt of VOCAB_SIZE entries, the specials first: what an export needs beside ids."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    path.write_text("\n".join(specials + [f"w{i}" for i in range(VOCAB_SIZE - 5)]) + "\n")
    return path


def assert_version_and_reexport_decode_as_keras(
    tmp_path: Path, model: UniLMSeq2Seq, rows: list[list[int]], config: dict
) -> None:
    """A store version of `model` whose manifest holds `config`, and `training.qa_reexport`'s
    rebuild of it from that config, both decode `rows` (cached and full) as the Keras model."""
    from tests.tiny_store import WORDPIECE
    from training.common import export_version
    from training.qa_reexport import reexport_qa

    vocab = placeholder_vocab(tmp_path / "vocab.txt")
    answer = MAX_ANSWER_TOKENS
    limits = {"max_passage_tokens": 20, "max_question_tokens": 10, "max_answer_tokens": answer}
    version = export_version(
        tmp_path / "store", "reader", task="qa", family="bert-unilm",
        write_model=lambda path: export_qa_saved_model(path, model, vocab, 20, 10, answer),
        config={"bert": model.config.__dict__, **config},
        data={}, metrics={}, extra={**limits, "tokenizer": WORDPIECE},
    )  # fmt: skip
    again = reexport_qa(version, "again")
    full = beam_search(FullScorer(KerasStepModel(model, answer), rows), 3, 2, answer)
    for folder in (version, again):
        saved = SavedModelLMStepModel(folder)
        assert_same_decoding(beam_search(CachedScorer(saved, rows), 3, 2, answer), full)
        assert_same_decoding(beam_search(FullScorer(saved, rows), 3, 2, answer), full)


def test_the_saved_model_computes_the_feature_itself(tmp_path: Path) -> None:
    vocab = placeholder_vocab(tmp_path / "vocab.txt")
    model = overlap_model(seed=2)
    make_sep_likely(model, SEP_BIAS)
    export_qa_saved_model(tmp_path / "model", model, vocab, 20, 10, MAX_ANSWER_TOKENS)
    saved = SavedModelLMStepModel(tmp_path / "model")
    keras_model = KerasStepModel(model, MAX_ANSWER_TOKENS)
    prefixes = overlap_prefixes(seed=2)
    cached = beam_search(CachedScorer(saved, prefixes), 3, 2, MAX_ANSWER_TOKENS)
    for reference in (saved, keras_model):
        full = beam_search(FullScorer(reference, prefixes), 3, 2, MAX_ANSWER_TOKENS)
        assert_same_decoding(cached, full)


def test_keras_round_trip_keeps_the_feature_and_old_configs_have_none(tmp_path: Path) -> None:
    model = overlap_model(seed=3)
    config = model.backbone.get_config()
    assert config["overlap_sep_id"] == SEP
    batch = pad(overlap_prefixes(seed=3))
    inputs = {
        "token_ids": batch,
        "segment_ids": np.zeros_like(batch),
        "padding_mask": (batch != 0).astype(np.int32),
    }
    expected = model(inputs).numpy()
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.backbone.overlap_sep_id == SEP
    np.testing.assert_allclose(loaded(inputs).numpy(), expected, atol=1e-5)
    # A model without the feature writes no key (configs of old models are unchanged), and a
    # config without the key builds a model without it.
    plain = build_qa_model(model.config)
    assert "overlap_sep_id" not in plain.backbone.get_config()
    assert not any("overlap" in w.path for w in plain.weights)


def test_the_service_answers_as_the_trained_model_and_a_reexport_keeps_the_feature(
    tmp_path: Path,
) -> None:
    """The runtime needs nothing to serve the feature (the SavedModel computes it); the
    manifest's `config.overlap_sep_id` is what `training.qa_reexport` rebuilds the model with."""
    from models.bert.tokenizer import BertTokenizer
    from models.qa.decoding import answer_questions
    from tests.tiny_store import QA_VOCAB_SIZE, QA_WORDS, WORDPIECE, load_in_runtime, write_vocab
    from training.common import export_version
    from training.qa_reexport import reexport_qa

    model = overlap_model(seed=4)
    vocab = write_vocab(tmp_path / "vocab.txt", QA_WORDS, QA_VOCAB_SIZE)
    tokenizer = BertTokenizer(vocab, lowercase=True)
    assert tokenizer.sep_id == SEP
    limits = {"max_passage_tokens": 12, "max_question_tokens": 8, "max_answer_tokens": 4}
    version = export_version(
        tmp_path / "store", "reader", task="qa", family="bert-unilm",
        write_model=lambda path: export_qa_saved_model(path, model, vocab, 12, 8, 4),
        config={"bert": model.config.__dict__, "overlap_sep_id": SEP}, data={}, metrics={},
        extra={**limits, "tokenizer": WORDPIECE},
    )  # fmt: skip
    questions = [
        ("张伟住在哪里？", ["张伟住在北京。", "李伟住在上海。"]),
        ("李娜住在哪里？", ["张伟住在北京。"]),
    ]
    expected = answer_questions(
        KerasStepModel(model, 4), tokenizer, questions, max_passage_tokens=12,
        max_question_tokens=8, max_answer_tokens=4, beam_size=2,
    )  # fmt: skip
    again = reexport_qa(version, "again")
    for folder in (version, again):
        runtime = load_in_runtime(folder)
        items = [
            runtime.prepare(q, p, max_answer_tokens=None, beam_size=2, extractive=False)
            for q, p in questions
        ]
        served = runtime.run_batch(items)
        assert [r.answer for r in served] == [r.answer for r in expected]
        np.testing.assert_allclose(
            [r.score for r in served], [r.score for r in expected], atol=1e-4
        )
        assert [[c[0] for c in r.candidates] for r in served] == [
            [c[0] for c in r.candidates] for r in expected
        ]


@pytest.mark.parametrize("max_length", [None, 5], ids=["bigram", "ngram"])
@pytest.mark.parametrize("kind", ["hf", "google"])
def test_a_pretrained_checkpoint_loads_with_the_feature_starting_at_zero(
    tmp_path: Path, kind: str, max_length: int | None
) -> None:
    """`build_qa_model(init_checkpoint=..., overlap_sep_id=...)`: every checkpoint weight loads
    as without the feature, the feature's vectors (no checkpoint holds them; one, or one a
    match length) start at zero, so the model computes what the checkpoint does, and training
    them moves the marked rows only."""
    from tests.models.test_bert_checkpoint import (
        google_weights,
        to_hf,
        write_google_folder,
        write_hf_folder,
    )

    weights = google_weights(seed=5)
    if kind == "hf":
        folder = write_hf_folder(tmp_path / "ckpt", to_hf(weights))
    else:
        folder = write_google_folder(tmp_path / "ckpt", weights)
    plain = build_qa_model(init_checkpoint=folder)
    featured = build_qa_model(
        init_checkpoint=folder, overlap_sep_id=SEP, overlap_max_length=max_length
    )
    assert featured.backbone.overlap_sep_id == SEP
    assert featured.backbone.get_config()["overlap_sep_id"] == SEP
    assert featured.backbone.get_config().get("overlap_max_length") == max_length
    plain_weights = {w.path: w.numpy() for w in plain.weights}
    overlap = [w for w in featured.weights if "overlap" in w.path]
    assert len(overlap) == 1 and not overlap[0].numpy().any()
    for w in featured.weights:
        if "overlap" not in w.path:
            np.testing.assert_array_equal(w.numpy(), plain_weights[w.path], err_msg=w.path)
    # Rows `[CLS] A [SEP] B [SEP] answer [SEP]`: the first shares the bigram (6, 7) between
    # passage and question (marked), the second shares nothing.
    token_ids = np.array([[2, 6, 7, 8, 3, 6, 7, 3, 9, 3], [2, 10, 11, 12, 3, 13, 14, 3, 9, 3]])
    segment_ids = np.array([[0] * 8 + [1] * 2] * 2)
    marks = bigram_overlap(tf.constant(token_ids), tf.constant(segment_ids), SEP).numpy()
    assert marks[0].sum() == 4 and marks[1].sum() == 0
    inputs = {"token_ids": token_ids, "segment_ids": segment_ids,
              "padding_mask": np.ones_like(token_ids)}  # fmt: skip
    before = plain(inputs).numpy()
    np.testing.assert_allclose(featured(inputs).numpy(), before, atol=1e-5)
    # Not a constant vector: the LayerNorm after the sum would take it away.
    overlap[0].assign(np.random.default_rng(0).normal(0, 0.5, overlap[0].shape).astype("float32"))
    after = featured(inputs).numpy()
    assert np.abs(after[0] - before[0]).max() > 1e-3
    np.testing.assert_allclose(after[1], before[1], atol=1e-5)
