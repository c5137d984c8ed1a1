import keras
import numpy as np
import pytest
import tensorflow as tf

from training.common.checkpoint import CheckpointKeeper
from training.common.data import epoch_permutation, resume_position
from training.common.ema import ExponentialMovingAverage

# A tiny regression problem: 12 examples, batches of 4, so 3 steps per epoch.
NUM_EXAMPLES, BATCH, EPOCHS, SEED = 12, 4, 3, 5
STEPS_PER_EPOCH = NUM_EXAMPLES // BATCH


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(NUM_EXAMPLES, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]], np.float32)).astype(np.float32)
    return x, y


def _build():
    keras.utils.set_random_seed(SEED)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    # Momentum gives the optimizer state that a resume must restore too.
    optimizer = keras.optimizers.SGD(learning_rate=0.1, momentum=0.9)
    ema = ExponentialMovingAverage(model.trainable_variables, decay=0.9)
    return model, optimizer, ema


def _train(directory, *, resume: bool, stop_after: int | None = None, every: int = 2):
    """A job in miniature: resume, skip consumed batches, train, checkpoint every `every` steps."""
    x, y = _data()
    model, optimizer, ema = _build()
    keeper = CheckpointKeeper(directory, max_to_keep=2, model=model, optimizer=optimizer, ema=ema)
    step = (keeper.restore_latest() or 0) if resume else 0
    start_epoch, start_batch = resume_position(step, STEPS_PER_EPOCH)
    for epoch in range(start_epoch, EPOCHS):
        order = epoch_permutation(NUM_EXAMPLES, SEED, epoch)
        first = start_batch if epoch == start_epoch else 0
        for batch in range(first, STEPS_PER_EPOCH):
            rows = order[batch * BATCH : (batch + 1) * BATCH]
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean((model(x[rows]) - y[rows]) ** 2)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            ema.update()
            step += 1
            if step % every == 0:
                keeper.save(step)
            if step == stop_after:
                return model, ema, keeper
    keeper.save(step)
    return model, ema, keeper


def test_save_then_restore_gives_same_variables_and_step(tmp_path):
    model, ema, keeper = _train(tmp_path, resume=False, stop_after=4)
    saved = [v.numpy().copy() for v in model.trainable_variables]
    shadows = [s.numpy().copy() for s in ema.shadow_variables]
    assert keeper.latest is not None and keeper.latest.endswith("ckpt-4")

    model2, optimizer2, ema2 = _build()
    assert not np.allclose(model2.trainable_variables[0].numpy(), saved[0])
    keeper2 = CheckpointKeeper(tmp_path, model=model2, optimizer=optimizer2, ema=ema2)
    assert keeper2.restore_latest() == 4
    for restored, value in zip(model2.trainable_variables, saved, strict=True):
        np.testing.assert_array_equal(restored.numpy(), value)
    for restored, value in zip(ema2.shadow_variables, shadows, strict=True):
        np.testing.assert_array_equal(restored.numpy(), value)
    assert int(ema2.num_updates.numpy()) == 4


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path):
    full_model, full_ema, _ = _train(tmp_path / "full", resume=False)
    # Interrupted after step 5: the last checkpoint is step 4, so step 5 is done again.
    _train(tmp_path / "split", resume=False, stop_after=5)
    model, ema, keeper = _train(tmp_path / "split", resume=True)

    assert keeper.latest is not None and keeper.latest.endswith(f"ckpt-{EPOCHS * STEPS_PER_EPOCH}")
    for a, b in zip(model.trainable_variables, full_model.trainable_variables, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)
    for a, b in zip(ema.shadow_variables, full_ema.shadow_variables, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)


def test_restore_without_checkpoint_returns_none_and_keeps_values(tmp_path):
    v = tf.Variable([1.0, 2.0])
    keeper = CheckpointKeeper(tmp_path / "empty", v=v)
    assert keeper.latest is None
    assert keeper.restore_latest() is None
    np.testing.assert_array_equal(v.numpy(), [1.0, 2.0])


def test_keeps_only_the_newest_checkpoints(tmp_path):
    v = tf.Variable(0.0)
    keeper = CheckpointKeeper(tmp_path, max_to_keep=2, v=v)
    for step in (10, 20, 30):
        v.assign(float(step))
        path = keeper.save(step)
        assert path.endswith(f"ckpt-{step}")
    assert [p.rsplit("-", 1)[1] for p in keeper.checkpoints] == ["20", "30"]
    assert not list(tmp_path.glob("ckpt-10*"))

    v.assign(-1.0)
    assert keeper.restore_latest() == 30
    assert float(v.numpy()) == 30.0


def test_restore_of_a_different_model_fails_loudly(tmp_path):
    CheckpointKeeper(tmp_path, weights=tf.Variable([1.0])).save(1)
    keeper = CheckpointKeeper(tmp_path, other=tf.Variable([0.0]))
    with pytest.raises(AssertionError):
        keeper.restore_latest()


def test_rejects_reserved_name_and_nothing_to_save(tmp_path):
    with pytest.raises(ValueError):
        CheckpointKeeper(tmp_path, step=tf.Variable(0))
    with pytest.raises(ValueError):
        CheckpointKeeper(tmp_path)


def test_restore_of_a_checkpoint_with_more_variables_fails_loudly(tmp_path):
    # A run started with an option that adds weights (training.qa --copy-attention) and resumed
    # without it restored the rest and dropped them silently: the export lacked them.
    bigger = tf.Module()
    bigger.kept, bigger.extra = tf.Variable([2.0]), tf.Variable([3.0])
    CheckpointKeeper(tmp_path, model=bigger).save(1)
    smaller = tf.Module()
    smaller.kept = tf.Variable([0.0])
    keeper = CheckpointKeeper(tmp_path, model=smaller)
    with pytest.raises(AssertionError, match="no variable for"):
        keeper.restore_latest()


def test_restore_before_the_optimizer_is_built_still_passes(tmp_path):
    # Its slots are restored when they are created: their values are not unused.
    model, optimizer, ema = _build()
    optimizer.build(model.trainable_variables)
    CheckpointKeeper(tmp_path, model=model, optimizer=optimizer, ema=ema).save(3)
    model2, optimizer2, ema2 = _build()
    assert (
        CheckpointKeeper(tmp_path, model=model2, optimizer=optimizer2, ema=ema2).restore_latest()
        == 3
    )
