"""One call that seeds every random number generator a training job uses."""

from __future__ import annotations

import keras


def set_seed(seed: int) -> None:
    """Seeds Python's `random`, NumPy's global generator and TensorFlow's global generator.

    Keras' `set_random_seed` seeds all three (and the Keras backend's `SeedGenerator`s), so
    model initialisation, dropout and `tf.random` ops repeat from run to run. Parallel CPU
    kernels may still sum in a different order; jobs that need bit-for-bit repeats can also
    call `tf.config.experimental.enable_op_determinism()`.

    Args:
        seed: a non-negative integer.

    Raises:
        ValueError: if `seed` is negative (NumPy rejects negative seeds).
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    keras.utils.set_random_seed(seed)
