"""The signatures of a conditional-LM SavedModel; no TensorFlow here (the service imports it).

* `label_condition(label_ids int32 [B])` -> `condition` float32 [B, C] (labelled models only);
* `prefill(token_ids int32 [B, L], lengths int32 [B], condition float32 [B, C])`
  -> `log_probs` float32 [B, V] (the token after each prefix), `cache` [layers, 2, B, heads, T, Dh];
* `step(token_ids int32 [B], positions int32 [B], cache, condition float32 [B, C])`
  -> `log_probs` [B, V], `cache`; `positions[b]` is where row b's token goes (< T);
* `full_logits(token_ids int32 [B, L], padding_mask int32 [B, L], condition float32 [B, C])`
  -> `log_probs` [B, L, V], the no-cache reference; also `serving_default`.

T, the cache slots (the longest text, `[CLS]` included), is fixed at export and kept in the
SavedModel's `CACHE_LENGTH_VARIABLE`.
"""

from __future__ import annotations

from models.bert.lm_signatures import (
    CACHE_KEY,
    CACHE_LENGTH_VARIABLE,
    CONDITION_KEY,
    LABEL_IDS,
    LOG_PROBS_KEY,
    SIGNATURE_DEFAULT,
    SIGNATURE_FULL_LOGITS,
    SIGNATURE_LABEL_CONDITION,
    SIGNATURE_PREFILL,
    SIGNATURE_STEP,
    VOCAB_ASSET_PATH,
)

__all__ = [
    "CACHE_KEY",
    "CACHE_LENGTH_VARIABLE",
    "CONDITION_KEY",
    "LABEL_IDS",
    "LOG_PROBS_KEY",
    "SIGNATURE_DEFAULT",
    "SIGNATURE_FULL_LOGITS",
    "SIGNATURE_LABEL_CONDITION",
    "SIGNATURE_PREFILL",
    "SIGNATURE_STEP",
    "VOCAB_ASSET_PATH",
]
