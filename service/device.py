"""Where TensorFlow runs. It places ops on a visible GPU by itself; here we only narrow the choice
and make several models share one card."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def configure_devices(device: str, mixed_precision: bool) -> str:
    """Apply DEVICE and MIXED_PRECISION before any model loads; return what was chosen."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    choice = device.strip().lower()
    try:
        if choice == "cpu":
            tf.config.set_visible_devices([], "GPU")
            gpus = []
        elif choice.startswith("gpu:"):
            index = int(choice.split(":", 1)[1])
            if index >= len(gpus):
                raise ValueError(f"DEVICE={device} but TensorFlow sees {len(gpus)} GPU(s)")
            gpus = [gpus[index]]
            tf.config.set_visible_devices(gpus, "GPU")
        elif choice != "auto":
            raise ValueError(f"DEVICE must be 'auto', 'cpu' or 'gpu:N', not {device!r}")
        # Without memory growth the first model takes the whole card and the next one fails.
        for gpu in gpus:
            tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError:
        # TensorFlow was initialised already (a second app in one process, as in tests).
        log.warning("devices already initialised; DEVICE=%s not reapplied", device)
    if mixed_precision and gpus:
        # A graph rewrite, so it applies to loaded SavedModels too, not only to Keras layers.
        tf.config.optimizer.set_experimental_options({"auto_mixed_precision": True})
    if not gpus and choice != "cpu" and tf.test.is_built_with_cuda():
        # TensorFlow's reasons (cuInit, driver versions) are C++ log lines, hidden by default.
        log.warning(
            "TensorFlow is built with CUDA but sees no GPU: serving on the CPU "
            "(TF_CPP_MIN_LOG_LEVEL=0 shows TensorFlow's reasons)"
        )
    chosen = f"gpu x{len(gpus)}" if gpus else "cpu"
    log.info("devices: %s (DEVICE=%s, mixed precision %s)", chosen, device, mixed_precision)
    return chosen
