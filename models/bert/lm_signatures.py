"""Names in a cached BERT language model's SavedModel (QA's and generation's): no TensorFlow here,
so that the service can name what it calls without importing the code that writes it.

Shapes: B rows, L prefix length (padded), V vocabulary, C condition width, T cache slots, and the
cache `[num_layers, 2, B, heads, T, head_size]` float32 (`models.bert.kv_cache`). Argument names
are the input tensor names; outputs are dicts keyed by `LOG_PROBS_KEY`, `CACHE_KEY`,
`CONDITION_KEY`. The families' `signatures` modules list which signatures each exports, with
which inputs.
"""

from __future__ import annotations

from models.bert.tokenizer import VOCAB_FILE

SIGNATURE_PREFILL = "prefill"
SIGNATURE_STEP = "step"
SIGNATURE_FULL_LOGITS = "full_logits"
# A labelled model's condition vectors (its label embedding rows).
SIGNATURE_LABEL_CONDITION = "label_condition"
# TensorFlow Serving's REST API calls this one when a request names no signature.
SIGNATURE_DEFAULT = "serving_default"

LOG_PROBS_KEY = "log_probs"
CACHE_KEY = "cache"
CONDITION_KEY = "condition"
# QA versions exported since answers carry evidence: `prefill` and `step` also return the
# attention of the token that predicts the next one over the prefix / cache, per layer, averaged
# over the heads (`models.qa.signatures`). Older versions lack this output.
ATTENTION_KEY = "attention"

# Input names (the signatures' keyword arguments).
TOKEN_IDS = "token_ids"
SEGMENT_IDS = "segment_ids"
PADDING_MASK = "padding_mask"
LENGTHS = "lengths"
POSITIONS = "positions"
LABEL_IDS = "label_ids"

# The variable holding a fixed cache length T (a generation model's); a QA model's T follows its
# prefix (L + max_answer_tokens) and has none.
CACHE_LENGTH_VARIABLE = "cache_length"

VOCAB_ASSET_PATH = f"assets/{VOCAB_FILE}"

# Axes of the cache [num_layers, 2, B, heads, T, head_size]: rows (beams, passages, samples) and
# slots (slot j holds position j).
CACHE_BATCH_AXIS = 2
CACHE_SLOT_AXIS = 4
