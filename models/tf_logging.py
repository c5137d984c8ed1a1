"""TensorFlow's C++ log level, set before TensorFlow is imported (`service/__main__.py` imports
this first, and so does the `training` package: the jobs import TensorFlow too).

TensorFlow's C++ side, and XLA's through absl, write to stderr in their own format, past Python's
logging: `I0000 00:00:1796201403.064215 12655 cpu_feature_guard.cc:227] This TensorFlow binary
is optimized to use...`. What they say when the service starts, a person running it can do
nothing about: the CPU instructions the wheel was not built for and XLA's start (INFO), and, on
CPUs with AVX-VNNI but no AVX-512, an ERROR that oneDNN falls back to Eigen for some dtypes
(the same results, by another kernel). CUDA builds on a host without a GPU add ERROR lines of
their own (`failed call to cuInit`). A real failure reaches the service as a Python exception,
which it logs with the model and version it concerns.

So unless TF_CPP_MIN_LOG_LEVEL is set, it is 3: only FATAL lines. To see TensorFlow's lines,
set it yourself: 0 all, 1 warnings and errors, 2 errors (TF_CPP_MAX_VLOG_LEVEL=1 adds the
verbose ones).
"""

from __future__ import annotations

import os

# TensorFlow's levels: 0 INFO and up, 1 WARNING and up, 2 ERROR and up, 3 FATAL only.
DEFAULT_TF_CPP_MIN_LOG_LEVEL = "3"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", DEFAULT_TF_CPP_MIN_LOG_LEVEL)
