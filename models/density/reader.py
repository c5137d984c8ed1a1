"""Reads an exported density SavedModel: scoring and sampling in data units (what the service
drives). Needs TensorFlow and the signature names only, not the model code."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import tensorflow as tf

from models.density.signatures import SIGNATURE_SAMPLE, SIGNATURE_SCORE, SIGNATURE_SCORE_EXACT
from models.saved_model import load_saved_model


class SavedModelDensity:
    """The scoring and sampling interface on an exported SavedModel (what the service drives).

    Args:
        saved_model: the SavedModel folder, or an already loaded SavedModel object.
    """

    def __init__(self, saved_model: str | os.PathLike[str] | Any) -> None:
        self.saved_model = load_saved_model(saved_model)
        signatures = self.saved_model.signatures
        self._score = signatures[SIGNATURE_SCORE]
        self._score_exact = signatures[SIGNATURE_SCORE_EXACT]
        self._sample = signatures[SIGNATURE_SAMPLE]
        self.input_dim = int(self.saved_model.input_dim.numpy())
        self.levels = int(self.saved_model.levels.numpy()) or None

    def score(self, x: Any, exact: bool = False) -> dict[str, np.ndarray]:
        """{"log_prob": [B], "bits_per_dim": [B]} of rows x [B, D] in data units."""
        fn = self._score_exact if exact else self._score
        out = fn(x=tf.convert_to_tensor(np.asarray(x, np.float32)))
        return {key: value.numpy() for key, value in out.items()}

    def sample(self, num_samples: int, seed: int) -> dict[str, np.ndarray]:
        """{"samples": [N, D], "iterations": [L], "last_change": [L]}."""
        out = self._sample(
            num_samples=tf.constant(num_samples, tf.int32), seed=tf.constant(seed, tf.int64)
        )
        return {key: value.numpy() for key, value in out.items()}
