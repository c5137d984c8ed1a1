"""Writing and reading a family's SavedModel: the steps every family's writer and reader share."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf


def write_saved_model(
    path: str | os.PathLike[str], module: tf.Module, functions: Mapping[str, Any], default: str
) -> list[str]:
    """Saves `module` into `path` with a signature per `tf.function` of `functions` (each with its
    input signature) and `serving_default` for `functions[default]`, the one TensorFlow Serving's
    REST API calls when a request names no signature.

    The functions go to `tf.saved_model.save` as they are, not as concrete functions: a concrete
    function made before the save was traced outside the save's context, so the save traced every
    function of the module once more for its own serialisation (twice the tracing, which is most
    of an export's time: 58 s against 39 s for the 2-D density model; docs/benchmarks.md).

    Returns:
        The signature names, in the order of `functions`, `serving_default` last.
    """
    signatures = dict(functions)
    signatures[tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY] = functions[default]
    tf.saved_model.save(module, os.fspath(path), signatures=signatures)
    return list(signatures)


def load_saved_model(saved_model: str | os.PathLike[str] | Any) -> Any:
    """The loaded SavedModel of a folder, or `saved_model` itself when it is already loaded."""
    if isinstance(saved_model, (str, os.PathLike)):
        return tf.saved_model.load(os.fspath(saved_model))
    return saved_model


# A SavedModel variable's key in its checkpoint: <object path>/.ATTRIBUTES/VARIABLE_VALUE.
_VARIABLE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


def non_finite_variables(saved_model: str | os.PathLike[str]) -> tuple[list[str], int]:
    """The floating-point variables of the SavedModel folder `saved_model` that hold NaN or
    infinity, by their object path, and how many floating-point variables it has.

    One pass over the variables as the checkpoint in `variables/` stores them, one tensor at a
    time (no graph is loaded); a SavedModel without variables has none.
    """
    prefix = os.path.join(os.fspath(saved_model), "variables", "variables")
    if not os.path.isfile(prefix + ".index"):
        return [], 0
    reader = tf.train.load_checkpoint(prefix)
    bad, count = [], 0
    for key, dtype in sorted(reader.get_variable_to_dtype_map().items()):
        if not dtype.is_floating:
            continue
        count += 1
        value = reader.get_tensor(key)
        if value.dtype.kind != "f":  # bfloat16 comes back as a numpy extension type
            value = value.astype("float32")
        if not np.isfinite(value).all():
            bad.append(key.removesuffix(_VARIABLE_SUFFIX))
    return bad, count
