"""What `python -m service` prints when it starts: the service's own lines, none of TensorFlow's
C++ lines (`I0000 00:00:... cpu_feature_guard.cc:227] ...`, `E0000 ... oneDNN ...`) unless
TF_CPP_MIN_LOG_LEVEL asks for them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.live_server import ROOT, free_port

# absl's format, which TensorFlow's and XLA's C++ logging use: severity with month and day, time
# (`00:00:<epoch seconds>` before absl is initialised), thread, file:line].
CPP_LOG_LINE = re.compile(r"^[IWEF]\d{4} [\d:.]+ +\d+ [\w./-]+:\d+\]", re.M)
# The service logs this once TensorFlow is imported and its devices chosen.
DEVICES_LINE = "INFO service.device: devices:"


def start_output(store: Path, **env: str) -> str:
    """stderr and stdout of `python -m service` from its start to its devices line."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP_")}
    environ.update(MODEL_STORE=str(store), HOST="127.0.0.1", PORT=str(free_port()), DRAIN_S="0")
    environ.update(env)
    proc = subprocess.Popen(
        [sys.executable, "-m", "service"],
        env=environ,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    deadline = time.monotonic() + 300
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if DEVICES_LINE in line or time.monotonic() > deadline:
                break
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    output = "".join(lines)
    assert DEVICES_LINE in output, output
    return output


# The one line no log level silences: on CPUs where TensorFlow turns oneDNN's custom operations on
# by default (AVX-512 VNNI or AMX, as on some of this project's machines and not others),
# TensorFlow 2.21 says so at import through absl, before it reads TF_CPP_MIN_LOG_LEVEL, with
# absl's notice that it logs to stderr before being initialised. Only TF_ENABLE_ONEDNN_OPTS=0
# removes it, which changes the kernels, so the service leaves it.
ONEDNN_NOTICE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|I\d{4} [\d:.]+ +\d+ port\.cc:\d+\] oneDNN custom operations are on\..*)\n",
    re.M,
)


@pytest.mark.slow
def test_a_plain_start_prints_no_tensorflow_cpp_lines(tmp_path: Path) -> None:
    output = ONEDNN_NOTICE.sub("", start_output(tmp_path))
    assert not CPP_LOG_LINE.search(output), output
    assert "absl::InitializeLog" not in output, output


@pytest.mark.slow
def test_tf_cpp_min_log_level_still_raises_them(tmp_path: Path) -> None:
    output = start_output(tmp_path, TF_CPP_MIN_LOG_LEVEL="0")
    # TensorFlow's first INFO line: the CPU instructions the wheel was not built for.
    assert CPP_LOG_LINE.search(output), output
