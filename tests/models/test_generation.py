"""Conditional LM: Conditional Layer Normalization's zero start, the cache against recomputation,
sampling filters on known distributions, seeded reproducibility, and the SavedModel export."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from models.bert.checkpoint import load_hf_folder
from models.bert.conditional_layer_norm import ConditionalLayerNorm
from models.bert.lm_reader import SavedModelLMStepModel
from models.generation.decoding import (
    FINISH_LENGTH,
    FINISH_STOP,
    DecodingBatch,
    GenerationRow,
    Guidance,
    generate,
    guided_log_probs,
    label_guidance,
)
from models.generation.export import export_generation_saved_model
from models.generation.kv_cache import KerasGenerationStepModel
from models.generation.lm import ConditionalLM, build_generation_model, small_lm_config
from models.generation.sampling import (
    MIN_TEMPERATURE,
    SamplingParams,
    choose_token,
    choose_tokens,
    sampling_distribution,
)
from tests.models.test_bert_checkpoint import VOCAB, google_weights, to_hf, write_hf_folder

VOCAB_SIZE = 40
CLS, SEP = 2, 3
BANNED = (0, 1, 2, 4)
MAX_LENGTH = 24
RANDOM_WEIGHT_STD = 0.3


def tiny_lm(
    seed: int = 0,
    labels: tuple[str, ...] | None = ("neg", "pos"),
    max_length: int = MAX_LENGTH,
    **kw,
) -> ConditionalLM:
    keras.utils.set_random_seed(seed)
    config = small_lm_config(
        VOCAB_SIZE, max_length, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32,
        dropout=0.0,
    )  # fmt: skip
    return build_generation_model(config, labels=list(labels) if labels else None, **kw)


def randomise(model: keras.Model, seed: int = 0, include_condition: bool = True) -> None:
    """Large random weights (outputs that depend on the context and on the condition)."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        if len(variable.shape) != 2:
            continue
        if not include_condition and "condition" in variable.path:
            continue
        variable.assign(rng.normal(0.0, RANDOM_WEIGHT_STD, variable.shape).astype(np.float32))


def batch(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, VOCAB_SIZE, (3, 10)).astype(np.int32)
    ids[:, 0] = CLS
    padding = np.ones_like(ids)
    padding[2, 6:] = 0
    return {"token_ids": ids, "padding_mask": padding}


# Conditional Layer Normalization.
def test_conditional_layer_norm_starts_as_layer_norm_for_any_condition() -> None:
    x = np.random.default_rng(0).normal(size=(3, 5, 8)).astype(np.float32)
    plain = keras.layers.LayerNormalization(epsilon=1e-12)
    plain.build((None, None, 8))
    plain.gamma.assign(np.linspace(0.5, 2.0, 8))
    plain.beta.assign(np.linspace(-1.0, 1.0, 8))
    for hidden in (None, 4):
        norm = ConditionalLayerNorm(1e-12, condition_size=6, hidden_units=hidden)
        norm.build((None, None, 8))
        norm.gamma.assign(plain.gamma)
        norm.beta.assign(plain.beta)
        for condition in (np.zeros((3, 6)), np.random.default_rng(1).normal(size=(3, 6)) * 10):
            out = norm(x, condition=condition.astype(np.float32))
            np.testing.assert_allclose(out, plain(x), atol=1e-5)


def test_conditional_layer_norm_shifts_gamma_and_beta_by_the_condition() -> None:
    x = np.random.default_rng(0).normal(size=(2, 3, 4)).astype(np.float32)
    c = np.array([[1.0, 0.0], [0.0, 2.0]], np.float32)
    norm = ConditionalLayerNorm(1e-6, condition_size=2)
    norm.build((None, None, 4))
    w_gamma = np.arange(8, dtype=np.float32).reshape(2, 4) / 10
    w_beta = -np.arange(8, dtype=np.float32).reshape(2, 4) / 10
    norm.gamma_dense.kernel.assign(w_gamma)
    norm.beta_dense.kernel.assign(w_beta)
    mean = x.mean(-1, keepdims=True)
    normed = (x - mean) / np.sqrt(x.var(-1, keepdims=True) + 1e-6)
    expected = normed * (1 + c @ w_gamma)[:, None, :] + (c @ w_beta)[:, None, :]
    np.testing.assert_allclose(norm(x, condition=c), expected, atol=1e-5)


def test_zero_initialised_model_ignores_the_condition_and_a_trained_one_does_not() -> None:
    model = tiny_lm()
    randomise(model, include_condition=False)
    inputs = batch()
    neg = model({**inputs, "label_ids": np.array([0, 0, 0])})
    pos = model({**inputs, "label_ids": np.array([1, 1, 1])})
    vector = model({**inputs, "condition": np.full((3, 128), 5.0, np.float32)})
    np.testing.assert_array_equal(neg, pos)
    np.testing.assert_array_equal(neg, vector)
    # A few optimizer steps on label-dependent targets move the condition's projections.
    optimizer = keras.optimizers.Adam(1e-2)
    for _ in range(5):
        for label in (0, 1):
            with tf.GradientTape() as tape:
                logits = model({**inputs, "label_ids": np.full(3, label)})
                loss = tf.reduce_mean(
                    tf.nn.sparse_softmax_cross_entropy_with_logits(
                        labels=np.full((3, 10), 5 + label), logits=logits
                    )
                )
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(
                [
                    (g, v)
                    for g, v in zip(grads, model.trainable_variables, strict=True)
                    if g is not None
                ]
            )
    neg = model({**inputs, "label_ids": np.array([0, 0, 0])})
    pos = model({**inputs, "label_ids": np.array([1, 1, 1])})
    assert np.abs(np.asarray(neg) - np.asarray(pos)).max() > 1e-2


def test_from_a_checkpoint_the_model_starts_as_the_pretrained_lm(tmp_path: Path) -> None:
    folder = write_hf_folder(tmp_path / "hf", to_hf(google_weights()))
    plain = load_hf_folder(folder, with_mlm_head=True, attention_mode="causal")
    model = build_generation_model(labels=["a", "b", "c"], condition_size=8, init_checkpoint=folder)
    ids = np.array([[2, 7, 9, 11, 3], [2, 12, 5, 3, 0]], np.int32)
    padding = (ids > 0).astype(np.int32)
    assert plain.mlm_head is not None
    expected = plain.mlm_head(
        plain.backbone(
            {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": padding}
        )["sequence_output"]
    )
    for label in (0, 2):
        out = model({"token_ids": ids, "padding_mask": padding, "label_ids": np.full(2, label)})
        np.testing.assert_allclose(
            out * padding[..., None], expected * padding[..., None], atol=1e-4
        )
    assert model.config.vocab_size == len(VOCAB)


# The cache.
def greedy_without_cache(
    model: ConditionalLM,
    prefix: list[int],
    label: int,
    steps: int,
    guidance: Guidance | None = None,
) -> list[int]:
    """Greedy decoding that recomputes the whole sequence each step (guided when asked)."""
    step_model = KerasGenerationStepModel(model, MAX_LENGTH)
    conditions = step_model.label_condition([label])
    if guidance is not None:
        conditions = np.stack([conditions[0], guidance.negative])
    tokens = list(prefix)
    written: list[int] = []
    for _ in range(steps):
        ids = np.array([tokens] * len(conditions), np.int32)
        logits = step_model.full_logits(ids, np.ones_like(ids), conditions)[:, -1]
        log_probs = logits[0].copy()
        if guidance is not None:
            log_probs = guided_log_probs(logits[0], logits[1], guidance.scale)
        log_probs[list(BANNED)] = -np.inf
        token = int(np.argmax(log_probs))
        if token == SEP:
            break
        written.append(token)
        tokens.append(token)
    return written


def test_cached_greedy_decoding_equals_recomputation_token_for_token() -> None:
    model = tiny_lm()
    randomise(model)
    step_model = KerasGenerationStepModel(model, MAX_LENGTH)
    prefixes = [[CLS], [CLS, 7, 8, 9], [CLS, 30, 31]]
    rows = [
        GenerationRow(list(p), step_model.label_condition([i % 2])[0], SamplingParams(0.0), 12,
                      np.random.default_rng(0))
        for i, p in enumerate(prefixes)
    ]  # fmt: skip
    batch_ = DecodingBatch(step_model, BANNED, SEP)
    # Rows join at different steps, as on a server.
    batch_.admit(rows[:1])
    batch_.advance()
    batch_.admit(rows[1:])
    while any(not r.done for r in batch_.rows):
        batch_.advance()
        batch_.retire()
    for i, (row, prefix) in enumerate(zip(rows, prefixes, strict=True)):
        assert row.new_ids == greedy_without_cache(model, prefix, i % 2, 12)
        assert row.finish_reason in (FINISH_STOP, FINISH_LENGTH)
    assert sum(len(r.new_ids) for r in rows) > 10


def test_rows_stop_at_the_cache_end_with_finish_reason_length() -> None:
    model = tiny_lm()
    randomise(model)
    step_model = KerasGenerationStepModel(model, 8)
    sep_free = SamplingParams(0.0)
    rows = [GenerationRow([CLS, 5, 6], step_model.label_condition([0])[0], sep_free, 100,
                          np.random.default_rng(0))]  # fmt: skip
    batch_ = DecodingBatch(step_model, (*BANNED, SEP), SEP)
    batch_.admit(rows)
    while batch_.rows:
        batch_.advance()
        batch_.retire()
    assert rows[0].finish_reason == FINISH_LENGTH
    # Positions 0..7 hold [CLS], 2 prompt tokens and 5 fed tokens; the 6th is drawn, not fed.
    assert len(rows[0].new_ids) == 6


def test_rows_that_take_retired_places_decode_as_if_alone() -> None:
    model = tiny_lm()
    randomise(model)
    step_model = KerasGenerationStepModel(model, MAX_LENGTH)
    conditions = step_model.label_condition([0, 1])
    no_sep = (*BANNED, SEP)  # rows end at max_new_tokens, nowhere else

    def row(prefix: list[int], label: int, max_new: int) -> GenerationRow:
        return GenerationRow(list(prefix), conditions[label], SamplingParams(0.0), max_new,
                             np.random.default_rng(0))  # fmt: skip

    def decode(batch_: DecodingBatch) -> None:
        while batch_.rows:
            batch_.advance()
            batch_.retire()

    alone = [row([CLS], 1, 10), row([CLS], 0, 10)]
    decode_alone = DecodingBatch(step_model, no_sep, SEP)
    decode_alone.admit(alone)
    decode(decode_alone)
    assert decode_alone.cache is None  # nothing left: the cache is let go

    batch_ = DecodingBatch(step_model, no_sep, SEP)
    batch_.admit([row([CLS, 9], 0, 12), row([CLS, 8], 1, 12)])
    batch_.admit([row([CLS, 20], 1, 2), row([CLS, 21], 0, 2)])
    batch_.advance()
    batch_.advance()
    batch_.retire()
    # The two short rows have gone, their keys and values left in the cache; unprompted rows
    # take their places as they are.
    assert len(batch_.slots) == 4 and len(batch_) == 2
    joined = [row([CLS], 1, 10), row([CLS], 0, 10)]
    batch_.admit(joined)
    assert len(batch_.slots) == len(batch_) == 4
    decode(batch_)
    assert [r.new_ids for r in joined] == [r.new_ids for r in alone]
    # With more free places than rows the cache is compacted.
    batch_.admit([row([CLS], 0, 12), row([CLS], 1, 1), row([CLS], 1, 1)])
    batch_.advance()
    batch_.retire()
    assert len(batch_.slots) == len(batch_) == 1


# Sampling.
def test_top_k_and_top_p_keep_the_expected_tokens() -> None:
    probs = np.array([0.5, 0.2, 0.15, 0.1, 0.05])
    log_probs = np.log(probs)
    kept = sampling_distribution(log_probs, SamplingParams(top_k=2))
    np.testing.assert_allclose(kept, [0.5 / 0.7, 0.2 / 0.7, 0, 0, 0])
    # Nucleus 0.8: 0.5 + 0.2 = 0.7 < 0.8, so the third token is needed; the fourth is not.
    kept = sampling_distribution(log_probs, SamplingParams(top_p=0.8))
    np.testing.assert_allclose(kept, [0.5 / 0.85, 0.2 / 0.85, 0.15 / 0.85, 0, 0])
    # A nucleus smaller than the top token keeps the top token alone.
    np.testing.assert_allclose(sampling_distribution(log_probs, SamplingParams(top_p=0.1)),
                               [1, 0, 0, 0, 0])  # fmt: skip
    # Temperature: p^(1/T) renormalised; banned tokens get nothing.
    warm = sampling_distribution(log_probs, SamplingParams(temperature=2.0), banned=[0])
    expected = np.sqrt(probs) * np.array([0, 1, 1, 1, 1])
    np.testing.assert_allclose(warm, expected / expected.sum())
    assert sampling_distribution(log_probs, SamplingParams(temperature=0.0), banned=[0])[1] == 1


def test_sampling_frequencies_follow_the_filtered_distribution() -> None:
    log_probs = np.log(np.array([0.5, 0.2, 0.15, 0.1, 0.05]))
    rng = np.random.default_rng(0)
    draws = [choose_token(log_probs, SamplingParams(top_k=3), rng) for _ in range(4000)]
    counts = np.bincount(draws, minlength=5) / len(draws)
    np.testing.assert_allclose(counts, [0.5 / 0.85, 0.2 / 0.85, 0.15 / 0.85, 0, 0], atol=0.03)


@pytest.mark.parametrize("bad", [{"temperature": -1}, {"top_k": 0}, {"top_p": 0}, {"top_p": 1.5}])
def test_sampling_params_are_checked(bad: dict) -> None:
    with pytest.raises(ValueError):
        SamplingParams(**bad)


def sampled_rows(step_model, seed: int, n: int = 3, label: int = 1) -> list[GenerationRow]:
    condition = step_model.label_condition([label])[0]
    return [GenerationRow([CLS], condition, SamplingParams(1.0, top_p=0.95), 10,
                          np.random.default_rng([seed, i])) for i in range(n)]  # fmt: skip


class _Tokenizer:
    sep_id, pad_id, cls_id, mask_id, unk_id = SEP, 0, CLS, 4, 1


def test_a_seed_gives_the_same_samples_alone_or_batched_with_others() -> None:
    model = tiny_lm()
    randomise(model)
    step_model = KerasGenerationStepModel(model, MAX_LENGTH)
    alone = generate(step_model, _Tokenizer(), sampled_rows(step_model, 7))  # type: ignore[arg-type]
    crowd = sampled_rows(step_model, 99, n=5, label=0) + sampled_rows(step_model, 7)
    generate(step_model, _Tokenizer(), crowd, max_batch_rows=4)  # type: ignore[arg-type]
    assert [r.new_ids for r in alone] == [r.new_ids for r in crowd[5:]]
    other = generate(step_model, _Tokenizer(), sampled_rows(step_model, 8))  # type: ignore[arg-type]
    assert [r.new_ids for r in other] != [r.new_ids for r in alone]


# Guidance.
def test_guided_log_probs_follow_the_formula() -> None:
    conditioned = np.log(np.array([0.5, 0.3, 0.2]))
    negative = np.log(np.array([0.6, 0.1, 0.3]))
    np.testing.assert_allclose(guided_log_probs(conditioned, negative, 0.0), conditioned)
    guided = np.exp(guided_log_probs(conditioned, negative, 1.0))
    expected = np.array([0.5, 0.3, 0.2]) ** 2 / np.array([0.6, 0.1, 0.3])  # p_c (p_c / p_n)^1
    np.testing.assert_allclose(guided, expected / expected.sum())
    # The token the condition favours over the contrast (index 1) gains most.
    assert np.argmax(guided / np.exp(conditioned)) == 1


def test_guided_decoding_with_the_cache_equals_recomputation_and_costs_two_rows() -> None:
    model = tiny_lm()
    randomise(model)
    step_model = KerasGenerationStepModel(model, MAX_LENGTH)
    conditions = step_model.label_condition([0, 1])
    guidance = label_guidance(conditions, 1, scale=3.0)
    np.testing.assert_allclose(guidance.negative, conditions[0])  # two labels: the other one
    greedy = SamplingParams(0.0)
    guided = GenerationRow([CLS, 7], conditions[1], greedy, 10, np.random.default_rng(0),
                           guidance=guidance)  # fmt: skip
    plain = GenerationRow([CLS, 7], conditions[1], greedy, 10, np.random.default_rng(0))
    batch_ = DecodingBatch(step_model, BANNED, SEP)
    batch_.admit([plain])
    batch_.advance()
    batch_.admit([guided])  # joins a running batch, beside an unguided row
    assert len(batch_) == 3 and batch_.rows == [plain, guided]
    while batch_.rows:
        batch_.advance()
        batch_.retire()
    assert guided.new_ids == greedy_without_cache(model, [CLS, 7], 1, 10, guidance)
    assert plain.new_ids == greedy_without_cache(model, [CLS, 7], 1, 10)
    assert guided.new_ids != plain.new_ids  # the guidance changed what was written
    with pytest.raises(ValueError, match="two labels"):
        label_guidance(conditions[:1], 0, 1.0)


# Export.
def test_saved_model_matches_the_keras_model(tmp_path: Path) -> None:
    model = tiny_lm()
    randomise(model)
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(f"t{i}" for i in range(VOCAB_SIZE)) + "\n", encoding="utf-8")
    names = export_generation_saved_model(tmp_path / "sm", model, vocab, MAX_LENGTH)
    assert "label_condition" in names and "step" in names
    loaded = SavedModelLMStepModel(tmp_path / "sm")
    keras_model = KerasGenerationStepModel(model, MAX_LENGTH)
    assert loaded.cache_length == MAX_LENGTH and loaded.condition_size == 128
    condition = loaded.label_condition([0, 1, 1])
    np.testing.assert_allclose(condition, keras_model.label_condition([0, 1, 1]))
    inputs = batch()
    np.testing.assert_allclose(
        loaded.full_logits(inputs["token_ids"], inputs["padding_mask"], condition),
        keras_model.full_logits(inputs["token_ids"], inputs["padding_mask"], condition),
        atol=1e-5,
    )
    rows_a, rows_b = sampled_rows(loaded, 3), sampled_rows(keras_model, 3)
    generate(loaded, _Tokenizer(), rows_a)  # type: ignore[arg-type]
    generate(keras_model, _Tokenizer(), rows_b)  # type: ignore[arg-type]
    assert [r.new_ids for r in rows_a] == [r.new_ids for r in rows_b]


def test_vector_conditioned_model_exports_without_labels(tmp_path: Path) -> None:
    model = tiny_lm(labels=None, condition_size=6, condition_hidden_units=4)
    randomise(model)
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(f"t{i}" for i in range(VOCAB_SIZE)) + "\n", encoding="utf-8")
    names = export_generation_saved_model(tmp_path / "sm", model, vocab, MAX_LENGTH)
    assert "label_condition" not in names
    loaded = SavedModelLMStepModel(tmp_path / "sm")
    assert loaded.condition_size == 6
    with pytest.raises(ValueError):
        loaded.label_condition([0])
    inputs = batch()
    c = np.random.default_rng(0).normal(size=(3, 6)).astype(np.float32)
    out = loaded.full_logits(inputs["token_ids"], inputs["padding_mask"], c)
    assert out.shape == (3, 10, VOCAB_SIZE)
    assert (
        np.abs(out - loaded.full_logits(inputs["token_ids"], inputs["padding_mask"], -c)).max()
        > 1e-3
    )


def test_batched_choice_draws_each_row_from_its_own_filtered_distribution() -> None:
    rng = np.random.default_rng(0)
    vocab = 600  # over NUCLEUS_CANDIDATES: the partial-sort path and its fallback both run
    flat = np.log(np.full(vocab, 1.0 / vocab))  # a flat row: the nucleus needs the full sort
    peaked = np.log(np.sort(rng.dirichlet(np.full(vocab, 0.05)))[::-1])
    params = [SamplingParams(top_p=0.9), SamplingParams(top_p=0.5), SamplingParams(top_k=7),
              SamplingParams(temperature=0.0)]  # fmt: skip
    rows = np.stack([flat, peaked, peaked, peaked])
    draws = 3000
    rngs = [np.random.default_rng(i) for i in range(4)]
    counts = np.zeros((4, vocab))
    for _ in range(draws):
        tokens = choose_tokens(rows, params, rngs, banned=[0])
        counts[np.arange(4), tokens] += 1
    for b in range(4):
        expected = sampling_distribution(rows[b], params[b], banned=[0])
        assert set(np.flatnonzero(counts[b])) <= set(np.flatnonzero(expected))
        np.testing.assert_allclose(counts[b] / draws, expected, atol=0.035)
    # The flat row (599 equal tokens once one is banned): the nucleus is the first k tokens
    # with (k - 1) / 599 < 0.9, k = 540.
    assert (sampling_distribution(flat, params[0], banned=[0]) > 0).sum() == 540


# Numbers the model cannot represent.
def test_temperatures_too_small_to_divide_by_are_greedy() -> None:
    # log p / T overflows float64 for T = 1e-320 (a subnormal), and the row's scores become NaN.
    log_probs = np.log(np.array([0.05, 0.2, 0.5, 0.15, 0.1]))
    rng = np.random.default_rng(0)
    for temperature in (0.0, 1e-320, 1e-300, MIN_TEMPERATURE / 2):
        params = SamplingParams(temperature=temperature)
        assert params.greedy, temperature
        np.testing.assert_array_equal(sampling_distribution(log_probs, params), [0, 0, 1, 0, 0])
        draws = choose_tokens(np.stack([log_probs] * 50), [params] * 50, [rng] * 50)
        assert (draws == 2).all(), temperature
    # From MIN_TEMPERATURE on it samples: a near-tie keeps both tokens.
    tie = np.log(np.array([0.5, 0.5 * (1 - 1e-6), 0.0001]))
    kept = sampling_distribution(tie, SamplingParams(temperature=MIN_TEMPERATURE))
    assert not SamplingParams(temperature=MIN_TEMPERATURE).greedy
    assert np.isfinite(kept).all() and kept[0] > kept[1] > 0.4 and kept[2] == 0


def test_a_row_the_model_gives_no_finite_numbers_fails_and_its_place_is_not_reused() -> None:
    model = tiny_lm(seed=3, labels=None, condition_size=4)
    randomise(model, seed=3)
    step_model = KerasGenerationStepModel(model, MAX_LENGTH)
    no_sep = (*BANNED, SEP)  # rows end at max_new_tokens, nowhere else

    def row(condition: list[float], max_new: int, temperature: float = 0.0) -> GenerationRow:
        return GenerationRow([CLS], np.array(condition, np.float32), SamplingParams(temperature),
                             max_new, np.random.default_rng(0))  # fmt: skip

    good = [1.0, 0.0, 0.0, 0.0]
    alone = row(good, 8)
    generate(step_model, _Tokenizer(), [alone])  # type: ignore[arg-type]
    # Finite in float32, but the conditional LayerNorms overflow: the log-probabilities are NaN.
    # Sampled: unchecked, the row would write garbage and fill its cache place with NaN.
    broken, other = row([1e20, 0.0, 0.0, 0.0], 8, temperature=1.0), row(good, 20)
    batch_ = DecodingBatch(step_model, no_sep, SEP)
    batch_.admit([other, broken])
    for _ in range(8):
        batch_.advance()
        batch_.retire()
    assert broken.error is not None and broken.done and broken.new_ids == []
    assert broken.finish_reason is None
    # A row admitted now decodes as if alone: it does not read the broken row's NaN keys.
    late = row(good, 8)
    batch_.admit([late])
    while not late.done:
        batch_.advance()
        batch_.retire()
    assert late.error is None and late.new_ids == alone.new_ids
