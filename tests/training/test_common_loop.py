"""BERT's AdamW recipe (`training.common.loop.bert_adamw`) across a resume with more epochs: the
optimizer's step counter comes back from the checkpoint, so the schedule rebuilt over the new total
continues where that total puts the step (no second warm-up)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import tensorflow as tf

from training.common.checkpoint import CheckpointKeeper
from training.common.loop import WARMUP_FRACTION, bert_adamw

PEAK = 1e-3


def test_a_finished_run_resumed_with_more_steps_continues_the_new_schedule(
    tmp_path: Path,
) -> None:
    # A 20-step run that finished: its schedule has decayed to zero.
    weight = tf.Variable([1.0, -1.0])
    optimizer, schedule = bert_adamw(PEAK, 20)
    optimizer.build([weight])
    for _ in range(20):
        optimizer.apply_gradients([(tf.constant([0.5, 0.5]), weight)])
    assert int(optimizer.iterations.numpy()) == 20
    assert float(optimizer.learning_rate.numpy()) == 0.0
    CheckpointKeeper(tmp_path, optimizer=optimizer, weight=weight).save(20)

    # Resumed with 30 steps in all (`--epochs` raised by half).
    resumed_weight = tf.Variable([0.0, 0.0])
    resumed, new_schedule = bert_adamw(PEAK, 30)
    resumed.build([resumed_weight])
    keeper = CheckpointKeeper(tmp_path, optimizer=resumed, weight=resumed_weight)
    assert keeper.restore_latest() == 20
    assert int(resumed.iterations.numpy()) == 20
    np.testing.assert_allclose(resumed_weight.numpy(), weight.numpy())
    # Step 20 of 30: past the new warm-up, on the cosine decay from the peak.
    warmup = int(WARMUP_FRACTION * 30)
    expected = PEAK * 0.5 * (1 + math.cos(math.pi * (20 - warmup) / (30 - warmup)))
    assert warmup < 20
    np.testing.assert_allclose(float(resumed.learning_rate.numpy()), expected, rtol=1e-5)
    np.testing.assert_allclose(float(new_schedule(20)), expected, rtol=1e-5)
    # Not the warm-up's start a fresh counter would give.
    assert float(new_schedule(0)) == 0.0 and expected > 0.1 * PEAK
