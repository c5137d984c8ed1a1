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


def test_a_cuda_build_without_a_gpu_says_so_and_how_to_see_why(monkeypatch, caplog) -> None:
    # TensorFlow's own reasons (cuInit...) are C++ lines the service hides by default
    # (models/tf_logging.py); its log says where they went.
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is visible")
    monkeypatch.setattr(tf.test, "is_built_with_cuda", lambda: True)
    with caplog.at_level("WARNING", logger="service.device"):
        assert configure_devices("auto", mixed_precision=False) == "cpu"
    assert "TF_CPP_MIN_LOG_LEVEL=0" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="service.device"):
        configure_devices("cpu", mixed_precision=False)
    assert caplog.text == ""
