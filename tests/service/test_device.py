from __future__ import annotations

import pytest

from service.device import configure_devices


def test_cpu_and_auto_choose_what_is_visible() -> None:
    assert configure_devices("cpu", mixed_precision=True) == "cpu"
    import tensorflow as tf

    expected = "cpu" if not tf.config.list_physical_devices("GPU") else "gpu"
    assert configure_devices("auto", mixed_precision=False).startswith(expected)


def test_bad_device_settings_fail_loudly() -> None:
    with pytest.raises(ValueError, match="DEVICE must be"):
        configure_devices("tpu", mixed_precision=False)
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        with pytest.raises(ValueError, match="sees 0 GPU"):
            configure_devices("gpu:0", mixed_precision=False)
