"""The answer's softmax over the tokens of its input only (`training.qa --answer-softmax input`).

A reader whose answers are spans of the passage never needs most of a 20k-250k vocabulary. Trained
with the plain softmax, its fresh or re-purposed MLM head must first learn to push every token the
passage does not hold below the few it does: with an encoder whose MLM head does not come with it
(a sentence-embedding checkpoint such as multilingual-e5), that is most of what the first
hundreds of steps teach. With `answer_softmax = "input"` each answer token's distribution is the
softmax of the head's logits over the tokens the row holds ([CLS] passage [SEP] question [SEP]
and the answer so far): training's loss (`models.qa.seq2seq.answer_window_loss`) and decoding
(`InputSoftmaxStepModel`) renormalise over the same set, so the probabilities the decoder votes
with are the ones the model was trained to give. The exported SavedModel is unchanged (it still
returns log-probabilities over the whole vocabulary); the manifest's `decoding.answer_softmax`
tells readers to renormalise (`step_model_for`).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from models.qa.decoding import StepModel

AnswerSoftmax = Literal["vocabulary", "input"]
ANSWER_SOFTMAXES: tuple[str, ...] = ("vocabulary", "input")


def input_tokens_mask(token_ids: np.ndarray, lengths: np.ndarray, vocab_size: int) -> np.ndarray:
    """[B, V] bool: the tokens row b holds among its first `lengths[b]`."""
    mask = np.zeros((len(lengths), vocab_size), bool)
    for row, (ids, length) in enumerate(zip(token_ids, lengths, strict=True)):
        mask[row, ids[: int(length)]] = True
    return mask


def restrict_log_probs(log_probs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Log-probabilities renormalised over each row's `mask` (-inf elsewhere).

    Equal to the log-softmax of the logits over the masked tokens: the model's log-softmax over
    the vocabulary differs from its logits by one constant a row, which renormalising removes.
    """
    log_probs = np.asarray(log_probs, np.float64)
    kept = np.where(mask, log_probs, -np.inf)
    top = kept.max(axis=1, keepdims=True)
    total = np.log(np.exp(kept - top).sum(axis=1, keepdims=True))
    return kept - top - total


class InputSoftmaxStepModel:
    """A `StepModel` whose next-token log-probabilities are renormalised over the tokens of each
    row's input: its prefix and the answer tokens fed so far. The set travels with the state, so
    `select_rows` (beams, passages leaving) keeps each row's own.

    Args:
        model: the step model of a version trained with `answer_softmax = "input"`; its
            `prefill_with_attention` / `step_with_attention` (evidence) are wrapped too when it
            has them.
    """

    def __init__(self, model: StepModel) -> None:
        self.model = model

    @property
    def has_attention(self) -> bool:
        return bool(getattr(self.model, "has_attention", False))

    def prefill(self, token_ids: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, Any]:
        log_probs, state = self.model.prefill(token_ids, lengths)
        mask = input_tokens_mask(np.asarray(token_ids), np.asarray(lengths), log_probs.shape[1])
        return restrict_log_probs(log_probs, mask), (state, mask)

    def step(
        self, token_ids: np.ndarray, positions: np.ndarray, state: Any
    ) -> tuple[np.ndarray, Any]:
        inner, mask = state
        log_probs, inner = self.model.step(token_ids, positions, inner)
        mask = _with_fed(mask, token_ids)
        return restrict_log_probs(log_probs, mask), (inner, mask)

    def select_rows(self, state: Any, rows: np.ndarray) -> Any:
        inner, mask = state
        return self.model.select_rows(inner, rows), mask[np.asarray(rows)]

    def prefill_with_attention(
        self, token_ids: np.ndarray, lengths: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, Any]:
        log_probs, attention, state = self.model.prefill_with_attention(  # type: ignore[attr-defined]
            token_ids, lengths
        )
        mask = input_tokens_mask(np.asarray(token_ids), np.asarray(lengths), log_probs.shape[1])
        return restrict_log_probs(log_probs, mask), attention, (state, mask)

    def step_with_attention(
        self, token_ids: np.ndarray, positions: np.ndarray, state: Any
    ) -> tuple[np.ndarray, np.ndarray, Any]:
        inner, mask = state
        log_probs, attention, inner = self.model.step_with_attention(  # type: ignore[attr-defined]
            token_ids, positions, inner
        )
        mask = _with_fed(mask, token_ids)
        return restrict_log_probs(log_probs, mask), attention, (inner, mask)

    def __getattr__(self, name: str) -> Any:
        # Anything else (full_logits, the SavedModel's metadata) is the wrapped model's.
        if name == "model":  # not set yet (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.model, name)


def _with_fed(mask: np.ndarray, token_ids: np.ndarray) -> np.ndarray:
    # The answer token just fed is part of the row's input from now on (training's set holds
    # the whole answer). With extractive decoding it is a passage token already.
    mask = mask.copy()
    mask[np.arange(len(mask)), np.asarray(token_ids)] = True
    return mask


def step_model_for(model: StepModel, answer_softmax: str) -> StepModel:
    """The step model a version's decoding uses: `model` itself, or wrapped when the version was
    trained with the input softmax (its manifest's `decoding.answer_softmax`)."""
    if answer_softmax == "input":
        return InputSoftmaxStepModel(model)
    if answer_softmax != "vocabulary":
        raise ValueError(
            f"answer_softmax must be one of {ANSWER_SOFTMAXES}, not {answer_softmax!r}"
        )
    return model
