"""JoSE spherical text embedding (Meng et al., "Spherical Text Embedding", NeurIPS 2019).

The names below import their module on first use (`models.lazy_exports`): the tokenizer and the
SavedModel reader (`models.jose.reader`) run without the Keras model code.
"""

from typing import Any

from models.lazy_exports import LazyExports

_EXPORTS = LazyExports(
    __name__,
    {
        "models.jose.export": ["export_saved_model"],
        "models.jose.jose_model": [
            "FoldInConfig", "JoseConfig", "JoseModel", "average_embedding", "fold_in_embedding",
            "hinge_steps", "learning_rate_at",
        ],
        "models.jose.pairs": [
            "ChunkedBatch", "TrainingTuples", "UnigramTable", "concatenate_tuples",
            "keep_probabilities", "make_training_tuples", "pack_chunks",
        ],
        "models.jose.reader": ["load_word_vectors"],
        "models.jose.tokenizer": ["Tokenizer", "Vocabulary"],
    },
)  # fmt: skip
__all__ = _EXPORTS.names


def __getattr__(name: str) -> Any:
    return _EXPORTS.resolve(name)
