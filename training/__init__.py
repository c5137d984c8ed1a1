"""Offline training jobs: `python -m training.<family>` reads data, fits a model from `models/` and
exports a version into the store."""

# First: TensorFlow reads its C++ log level when it is imported (models/tf_logging.py says why).
from models import tf_logging  # noqa: F401
