"""Reads an exported JoSE SavedModel: its embedding signatures and its word vectors. Needs
TensorFlow and the signature names only, not the model code."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from models.jose.signatures import METHODS, OUTPUT_KEY, VOCAB_ASSET
from models.jose.tokenizer import Vocabulary
from models.saved_model import load_saved_model


class SavedModelJose:
    """The embedding signatures of an exported JoSE SavedModel (what the service drives).

    Args:
        path: the SavedModel folder.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.saved_model = load_saved_model(path)  # keeps the variables alive
        self.signatures: dict[str, Any] = {m: self.saved_model.signatures[m] for m in METHODS}

    def embed(self, method: str, token_ids: np.ndarray) -> np.ndarray:
        """[B, D] text vectors of `token_ids` int32 [B, L] (0 for padding) by `method`."""
        out: np.ndarray = self.signatures[method](token_ids=token_ids)[OUTPUT_KEY].numpy()
        return out


def load_word_vectors(saved_model_path: str | os.PathLike[str]) -> tuple[np.ndarray, Vocabulary]:
    """Reads the word vectors and the vocabulary back from an exported SavedModel."""
    loaded = tf.saved_model.load(os.fspath(saved_model_path))
    vocab = Vocabulary.load(Path(saved_model_path) / "assets" / VOCAB_ASSET)
    return loaded.word_vectors.numpy(), vocab
