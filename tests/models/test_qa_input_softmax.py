"""The answer's softmax over the tokens of its input (`models.qa.input_softmax`): training's loss
against a plain-numpy reference, decoding's renormalisation against full recomputation, and what
it changes in the decoder's choices."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from models.qa.decoding import RecomputeStepModel, decode_batch
from models.qa.input_softmax import (
    InputSoftmaxStepModel,
    input_tokens_mask,
    restrict_log_probs,
    step_model_for,
)
from models.qa.kv_cache import KerasStepModel
from models.qa.samples import QASample, pad_samples
from models.qa.seq2seq import answer_window_loss
from tests.models.test_qa_cache import (
    MAX_ANSWER_TOKENS,
    SEP,
    SEP_BIAS,
    VOCAB_SIZE,
    CachedScorer,
    FullScorer,
    assert_same_decoding,
    beam_search,
    make_sep_likely,
    random_prefixes,
    tiny_model,
)

CLS, PAD = 2, 0


def _samples(seed: int = 0) -> list[QASample]:
    """Rows `[CLS] passage [SEP] question [SEP] answer [SEP]` of random tokens, the answer a
    span of the passage except in the last row, whose answer holds a token the row has nowhere
    else (training's set must still hold every target)."""
    rng = np.random.default_rng(seed)
    samples = []
    for n, answer_length in ((9, 2), (5, 0), (12, 3), (7, 1)):
        passage = rng.integers(5, VOCAB_SIZE, n).tolist()
        question = rng.integers(5, VOCAB_SIZE, 3).tolist()
        start = int(rng.integers(0, n - answer_length + 1))
        answer = passage[start : start + answer_length]
        if len(samples) == 3:
            answer = [next(t for t in range(5, VOCAB_SIZE) if t not in passage + question)]
        prefix = [CLS, *passage, SEP, *question, SEP]
        target = [*answer, SEP]
        samples.append(
            QASample(
                token_ids=prefix + target,
                segment_ids=[0] * len(prefix) + [1] * len(target),
                loss_mask=[0] * len(prefix) + [1] * len(target),
            )
        )
    return samples


def _reference_loss(model: Any, batch: dict[str, np.ndarray], input_only: bool) -> float:
    """Mean cross-entropy of every target from the full logits [B, L, V], each softmax over the
    row's own tokens (or the whole vocabulary)."""
    features = {k: batch[k] for k in ("token_ids", "segment_ids", "padding_mask")}
    states = model.backbone(features, training=False)["sequence_output"]
    logits = np.asarray(model.mlm_head(states), np.float64)
    losses = []
    for row in range(len(logits)):
        n = int(batch["padding_mask"][row].sum())
        tokens = batch["token_ids"][row, :n]
        kept = sorted(set(tokens.tolist())) if input_only else list(range(logits.shape[-1]))
        for t in range(1, n):
            if batch["loss_mask"][row, t]:
                scores = logits[row, t - 1, kept]
                top = scores.max()
                log_z = top + np.log(np.exp(scores - top).sum())
                losses.append(log_z - logits[row, t - 1, tokens[t]])
    return float(np.mean(losses))


def test_the_loss_is_the_cross_entropy_over_each_rows_own_tokens() -> None:
    model = tiny_model(seed=3, max_position=40)
    batch = pad_samples(_samples(), PAD, pad_to=32)
    window = MAX_ANSWER_TOKENS + 1
    restricted = float(answer_window_loss(model, batch, window, input_softmax=True))
    plain = float(answer_window_loss(model, batch, window))
    assert restricted == pytest.approx(_reference_loss(model, batch, True), rel=1e-5)
    assert plain == pytest.approx(_reference_loss(model, batch, False), rel=1e-5)
    # Fewer competitors, a lower loss: the restriction is not a no-op.
    assert restricted < plain - 0.5


def test_restricting_log_probs_is_a_softmax_over_the_kept_logits() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (3, 11))
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    mask = input_tokens_mask(np.array([[2, 5, 7, 0], [4, 4, 4, 4], [1, 2, 3, 10]]),
                             np.array([3, 2, 4]), 11)  # fmt: skip
    assert [np.flatnonzero(m).tolist() for m in mask] == [[2, 5, 7], [4], [1, 2, 3, 10]]
    out = restrict_log_probs(log_probs, mask)
    for row in range(3):
        kept = logits[row, mask[row]]
        expected = kept - kept.max() - np.log(np.exp(kept - kept.max()).sum())
        np.testing.assert_allclose(out[row, mask[row]], expected, atol=1e-12)
        assert np.isneginf(out[row, ~mask[row]]).all()


class _InputAware:
    """Scores like `FullScorer`/`CachedScorer` but renormalised over each row's input, the way
    `InputSoftmaxStepModel` must: prefix and answer so far."""

    def __init__(self, inner: Any, prefixes: list[list[int]]) -> None:
        self.inner, self.prefixes = inner, prefixes

    def _restrict(self, log_probs: np.ndarray, owners: list[int], answers: list[list[int]]):
        rows = [self.prefixes[o] + a for o, a in zip(owners, answers, strict=True)]
        mask = np.zeros(log_probs.shape, bool)
        for i, row in enumerate(rows):
            mask[i, row] = True
        return restrict_log_probs(log_probs, mask)

    def start(self) -> np.ndarray:
        owners = list(range(len(self.prefixes)))
        return self._restrict(self.inner.start(), owners, [[] for _ in owners])

    def advance(self, parents: list[int], owners: list[int], answers: list[list[int]]):
        return self._restrict(self.inner.advance(parents, owners, answers), owners, answers)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_cached_decoding_renormalised_equals_full_recomputation(beam_size: int) -> None:
    """The wrapper keeps each row's set through `select_rows` (beams reorder and repeat rows) and
    adds the answer tokens it feeds: the same choices and log-probs as re-running everything and
    renormalising over each row's tokens."""
    model = tiny_model(seed=1)
    if beam_size > 1:
        make_sep_likely(model, SEP_BIAS)
    rows = random_prefixes(seed=1)
    wrapped = InputSoftmaxStepModel(KerasStepModel(model, MAX_ANSWER_TOKENS))
    cached = beam_search(CachedScorer(wrapped, rows), 3, beam_size, MAX_ANSWER_TOKENS)
    full = beam_search(
        _InputAware(FullScorer(KerasStepModel(model, MAX_ANSWER_TOKENS), rows), rows),
        3, beam_size, MAX_ANSWER_TOKENS,
    )  # fmt: skip
    assert_same_decoding(cached, full)
    assert len(cached.log_probs) > 1
    # Every token written comes from its row's input.
    for prefix, finished in zip(rows, cached.finished, strict=True):
        for answer, _ in finished:
            assert set(answer) <= set(prefix) | {SEP}


class _FixedScores:
    """A step model whose next-token log-probs are the same `row` for every row and step."""

    def __init__(self, row: np.ndarray) -> None:
        self.row = np.log(row / row.sum())

    def prefill(self, token_ids: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, Any]:
        return np.tile(self.row, (len(lengths), 1)), len(lengths)

    def step(self, token_ids: np.ndarray, positions: np.ndarray, state: Any):
        return np.tile(self.row, (len(token_ids), 1)), len(token_ids)

    def select_rows(self, state: Any, rows: np.ndarray) -> Any:
        return len(rows)


def test_decoding_decides_no_answer_over_the_inputs_tokens_only() -> None:
    """A token the passage does not hold may not win the first step: a model trained with the
    input softmax never learned to push it down. Here token 9 (in no input) has the highest
    probability, then [SEP], then the passage's tokens."""
    probs = np.full(12, 0.01)
    probs[9], probs[SEP], probs[6] = 0.5, 0.3, 0.1
    prefixes = [[[CLS, 6, 7, SEP, 8, SEP]]]
    options: dict[str, Any] = {"sep_id": SEP, "pad_id": PAD, "max_answer_tokens": 3,
                               "banned_ids": (PAD, CLS)}  # fmt: skip
    plain = decode_batch(_FixedScores(probs), prefixes, **options)[0]
    assert plain.token_ids == [9, 9, 9]
    restricted = decode_batch(InputSoftmaxStepModel(_FixedScores(probs)), prefixes, **options)[0]
    assert restricted.token_ids is None
    # The vote for "no answer" is over the renormalised probabilities: 0.3 of the kept 0.43.
    kept = probs[[CLS, 6, 7, SEP, 8]].sum()
    p_sep = probs[SEP] / kept
    assert restricted.score == pytest.approx(p_sep**2 / (p_sep + 1))
    forced = decode_batch(InputSoftmaxStepModel(_FixedScores(probs)), prefixes,
                          force_answer=True, **options)[0]  # fmt: skip
    assert forced.token_ids is not None and set(forced.token_ids) <= {6, 7, 8}


def test_step_model_for_reads_the_manifests_setting() -> None:
    model = RecomputeStepModel(lambda *a, **k: None)
    assert step_model_for(model, "vocabulary") is model
    wrapped = step_model_for(model, "input")
    assert isinstance(wrapped, InputSoftmaxStepModel) and wrapped.pad_id == 0
    with pytest.raises(ValueError, match="answer_softmax"):
        step_model_for(model, "passage")


def test_evidence_decoding_through_the_wrapper_gives_the_same_answers() -> None:
    """`return_evidence` decodes with the attention outputs (`prefill_with_attention`,
    `step_with_attention`): wrapped too, so answers and scores are the ones without evidence."""
    model = tiny_model(seed=2)
    make_sep_likely(model, SEP_BIAS)
    wrapped = InputSoftmaxStepModel(KerasStepModel(model, MAX_ANSWER_TOKENS))
    assert wrapped.has_attention
    rows = random_prefixes(seed=2)
    prefixes = [rows[:2], rows[2:]]
    options: dict[str, Any] = {"sep_id": SEP, "max_answer_tokens": 4, "beam_size": 2,
                               "banned_ids": (PAD, CLS)}  # fmt: skip
    plain = decode_batch(wrapped, prefixes, **options)
    with_evidence = decode_batch(wrapped, prefixes, evidence=True, **options)
    for a, b in zip(plain, with_evidence, strict=True):
        assert a.token_ids == b.token_ids and a.score == pytest.approx(b.score)
        assert b.evidence is not None
    for answer, question in zip(plain, prefixes, strict=True):
        assert set(answer.token_ids or []) <= {t for row in question for t in row}
