"""Keras stays out of the service's process: imported by `service/__main__.py` before TensorFlow.

TensorFlow's import imports Keras (its optimizers, for `tf.keras`), and Keras imports
scikit-learn: about 3.3 s of the 8 s of CPU a server's TensorFlow import takes, and memory, for
nothing the service uses. The service loads SavedModels with `tf.saved_model.load` and calls
their signatures; it never touches `tf.keras` (tests/service/test_runtime_imports.py: the
runtimes import no Keras model code). With TF_USE_LEGACY_KERAS=1 and no `tf_keras` installed,
TensorFlow's attempt to import `tf_keras` for `tf.keras` fails quietly and Keras is not imported.

A value set by the user wins, and with `tf_keras` installed nothing is set (there the variable
would switch `tf.keras` to Keras 2, which somebody installed it for). Training jobs import Keras
themselves and do not import this module.
"""

from __future__ import annotations

import importlib.util
import os

if importlib.util.find_spec("tf_keras") is None:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
