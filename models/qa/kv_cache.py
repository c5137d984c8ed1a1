"""Incremental decoding of a `UniLMSeq2Seq`: the shared cached LM task (`models.bert.kv_cache`)
with QA's cache, which grows with the prefix: `prefill` of `[CLS] passage [SEP] question [SEP]`
rows padded to L leaves `max_answer_tokens` free slots (T = L + max_answer_tokens), and each
answer token (segment 1) then costs one step. Beams reorder the cache with `select_rows`.
"""

from __future__ import annotations

from models.bert.kv_cache import KerasLMStepModel
from models.qa.seq2seq import UniLMSeq2Seq


class KerasStepModel(KerasLMStepModel):
    """The step protocol on an in-memory QA model (training's evaluation, tests, benchmarks).

    Args:
        model: the seq2seq model.
        max_answer_tokens: answer slots `prefill` preallocates after each prefix.
        jit_compile: XLA-compile the functions (compiles once per input shape).
    """

    def __init__(self, model: UniLMSeq2Seq, max_answer_tokens: int, jit_compile: bool = False):
        super().__init__(model, free_slots=max_answer_tokens, jit_compile=jit_compile)
        self.max_answer_tokens = max_answer_tokens
