"""Choosing the next token: temperature, top-k and nucleus (top-p) sampling, or greedy.

Applied in this order to a row's log-probabilities: temperature (softmax(log p / T); T = 0 is
greedy, the arg max), then top-k (keep the k most likely tokens; Fan et al., "Hierarchical Neural
Story Generation", ACL 2018), then top-p (keep the smallest set of most likely tokens whose
probability reaches p; Holtzman et al., "The Curious Case of Neural Text Degeneration", ICLR 2020),
then renormalise and draw with the request's own random generator, so that a seed gives the same
samples however the server batches the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SamplingParams:
    """How a request draws its tokens.

    Attributes:
        temperature: > 0 scales the log-probabilities (< 1 sharper, > 1 flatter); 0 is greedy.
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
        return self.temperature == 0 or self.top_k == 1


def sampling_distribution(
    log_probs: np.ndarray, params: SamplingParams, banned: Sequence[int] = ()
) -> np.ndarray:
    """The distribution a token is drawn from: [V] log-probabilities -> [V] probabilities.

    Args:
        log_probs: [V] the model's log-probabilities of the next token.
        params: temperature, top-k, top-p; a greedy `params` puts all mass on the arg max.
        banned: token ids never drawn ([PAD], [CLS], ...).
    """
    scores = np.asarray(log_probs, np.float64).copy()
    scores[list(banned)] = -np.inf
    if params.greedy:
        probs = np.zeros_like(scores)
        probs[int(np.argmax(scores))] = 1.0
        return probs
    scores /= params.temperature
    if params.top_k is not None and params.top_k < scores.size:
        kth = np.partition(scores, -params.top_k)[-params.top_k]
        scores[scores < kth] = -np.inf
    probs = np.exp(scores - scores.max())
    probs /= probs.sum()
    if params.top_p is not None and params.top_p < 1:
        order = np.argsort(-probs, kind="stable")
        cumulative = np.cumsum(probs[order])
        # A token stays if the tokens more likely than it have not yet reached p; the most
        # likely token always stays.
        keep = order[(cumulative - probs[order]) < params.top_p]
        kept = np.zeros_like(probs)
        kept[keep] = probs[keep]
        probs = kept / kept.sum()
    return probs


def choose_token(
    log_probs: np.ndarray,
    params: SamplingParams,
    rng: np.random.Generator,
    banned: Sequence[int] = (),
) -> int:
    """One token id drawn from `sampling_distribution` with `rng` (no draw when greedy)."""
    probs = sampling_distribution(log_probs, params, banned)
    if params.greedy:
        return int(np.argmax(probs))
    return int(rng.choice(probs.size, p=probs))
