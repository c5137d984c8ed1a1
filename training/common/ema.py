"""Exponential moving average of model weights for custom training loops."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import tensorflow as tf

# Warm-up of TF's `tf.train.ExponentialMovingAverage(num_updates=...)`: the decay used at update
# n (n updates done before it) is min(decay, (1 + n) / (WARMUP_OFFSET + n)), so early averages are
# not dominated by the random initial weights.
WARMUP_OFFSET = 10.0


class _Targets:
    """Holds the averaged variables (and swap state) outside TensorFlow's dependency tracking.

    The EMA is a `tf.Module` so that it can be checkpointed, but the model's own variables
    belong to the model's checkpoint entry, not to the EMA's; a plain object is not tracked.
    """

    def __init__(self, variables: Sequence[Any]) -> None:
        self.variables = tuple(variables)
        self.index = {id(var): i for i, var in enumerate(self.variables)}
        self.backup: list[tf.Tensor] | None = None


class ExponentialMovingAverage(tf.Module):
    """Keeps shadow copies of variables that follow them as an exponential moving average.

    After each optimizer step, `update()` sets, for every variable v and its shadow s,

        s <- d * s + (1 - d) * v,   d = min(decay, (1 + n) / (10 + n))

    where n counts the updates done before (TF's `ExponentialMovingAverage` warm-up with
    `num_updates`). The shadows start equal to the variables. `averaged()` puts the averages
    into the variables for evaluation or export and puts the trained values back after.

    The object is a `tf.Module`: pass it to `CheckpointKeeper(..., ema=ema)` to save the
    shadows and the update count (`shadow_variables`, `num_updates`) with the model.

    Args:
        variables: the variables to average (`tf.Variable`s, or Keras variables on the
            TensorFlow backend, e.g. `model.trainable_variables`); floating point only.
        decay: the decay d in (0, 1); 0.999 averages over roughly the last 1000 updates.
        warmup: use the warm-up formula for d above; False uses `decay` from the first update.
        name: name scope of the shadow variables.

    Example:
    ```python
    ema = ExponentialMovingAverage(model.trainable_variables, decay=0.999)
    for batch in batches:
        train_step(batch)
        ema.update()
    with ema.averaged():
        export(model)
    ```
    """

    def __init__(
        self,
        variables: Sequence[Any],
        decay: float = 0.999,
        *,
        warmup: bool = True,
        name: str = "ema",
    ) -> None:
        super().__init__(name=name)
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        variables = list(variables)
        if not variables:
            raise ValueError("no variables to average")
        for var in variables:
            if not tf.as_dtype(var.dtype).is_floating:
                raise ValueError(f"can only average floating point variables, got {var.dtype}")
        self.decay = float(decay)
        self.warmup = bool(warmup)
        self._targets = _Targets(variables)
        if len(self._targets.index) != len(variables):
            raise ValueError("the same variable appears more than once")
        with self.name_scope:
            self.num_updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="num_updates")
            self.shadow_variables = [
                tf.Variable(
                    tf.convert_to_tensor(var),
                    trainable=False,
                    name=_shadow_name(var, i),
                )
                for i, var in enumerate(variables)
            ]
        self._update_fn = tf.function(self._update, autograph=False)

    @property
    def averaged_variables(self) -> tuple[Any, ...]:
        """The variables being averaged, in the order given."""
        return self._targets.variables

    def current_decay(self) -> tf.Tensor:
        """The decay the next `update()` will use (float64 scalar, so float64 weights keep it)."""
        decay = tf.constant(self.decay, tf.float64)
        if self.warmup:
            n = tf.cast(self.num_updates, tf.float64)
            decay = tf.minimum(decay, (1.0 + n) / (WARMUP_OFFSET + n))
        return decay

    def _update(self) -> None:
        decay = self.current_decay()
        for var, shadow in zip(self._targets.variables, self.shadow_variables, strict=True):
            d = tf.cast(decay, shadow.dtype)
            # s - (1 - d) (s - v) == d s + (1 - d) v, with one fewer full-size temporary.
            shadow.assign_sub((1.0 - d) * (shadow - tf.convert_to_tensor(var)))
        self.num_updates.assign_add(1)

    def update(self) -> None:
        """Moves every shadow one step towards its variable's current value.

        Call after each optimizer step; works eagerly and inside a `tf.function`.
        """
        if self._targets.backup is not None:
            raise RuntimeError("update() inside averaged(): the variables hold the averages")
        if tf.executing_eagerly():
            self._update_fn()
        else:
            self._update()

    def average_of(self, var: Any) -> tf.Variable:
        """The shadow variable holding the average of `var` (one of the variables given)."""
        try:
            return self.shadow_variables[self._targets.index[id(var)]]
        except KeyError:
            raise KeyError(f"variable {getattr(var, 'name', var)!r} is not averaged") from None

    def swap_in(self) -> None:
        """Assigns the averages to the variables, keeping their values for `swap_out()`."""
        if self._targets.backup is not None:
            raise RuntimeError("the averages are already swapped in")
        variables = self._targets.variables
        self._targets.backup = [tf.identity(tf.convert_to_tensor(var)) for var in variables]
        for var, shadow in zip(variables, self.shadow_variables, strict=True):
            var.assign(shadow)

    def swap_out(self) -> None:
        """Puts back the values the variables had before `swap_in()`."""
        if self._targets.backup is None:
            raise RuntimeError("swap_out() without swap_in()")
        for var, value in zip(self._targets.variables, self._targets.backup, strict=True):
            var.assign(value)
        self._targets.backup = None

    @contextlib.contextmanager
    def averaged(self) -> Iterator[None]:
        """Context in which the variables hold their averages (for eval and export).

        The trained values come back on exit, also when the block raises. Do not save a
        training checkpoint inside it: it would store the averages as the weights.
        """
        self.swap_in()
        try:
            yield
        finally:
            self.swap_out()


def _shadow_name(var: Any, index: int) -> str:
    """A readable name for a shadow variable, e.g. `dense_kernel_ema` (TF2 needs no uniqueness)."""
    base = str(getattr(var, "path", None) or getattr(var, "name", "") or f"var{index}")
    base = base.split(":")[0].replace("/", "_")
    return f"{base}_ema"
