"""Writes a JoSE SavedModel: word vectors with "average" and "fold_in" signatures
(`models.jose.signatures`; reading one back: `models.jose.reader`).

The SavedModel stands alone: `tf.saved_model.load(path).signatures["fold_in"](token_ids=...)`
needs neither Keras nor this project. `assets/vocab.txt` maps words to ids (line i is id i).
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import tensorflow as tf

from models.jose.jose_model import (
    FoldInConfig,
    average_embedding,
    fold_in_embedding,
    fold_in_negative_table,
)
from models.jose.signatures import OUTPUT_KEY, SIGNATURE_AVERAGE, SIGNATURE_FOLD_IN, VOCAB_ASSET
from models.jose.tokenizer import Vocabulary
from models.saved_model import write_saved_model

_TOKEN_IDS = tf.TensorSpec([None, None], tf.int32, name="token_ids")


class JoseServingModule(tf.Module):
    """What the SavedModel holds: fixed word vectors, fold-in negatives and the vocabulary asset.

    Args:
        word_vectors: [V, D] unit word vectors, row 0 for padding.
        negative_table: [L, S, K] fixed fold-in negatives (`fold_in_negative_table`).
        fold_in_config: fold-in settings, traced into the graph as constants.
        vocab_path: a file named vocab.txt, copied into `assets/`.
    """

    def __init__(
        self,
        word_vectors: np.ndarray,
        negative_table: np.ndarray,
        fold_in_config: FoldInConfig,
        vocab_path: str,
    ) -> None:
        super().__init__(name="jose_serving")
        self.word_vectors = tf.Variable(
            np.asarray(word_vectors, np.float32), trainable=False, name="word_vectors"
        )
        self.negative_table = tf.Variable(
            np.asarray(negative_table, np.int32), trainable=False, name="fold_in_negatives"
        )
        self.vocab_file = tf.saved_model.Asset(vocab_path)
        self._fold_in_config = fold_in_config

    @tf.function(input_signature=[_TOKEN_IDS])
    def average(self, token_ids: tf.Tensor) -> dict[str, tf.Tensor]:
        return {OUTPUT_KEY: average_embedding(self.word_vectors, token_ids)}

    @tf.function(input_signature=[_TOKEN_IDS])
    def fold_in(self, token_ids: tf.Tensor) -> dict[str, tf.Tensor]:
        return {
            OUTPUT_KEY: fold_in_embedding(
                self.word_vectors, token_ids, self.negative_table, self._fold_in_config
            )
        }


def export_saved_model(
    path: str | os.PathLike[str],
    word_vectors: np.ndarray,
    vocab: Vocabulary,
    fold_in_config: FoldInConfig,
) -> list[str]:
    """Writes the SavedModel (saved_model.pb, variables/, assets/vocab.txt) into `path`.

    Args:
        path: target folder (created; the job passes its temporary version folder).
        word_vectors: [len(vocab), D] word vectors; rows are re-normalised, row 0 zeroed.
        vocab: the vocabulary; its counts, when present, give the fold-in negatives their
            unigram^0.75 distribution.
        fold_in_config: fold-in settings.

    Returns:
        The signature names.
    """
    vectors = np.asarray(word_vectors, dtype=np.float32)
    if vectors.shape[0] != len(vocab):
        raise ValueError(f"{vectors.shape[0]} word vectors for a vocabulary of {len(vocab)}")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = np.where(norms > 0, vectors / np.maximum(norms, 1e-12), 0.0).astype(np.float32)
    vectors[0] = 0.0  # padding contributes nothing to an average
    negatives = fold_in_negative_table(vocab.counts, len(vocab), fold_in_config)
    with tempfile.TemporaryDirectory() as tmp:
        vocab_path = os.path.join(tmp, VOCAB_ASSET)
        vocab.save(vocab_path)
        module = JoseServingModule(vectors, negatives, fold_in_config, vocab_path)
        functions = {SIGNATURE_AVERAGE: module.average, SIGNATURE_FOLD_IN: module.fold_in}
        signatures = write_saved_model(path, module, functions, default=SIGNATURE_FOLD_IN)
    return sorted(signatures)
