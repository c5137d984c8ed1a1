"""Data-parallel training over `tf.distribute`: one strategy per run, chosen by `--strategy`.

- `default`: no distribution (TensorFlow's default strategy), what a job did before.
- `mirrored`: `MirroredStrategy`, one replica per local GPU (or the CPU), all-reduced in-process.
- `multiworker`: `MultiWorkerMirroredStrategy` over the workers listed in `TF_CONFIG`, one process
  per machine (or per port on one machine), gradients all-reduced by collective ops.

Every worker runs the same job with the same arguments and data: the batches of a step depend only
on (seed, epoch), so all workers agree on the global batch, and each trains on its own share of it
(`local_share`). Gradients are summed over replicas by the Keras optimizer, so each replica's loss
is divided by the number of replicas in sync: the sum is then the mean over the global batch.

Only the chief writes: checkpoints, TensorBoard logs and the export into the model store. The chief
is the `chief` task of `TF_CONFIG`, or worker 0 when the cluster has none (TensorFlow's rule).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multiworker")


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The `tf.distribute` strategy called `name` (one of `STRATEGIES`).

    Raises:
        ValueError: unknown name, or `multiworker` without a `TF_CONFIG` naming a cluster.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        config = _tf_config()
        if not config.get("cluster"):
            raise ValueError(
                "--strategy multiworker needs TF_CONFIG with the cluster and this worker's task, "
                'e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                '"task": {"type": "worker", "index": 0}}'
            )
        # Blocks until every worker of the cluster has started and connected.
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")


def _tf_config() -> dict[str, Any]:
    raw = os.environ.get("TF_CONFIG", "")
    if not raw:
        return {}
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not JSON: {error}") from None
    if not isinstance(config, dict):
        raise ValueError("TF_CONFIG must be a JSON object")
    return config


def worker_count(strategy: tf.distribute.Strategy) -> int:
    """How many worker processes train together (1 unless the strategy spans several)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return 1
    spec = resolver.cluster_spec().as_dict()
    return sum(len(spec.get(kind, [])) for kind in ("chief", "worker"))


def worker_index(strategy: tf.distribute.Strategy) -> int:
    """This process's place among the workers (the chief first), 0 when not distributed."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return 0
    has_chief = bool(resolver.cluster_spec().as_dict().get("chief"))
    if resolver.task_type == "chief":
        return 0
    return int(resolver.task_id) + (1 if has_chief else 0)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes checkpoints, logs and the export."""
    return worker_index(strategy) == 0


def local_share(indices: np.ndarray, strategy: tf.distribute.Strategy) -> np.ndarray:
    """This worker's rows of a global batch (`share_of_batch`)."""
    return share_of_batch(indices, worker_count(strategy), worker_index(strategy))


def share_of_batch(indices: np.ndarray, workers: int, index: int) -> np.ndarray:
    """Worker `index`'s rows of a global batch: a contiguous slice, near-equal across `workers`.

    Every worker must take every step (the all-reduce waits for all), so a final batch smaller
    than the number of workers is repeated cyclically until each worker has a row; those few rows
    count twice in that one step.
    """
    if not 0 <= index < workers:
        raise ValueError(f"worker index {index} outside 0..{workers - 1}")
    if workers == 1:
        return indices
    if len(indices) < workers:
        indices = np.resize(indices, workers)
    return np.array_split(indices, workers)[index]


def make_sum_across_workers(
    strategy: tf.distribute.Strategy,
) -> Callable[[list[tf.Tensor]], list[tf.Tensor]]:
    """A function summing each worker's tensors over all workers (a collective all-reduce).

    For jobs whose step is not a Keras optimizer's (JoSE's sparse Riemannian SGD): each worker
    passes its own values and every worker gets the sums. Needs one replica per worker, since a
    tensor given to `strategy.run` is handed to every local replica.

    Raises:
        ValueError: a strategy with several replicas in one worker (local GPUs).
    """
    if strategy.num_replicas_in_sync != worker_count(strategy):
        raise ValueError(
            f"{strategy.num_replicas_in_sync} replicas on {worker_count(strategy)} workers: this "
            "job runs one replica per worker (use --strategy multiworker, one worker per device)"
        )

    def replica_sum(*values: tf.Tensor) -> list[tf.Tensor]:
        context = tf.distribute.get_replica_context()
        # Copies made in the replica, on its device: the all-reduce sends to where its inputs live.
        local = [tf.identity(v) for v in values]
        return context.all_reduce(tf.distribute.ReduceOp.SUM, local)

    @tf.function
    def sum_across_workers(values: list[tf.Tensor]) -> list[tf.Tensor]:
        sums = strategy.run(replica_sum, args=tuple(values))
        return [strategy.experimental_local_results(s)[0] for s in sums]

    return sum_across_workers
