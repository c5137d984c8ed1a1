"""Host arrays to the dtypes the exported signatures declare (token ids int32, features float32)."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf


def int32_tensor(x: Any) -> tf.Tensor:
    return tf.convert_to_tensor(np.asarray(x, np.int32))


def float32_tensor(x: Any) -> tf.Tensor:
    return tf.convert_to_tensor(np.asarray(x, np.float32))
