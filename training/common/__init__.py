"""Pieces every training job shares: seeding, progress, TensorBoard, checkpoints and resume,
weight averaging, data helpers, atomic export into the model store, and common CLI options.
The store's names, rules and manifest types are `models.store`'s."""

from training.common.checkpoint import CheckpointKeeper
from training.common.cli import add_common_args
from training.common.data import (
    data_summary,
    epoch_permutation,
    file_sha256,
    iter_lines,
    parallel_map_ordered,
    read_lines,
    resume_position,
    shard_indices,
)
from training.common.ema import ExponentialMovingAverage
from training.common.export import (
    export_version,
    library_versions,
    next_version,
    remove_stale_temp_folders,
)
from training.common.progress import Progress
from training.common.seeding import set_seed
from training.common.tensorboard import TensorBoardLogger

__all__ = [
    "CheckpointKeeper",
    "ExponentialMovingAverage",
    "Progress",
    "TensorBoardLogger",
    "add_common_args",
    "data_summary",
    "epoch_permutation",
    "export_version",
    "file_sha256",
    "iter_lines",
    "library_versions",
    "next_version",
    "parallel_map_ordered",
    "read_lines",
    "remove_stale_temp_folders",
    "resume_position",
    "set_seed",
    "shard_indices",
]
