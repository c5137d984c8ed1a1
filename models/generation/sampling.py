"""Choosing the next token: temperature, top-k and nucleus (top-p) sampling, or greedy.

Applied in this order to a row's log-probabilities: temperature (softmax(log p / T); T below
`MIN_TEMPERATURE`, 0 included, is greedy, the arg max), then top-k (keep the k most likely
tokens; Fan et al., "Hierarchical Neural Story Generation", ACL 2018), then top-p (keep the
smallest set of most likely tokens whose probability reaches p; Holtzman et al., "The Curious Case
of Neural Text Degeneration", ICLR 2020), then renormalise and draw with the request's own random
generator, so that a seed gives the same samples however the server batches the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Below this temperature a row is greedy, exactly as at 0. softmax(log p / T) needs log p / T to
# be a number: for T = 1e-320 (a float64 subnormal) it overflows to -inf for every token and the
# row's distribution is NaN, while T >= 1e-4 keeps |log p| / T under 3.4e42 even for float32's
# largest log-probability magnitude (3.4e38), far inside float64. Nothing is lost by the switch:
# at T = 1e-4 a token 0.01 nats less likely than the best is drawn e^-100 times as often, so the
# draw already differs from the arg max only between tokens within about 1e-3 nats of it.
MIN_TEMPERATURE = 1e-4


@dataclass(frozen=True)
class SamplingParams:
    """How a request draws its tokens.

    Attributes:
        temperature: scales the log-probabilities (< 1 sharper, > 1 flatter); under
            `MIN_TEMPERATURE` (0 included) greedy.
        top_k: keep only the k most likely tokens (None: all).
        top_p: keep only the most likely tokens whose probabilities sum to at least p, in (0, 1]
            (None: all).
    """

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None

    def __post_init__(self) -> None:
        if not self.temperature >= 0:
            raise ValueError(f"temperature must be >= 0, not {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, not {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], not {self.top_p}")

    @property
    def greedy(self) -> bool:
        return self.temperature < MIN_TEMPERATURE or self.top_k == 1


# Nucleus candidates looked at first: the nucleus almost always lies among the most likely
# thousand tokens, found by a partial sort (O(V)); a row whose candidates do not reach p falls
# back to sorting its whole distribution.
NUCLEUS_CANDIDATES = 1024


def _filtered_scores(
    log_probs: np.ndarray, params: Sequence[SamplingParams], banned: Sequence[int]
) -> np.ndarray:
    """[B, V] scores after banning, temperature and top-k (-inf where a token is out)."""
    scores = np.array(log_probs, np.float64, ndmin=2)
    if len(banned):
        scores[:, list(banned)] = -np.inf
    vocab = scores.shape[1]
    temperatures = np.array([p.temperature if not p.greedy else 1.0 for p in params])
    scores /= temperatures[:, None]
    top_ks = np.array([p.top_k or 0 for p in params])
    for k in {int(k) for k in top_ks if 0 < k < vocab}:
        rows = np.flatnonzero(top_ks == k)
        block = scores[rows]
        kth = np.partition(block, vocab - k, axis=1)[:, vocab - k]
        block[block < kth[:, None]] = -np.inf
        scores[rows] = block
    return scores


def _supports(scores: np.ndarray, top_ps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row, the tokens it draws from and their (unnormalised) weights, both [B, M]:
    softmax, then the nucleus (a token stays if the tokens more likely than it have not yet
    reached p; the most likely one always stays) where top_p < 1. Vectorised over rows."""
    scores = scores - scores.max(axis=1, keepdims=True)
    probs = np.exp(scores)
    probs /= probs.sum(axis=1, keepdims=True)
    batch, vocab = probs.shape
    if vocab > NUCLEUS_CANDIDATES:
        split = vocab - NUCLEUS_CANDIDATES
        candidates = np.argpartition(probs, split, axis=1)[:, split:]
    else:
        candidates = np.broadcast_to(np.arange(vocab), (batch, vocab))
    weights = np.take_along_axis(probs, candidates, axis=1)
    order = np.argsort(-weights, axis=1, kind="stable")
    tokens = np.take_along_axis(candidates, order, axis=1)
    weights = np.take_along_axis(weights, order, axis=1)
    cumulative = np.cumsum(weights, axis=1)
    short = np.flatnonzero(cumulative[:, -1] < np.minimum(top_ps, 1.0) - 1e-12)
    if short.size:  # rare: the nucleus is wider than the candidates; sort these rows fully
        full_order = np.argsort(-probs[short], axis=1, kind="stable")
        full = (full_order, np.take_along_axis(probs[short], full_order, axis=1))
        return _keep_nucleus(tokens, weights, top_ps, short, full)
    return _keep_nucleus(tokens, weights, top_ps)


def _keep_nucleus(
    tokens: np.ndarray,
    weights: np.ndarray,
    top_ps: np.ndarray,
    short: np.ndarray | None = None,
    full: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    if short is not None and full is not None:
        # Widen every row to the full vocabulary (padding with zero weights) for the short ones.
        vocab = full[0].shape[1]
        pad = vocab - tokens.shape[1]
        tokens = np.pad(tokens, ((0, 0), (0, pad)))
        weights = np.pad(weights, ((0, 0), (0, pad)))
        tokens[short], weights[short] = full
    cumulative = np.cumsum(weights, axis=1)
    keep = (cumulative - weights) < top_ps[:, None]
    return tokens, np.where(keep, weights, 0.0)


def _top_ps(params: Sequence[SamplingParams]) -> np.ndarray:
    # Without top-p every token stays: a threshold above any cumulative sum.
    return np.array([p.top_p if p.top_p is not None and p.top_p < 1 else 2.0 for p in params])


def sampling_distribution(
    log_probs: np.ndarray, params: SamplingParams, banned: Sequence[int] = ()
) -> np.ndarray:
    """The distribution a token is drawn from: [V] log-probabilities -> [V] probabilities.

    Args:
        log_probs: [V] the model's log-probabilities of the next token.
        params: temperature, top-k, top-p; a greedy `params` puts all mass on the arg max.
        banned: token ids never drawn ([PAD], [CLS], ...).
    """
    scores = _filtered_scores(log_probs, [params], banned)
    out = np.zeros(scores.shape[1])
    if params.greedy:
        out[int(np.argmax(scores[0]))] = 1.0
        return out
    tokens, weights = _supports(scores, _top_ps([params]))
    np.add.at(out, tokens[0], weights[0])
    return out / out.sum()


def choose_tokens(
    log_probs: np.ndarray,
    params: Sequence[SamplingParams],
    rngs: Sequence[np.random.Generator],
    banned: Sequence[int] = (),
) -> np.ndarray:
    """One token per row of [B, V] log-probabilities, row b drawn from
    `sampling_distribution(log_probs[b], params[b], banned)` with one uniform number of `rngs[b]`
    (none for a greedy row). Temperature, top-k and the softmax run on the whole batch at once,
    the nucleus from a partial sort: a decode step's sampling costs little beside the model's."""
    scores = _filtered_scores(log_probs, params, banned)
    chosen = np.argmax(scores, axis=1)
    drawn = np.flatnonzero([not p.greedy for p in params])
    if drawn.size == 0:
        return chosen
    tokens, weights = _supports(scores[drawn], _top_ps([params[i] for i in drawn.tolist()]))
    cumulative = np.cumsum(weights, axis=1)
    u = np.array([rngs[i].random() for i in drawn.tolist()]) * cumulative[:, -1]
    index = np.minimum((cumulative <= u[:, None]).sum(axis=1), tokens.shape[1] - 1)
    chosen[drawn] = tokens[np.arange(drawn.size), index]
    return chosen


def choose_token(
    log_probs: np.ndarray,
    params: SamplingParams,
    rng: np.random.Generator,
    banned: Sequence[int] = (),
) -> int:
    """`choose_tokens` for one row."""
    return int(choose_tokens(np.asarray(log_probs)[None], [params], [rng], banned)[0])
