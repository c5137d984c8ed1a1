"""Key/value cache: decoding with prefill/step/reorder gives the tokens of full recomputation.

The reference recomputes `full_logits` over `[prefix] + answer so far` at every step (no cache).
`beam_search` below is a small test-only decoder over several prefixes at once (rows of one
batch at different prefix lengths), beams reordering the cache as a real decoder does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
import pytest

from models.bert.kv_cache import select_rows
from models.qa.kv_cache import KerasStepModel
from models.qa.seq2seq import UniLMSeq2Seq, build_qa_model, small_qa_config

VOCAB_SIZE = 40
SEP = 3
MAX_ANSWER_TOKENS = 6
PREFIX_LENGTHS = (9, 4, 13)
# Spread of the random weights of `tiny_model` (as the checkpoint tests' random weights).
RANDOM_WEIGHT_STD = 0.3
# Added to [SEP]'s logit so that some beams end early and a greedy row ends at once.
SEP_BIAS = 1.0


def tiny_model(seed: int = 0, max_position: int = 32, copy_attention: bool = False) -> UniLMSeq2Seq:
    """A tiny model with large random weights, so that its outputs depend on the context (BERT's
    0.02 initialisation gives near-uniform outputs that a bug in the cache would hardly move)."""
    keras.utils.set_random_seed(seed)
    config = small_qa_config(
        VOCAB_SIZE, max_position, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32
    )
    model = build_qa_model(config, copy_attention=copy_attention)
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        if len(variable.shape) == 2:
            variable.assign(rng.normal(0.0, RANDOM_WEIGHT_STD, variable.shape).astype(np.float32))
    return model


def random_prefixes(seed: int = 0, lengths: tuple[int, ...] = PREFIX_LENGTHS) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [[2, *rng.integers(5, VOCAB_SIZE, n - 2).tolist(), SEP] for n in lengths]


def pad(rows: list[list[int]]) -> np.ndarray:
    out = np.zeros((len(rows), max(map(len, rows))), np.int32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


class CachedScorer:
    """Next-token log-probs through prefill / select_rows / step."""

    def __init__(self, step_model: Any, prefixes: list[list[int]]) -> None:
        self.step_model = step_model
        self.prefixes = prefixes
        self.cache: Any = None

    def start(self) -> np.ndarray:
        ids = pad(self.prefixes)
        lengths = np.array([len(p) for p in self.prefixes])
        log_probs, self.cache = self.step_model.prefill(ids, lengths)
        return np.asarray(log_probs)

    def advance(
        self, parents: list[int], owners: list[int], answers: list[list[int]]
    ) -> np.ndarray:
        self.cache = self.step_model.select_rows(self.cache, np.array(parents))
        tokens = [answer[-1] for answer in answers]
        positions = [
            len(self.prefixes[o]) + len(a) - 1 for o, a in zip(owners, answers, strict=True)
        ]
        log_probs, self.cache = self.step_model.step(
            np.array(tokens), np.array(positions), self.cache
        )
        return np.asarray(log_probs)


class FullScorer:
    """Next-token log-probs by running every `[prefix] + answer` again (the reference)."""

    def __init__(self, step_model: Any, prefixes: list[list[int]]) -> None:
        self.step_model = step_model
        self.prefixes = prefixes

    def _last(self, owners: list[int], answers: list[list[int]]) -> np.ndarray:
        rows = [self.prefixes[o] + a for o, a in zip(owners, answers, strict=True)]
        ids = pad(rows)
        segments = np.zeros_like(ids)
        for i, (o, a) in enumerate(zip(owners, answers, strict=True)):
            segments[i, len(self.prefixes[o]) : len(self.prefixes[o]) + len(a)] = 1
        log_probs = self.step_model.full_logits(
            ids, (ids != 0).astype(np.int32), segment_ids=segments
        )
        return np.stack([log_probs[i, len(row) - 1] for i, row in enumerate(rows)])

    def start(self) -> np.ndarray:
        return self._last(list(range(len(self.prefixes))), [[] for _ in self.prefixes])

    def advance(
        self, parents: list[int], owners: list[int], answers: list[list[int]]
    ) -> np.ndarray:
        return self._last(owners, answers)


@dataclass
class Decoded:
    finished: list[list[tuple[list[int], float]]]
    alive: list[tuple[int, list[int], float]] = field(default_factory=list)
    log_probs: list[np.ndarray] = field(default_factory=list)


def beam_search(scorer: Any, num_prefixes: int, beam_size: int, max_tokens: int) -> Decoded:
    """Beam search per prefix, all prefixes' beams as rows of one batch; [SEP] ends a beam."""
    log_probs = scorer.start()
    # Rows: (prefix it belongs to, answer so far, score).
    alive: list[tuple[int, list[int], float]] = [(p, [], 0.0) for p in range(num_prefixes)]
    out = Decoded(finished=[[] for _ in range(num_prefixes)])
    for _ in range(max_tokens):
        out.log_probs.append(log_probs)
        chosen: list[tuple[int, list[int], float]] = []
        parents: list[int] = []
        for p in range(num_prefixes):
            rows = [i for i, row in enumerate(alive) if row[0] == p]
            if not rows:
                continue
            totals = np.array([alive[i][2] for i in rows])[:, None] + log_probs[rows]
            for flat in np.argsort(-totals, axis=None, kind="stable")[:beam_size]:
                r, token = divmod(int(flat), totals.shape[1])
                answer = alive[rows[r]][1] + [token]
                if token == SEP:
                    out.finished[p].append((answer, float(totals.flat[flat])))
                else:
                    chosen.append((p, answer, float(totals.flat[flat])))
                    parents.append(rows[r])
        if not chosen:
            break
        alive = chosen
        log_probs = scorer.advance(parents, [c[0] for c in chosen], [c[1] for c in chosen])
    out.alive = alive
    return out


def assert_same_decoding(cached: Decoded, full: Decoded) -> None:
    assert [[a for a, _ in f] for f in cached.finished] == [
        [a for a, _ in f] for f in full.finished
    ]
    assert [(p, a) for p, a, _ in cached.alive] == [(p, a) for p, a, _ in full.alive]
    np.testing.assert_allclose(
        [s for *_, s in cached.alive], [s for *_, s in full.alive], atol=1e-4
    )
    assert len(cached.log_probs) == len(full.log_probs)
    for c, f in zip(cached.log_probs, full.log_probs, strict=True):
        np.testing.assert_allclose(c, f, atol=1e-4)


def make_sep_likely(model: UniLMSeq2Seq, bias: float) -> None:
    """Raise [SEP]'s output bias so that some beams finish early (exercises shrinking beams)."""
    values = model.mlm_head.output_bias.numpy()
    values[SEP] += bias
    model.mlm_head.output_bias.assign(values)


@pytest.mark.parametrize("copy_attention", [False, True], ids=["vocabulary", "copy"])
@pytest.mark.parametrize("beam_size", [1, 3])
def test_cached_decoding_equals_full_recomputation(beam_size: int, copy_attention: bool) -> None:
    model = tiny_model(copy_attention=copy_attention)
    make_sep_likely(model, SEP_BIAS)
    step_model = KerasStepModel(model, MAX_ANSWER_TOKENS)
    prefixes = random_prefixes()
    cached = beam_search(CachedScorer(step_model, prefixes), 3, beam_size, MAX_ANSWER_TOKENS)
    full = beam_search(FullScorer(step_model, prefixes), 3, beam_size, MAX_ANSWER_TOKENS)
    assert_same_decoding(cached, full)
    # The test decodes something: answers of several tokens, and some beams (or a whole prefix,
    # which the cache then drops) ended by [SEP].
    assert max(len(a) for _, a, _ in cached.alive) == MAX_ANSWER_TOKENS
    assert any(cached.finished)


@pytest.mark.parametrize("copy_attention", [False, True], ids=["vocabulary", "copy"])
def test_prefill_shapes_and_padding_independence(copy_attention: bool) -> None:
    model = tiny_model(seed=1, copy_attention=copy_attention)
    step_model = KerasStepModel(model, MAX_ANSWER_TOKENS)
    prefixes = random_prefixes(seed=1)
    ids = pad(prefixes)
    lengths = np.array([len(p) for p in prefixes])
    log_probs, cache = step_model.prefill(ids, lengths)
    config = model.config
    head_size = config.hidden_size // config.num_heads
    assert log_probs.shape == (3, VOCAB_SIZE)
    # Copy attention keeps its keys and the source's tokens as one more entry.
    layers = config.num_layers + int(copy_attention)
    expected = (layers, 2, 3, config.num_heads, ids.shape[1] + MAX_ANSWER_TOKENS)
    assert tuple(cache.shape) == (*expected, head_size)
    np.testing.assert_allclose(np.exp(log_probs).sum(-1), 1.0, atol=1e-5)
    # More padding changes nothing for any row.
    wider = np.pad(ids, [(0, 0), (0, 5)])
    wider_log_probs, _ = step_model.prefill(wider, lengths)
    np.testing.assert_allclose(wider_log_probs, log_probs, atol=1e-5)


def test_select_rows_gathers_rows() -> None:
    cache = np.arange(2 * 2 * 3 * 1 * 2 * 1, dtype=np.float32).reshape(2, 2, 3, 1, 2, 1)
    out = select_rows(cache, np.array([2, 2, 0])).numpy()
    np.testing.assert_array_equal(out, cache[:, :, [2, 2, 0]])


@pytest.mark.parametrize("copy_attention", [False, True], ids=["vocabulary", "copy"])
def test_rows_at_different_steps_share_a_batch(copy_attention: bool) -> None:
    """Row 0 fed two answer tokens, row 1 none yet: one step call serves both."""
    model = tiny_model(seed=2, copy_attention=copy_attention)
    step_model = KerasStepModel(model, MAX_ANSWER_TOKENS)
    prefixes = random_prefixes(seed=2, lengths=(7, 10))
    ids = pad(prefixes)
    lengths = np.array([7, 10])
    _, cache = step_model.prefill(ids, lengths)
    _, cache = step_model.step(np.array([11, 12]), lengths, cache)  # row 1's token is discarded
    cache = step_model.select_rows(cache, np.array([0, 1]))
    # Row 1 restarts at its first answer slot: it overwrites what the discarded token wrote.
    log_probs, _ = step_model.step(np.array([13, 14]), np.array([8, 10]), cache)
    full = FullScorer(step_model, prefixes)._last([0, 1], [[11, 13], [14]])
    np.testing.assert_allclose(log_probs, full, atol=1e-4)
