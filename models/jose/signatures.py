"""The JoSE SavedModel's contract (no TensorFlow here, so that readers and the service can name
it without the model code).

Signatures (input `token_ids` int32 [B, L], 0 for padding; output `embedding` float32 [B, D]):

* `average`: the normalised mean of the texts' word vectors;
* `fold_in` (also `serving_default`): the text vector fitted to the fixed word vectors
  (`models.jose.jose_model.fold_in_embedding`).

`assets/vocab.txt` maps words to ids (line i is id i); the variable `word_vectors` holds the
[V, D] unit word vectors.
"""

VOCAB_ASSET = "vocab.txt"
SIGNATURE_AVERAGE = "average"
SIGNATURE_FOLD_IN = "fold_in"
SIGNATURE_DEFAULT = "serving_default"
OUTPUT_KEY = "embedding"
# The embedding methods a request may name: the signatures, default first.
METHODS = (SIGNATURE_FOLD_IN, SIGNATURE_AVERAGE)
