"""JoSE spherical text embedding (Meng et al., "Spherical Text Embedding", NeurIPS 2019)."""

from models.jose.export import export_saved_model, load_word_vectors
from models.jose.jose_model import (
    FoldInConfig,
    JoseConfig,
    JoseModel,
    average_embedding,
    fold_in_embedding,
    hinge_steps,
    learning_rate_at,
)
from models.jose.pairs import (
    ChunkedBatch,
    TrainingTuples,
    UnigramTable,
    concatenate_tuples,
    keep_probabilities,
    make_training_tuples,
    pack_chunks,
)
from models.jose.tokenizer import Tokenizer, Vocabulary

__all__ = [
    "ChunkedBatch",
    "FoldInConfig",
    "JoseConfig",
    "JoseModel",
    "Tokenizer",
    "TrainingTuples",
    "UnigramTable",
    "Vocabulary",
    "average_embedding",
    "concatenate_tuples",
    "export_saved_model",
    "fold_in_embedding",
    "hinge_steps",
    "keep_probabilities",
    "learning_rate_at",
    "load_word_vectors",
    "make_training_tuples",
    "pack_chunks",
]
