"""Incremental decoding of a `ConditionalLM`: the shared cached LM task (`models.bert.kv_cache`)
with generation's cache, fixed at `cache_length` slots (the longest text), so that rows which
started at different times, with prompts of different lengths, share one batch and a server can
add and remove rows between steps; the condition enters every step.
"""

from __future__ import annotations

from models.bert.kv_cache import KerasLMStepModel
from models.generation.lm import ConditionalLM


class KerasGenerationStepModel(KerasLMStepModel):
    """The step protocol on an in-memory conditional LM (training's evaluation, tests).

    Args:
        model: the conditional LM.
        cache_length: T, the cache slots `prefill` allocates (at most the position table).
    """

    def __init__(self, model: ConditionalLM, cache_length: int | None = None) -> None:
        super().__init__(model, cache_length)
