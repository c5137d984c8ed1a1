import keras
import numpy as np
import pytest
import tensorflow as tf

from training.common.ema import ExponentialMovingAverage


def _hand_ema(initial: float, values: list[float], decay: float, warmup: bool) -> float:
    """The EMA written out step by step, as in TF's ExponentialMovingAverage docs."""
    shadow = initial
    for n, value in enumerate(values):
        d = min(decay, (1 + n) / (10 + n)) if warmup else decay
        shadow = d * shadow + (1 - d) * value
    return shadow


@pytest.mark.parametrize("warmup", [True, False])
def test_update_matches_hand_computation(warmup):
    var = tf.Variable([1.0, -2.0], dtype=tf.float64)
    ema = ExponentialMovingAverage([var], decay=0.5, warmup=warmup)
    values = [3.0, 5.0, -1.0, 4.0, 4.0]
    for value in values:
        var.assign([value, 2 * value])
        ema.update()

    expected = [
        _hand_ema(1.0, values, 0.5, warmup),
        _hand_ema(-2.0, [2 * v for v in values], 0.5, warmup),
    ]
    np.testing.assert_allclose(ema.average_of(var).numpy(), expected, rtol=1e-12)
    assert int(ema.num_updates.numpy()) == len(values)
    # The variable itself is untouched by update().
    np.testing.assert_allclose(var.numpy(), [4.0, 8.0])


def test_warmup_decay_follows_num_updates():
    ema = ExponentialMovingAverage([tf.Variable(0.0)], decay=0.999)
    assert float(ema.current_decay()) == pytest.approx(1 / 10)
    ema.update()
    assert float(ema.current_decay()) == pytest.approx(2 / 11)
    ema.num_updates.assign(10**6)
    assert float(ema.current_decay()) == pytest.approx(0.999)


def test_update_inside_tf_function_equals_eager():
    eager_var, graph_var = tf.Variable([2.0]), tf.Variable([2.0])
    eager = ExponentialMovingAverage([eager_var], decay=0.9)
    graph = ExponentialMovingAverage([graph_var], decay=0.9)

    @tf.function
    def step(value):
        graph_var.assign(value)
        graph.update()

    for value in [1.0, 7.0, -3.0]:
        eager_var.assign([value])
        eager.update()
        step(tf.constant([value]))
    np.testing.assert_allclose(graph.shadow_variables[0].numpy(), eager.shadow_variables[0].numpy())
    assert int(graph.num_updates.numpy()) == 3


def test_averaged_swaps_in_and_restores_even_on_error():
    a, b = tf.Variable([1.0, 1.0]), tf.Variable(5.0)
    ema = ExponentialMovingAverage([a, b], decay=0.5, warmup=False)
    a.assign([3.0, 5.0])
    b.assign(9.0)
    ema.update()  # shadows: [2, 3] and 7

    with ema.averaged():
        np.testing.assert_allclose(a.numpy(), [2.0, 3.0])
        assert float(b.numpy()) == 7.0
        with pytest.raises(RuntimeError):
            ema.update()
    np.testing.assert_allclose(a.numpy(), [3.0, 5.0])
    assert float(b.numpy()) == 9.0

    with pytest.raises(ValueError, match="boom"), ema.averaged():
        a.assign([0.0, 0.0])
        raise ValueError("boom")
    np.testing.assert_allclose(a.numpy(), [3.0, 5.0])
    # The shadows are not changed by swapping.
    np.testing.assert_allclose(ema.average_of(a).numpy(), [2.0, 3.0])

    with pytest.raises(RuntimeError):
        ema.swap_out()


def test_keras_model_variables():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    ema = ExponentialMovingAverage(model.trainable_variables, decay=0.5, warmup=False)
    kernel = model.trainable_variables[0]
    before = kernel.numpy().copy()
    kernel.assign(before + 2.0)
    ema.update()
    np.testing.assert_allclose(ema.average_of(kernel).numpy(), before + 1.0, rtol=1e-6)
    x = np.ones((1, 3), np.float32)
    with ema.averaged():
        averaged_out = model(x).numpy()
    np.testing.assert_allclose(averaged_out, x @ (before + 1.0) + model.layers[0].bias.numpy())
    np.testing.assert_allclose(kernel.numpy(), before + 2.0)


def test_rejects_bad_input():
    with pytest.raises(ValueError):
        ExponentialMovingAverage([tf.Variable(1.0)], decay=1.0)
    with pytest.raises(ValueError):
        ExponentialMovingAverage([tf.Variable(1)])
    with pytest.raises(ValueError):
        ExponentialMovingAverage([])
    v = tf.Variable(1.0)
    with pytest.raises(ValueError):
        ExponentialMovingAverage([v, v])
    with pytest.raises(KeyError):
        ExponentialMovingAverage([v]).average_of(tf.Variable(1.0))


def test_checkpoint_holds_shadows_and_count_not_the_model_variables():
    v = tf.Variable([1.0, 2.0])
    ema = ExponentialMovingAverage([v])
    assert ema.trainable_variables == ()
    tracked = {id(x) for x in ema.variables}
    assert tracked == {id(ema.num_updates), *(id(s) for s in ema.shadow_variables)}
