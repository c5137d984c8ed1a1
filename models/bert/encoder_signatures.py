"""The sentence-encoder SavedModel's contract (no TensorFlow here, so that readers and the service
can name it without the model code).

Signatures (inputs int32 [B, L] each: `token_ids`, `segment_ids`, `padding_mask`, 1 = real token):

* `embed` (also `serving_default`): `embedding` float32 [B, H], the mean of the token states over
  real tokens (Reimers & Gurevych 2019, "MEAN strategy"), NOT normalised: callers (the service's
  route, sentence-transformers' `Normalize` module) scale to unit length when they want it;
* `encode`: `embedding` as above and `token_states` float32 [B, L, H], the last layer's states;
* `embed_packed` (inputs int32 [R, W] each: `token_ids`, `position_ids`, `sequence_ids`):
  `embedding` float32 [R, K, H], several texts packed into each row, one after another, each with
  its own positions from 0 and its own `sequence_ids` 1..K (0 for padding); attention stays
  within a text (`models.bert.masks.packed_mask`), so slot k - 1 of a row is text k's mean-pooled
  vector, as `embed` gives it alone. K, the most texts a row holds, is static in the output's
  shape. Exports from before it was added lack this signature.

`assets/vocab.txt` is the checkpoint's WordPiece vocabulary (line i is id i).
"""

from models.bert.tokenizer import VOCAB_FILE

SIGNATURE_EMBED = "embed"
SIGNATURE_ENCODE = "encode"
SIGNATURE_EMBED_PACKED = "embed_packed"
SIGNATURE_DEFAULT = "serving_default"
EMBEDDING_KEY = "embedding"
TOKEN_STATES_KEY = "token_states"
# Where the vocabulary lands inside the SavedModel folder (tf.saved_model.Asset keeps the name).
VOCAB_ASSET_PATH = f"assets/{VOCAB_FILE}"
# The only pooling exported so far: sentence-transformers' `pooling_mode_mean_tokens`.
POOLING_MEAN = "mean"
POOLING_MODES = (POOLING_MEAN,)
