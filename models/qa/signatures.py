"""The signatures of a QA (UniLM seq2seq) SavedModel; no TensorFlow here (the service imports it).

* `prefill(token_ids int32 [B, L], segment_ids int32 [B, L], lengths int32 [B])`
  -> `log_probs` float32 [B, V] (first answer token), `cache` float32 [layers, 2, B, heads, T, Dh],
  `attention` float32 [layers, B, L] (row b's last real token, which predicts the first answer
  token, over the prefix; per layer, averaged over the heads);
  rows are `[CLS] passage [SEP] question [SEP]` (`samples.build_prefix`) padded after `lengths`,
  T = L + max_answer_tokens (fixed at export). The cache's `layers` are the encoder's, plus one
  entry after them for a version trained with copy attention (`models.qa.copy_attention`: the
  source's copy keys and token ids), so its first axis may be one longer than `attention`'s.
* `step(token_ids int32 [B], cache float32 [layers, 2, B, heads, T, Dh], positions int32 [B])`
  -> `log_probs` float32 [B, V], `cache` (same shape), `attention` float32 [layers, B, T] (the
  new token over the cache slots it sees, < positions[b]; per layer, heads averaged);
  `positions[b] = lengths[b] + k` for the
  k-th answer token of row b (k = 0 for the token chosen from prefill's log-probs), < T.
  Versions exported before answers carried evidence have no `attention` output (the service
  refuses `return_evidence` for them, `EVIDENCE_UNSUPPORTED`).
* `reorder(cache float32 [layers, 2, B, heads, T, Dh], beam_indices int32 [B'])`
  -> `cache` [layers, 2, B', heads, T, Dh] (rows gathered: beams that survive).
* `full_logits(token_ids int32 [B, L], segment_ids int32 [B, L], padding_mask int32 [B, L])`
  -> `log_probs` float32 [B, L, V]: the no-cache reference (position t predicts token t + 1).
* `serving_default`: `full_logits`.
"""

from __future__ import annotations

from models.bert.lm_signatures import (
    ATTENTION_KEY,
    CACHE_KEY,
    LOG_PROBS_KEY,
    SIGNATURE_DEFAULT,
    SIGNATURE_FULL_LOGITS,
    SIGNATURE_PREFILL,
    SIGNATURE_STEP,
    VOCAB_ASSET_PATH,
)

SIGNATURE_REORDER = "reorder"
BEAM_INDICES = "beam_indices"

__all__ = [
    "ATTENTION_KEY",
    "BEAM_INDICES",
    "CACHE_KEY",
    "LOG_PROBS_KEY",
    "SIGNATURE_DEFAULT",
    "SIGNATURE_FULL_LOGITS",
    "SIGNATURE_PREFILL",
    "SIGNATURE_REORDER",
    "SIGNATURE_STEP",
    "VOCAB_ASSET_PATH",
]
