"""Request numbers as the model will see them.

JSON numbers arrive as float64, and a float64 that is finite can stop being a number in the
model's dtype: 1e308 is inf in float32. Every float a request hands to a model goes through
`model_floats`, which casts it to the model's dtype and refuses (400, naming the field and the
element) what is not finite there. A value that rounds to 0 (1e-320 is a float64 subnormal) is
only rounded, as any value is; it stays.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from service.errors import BadInput

# The dtype of every float input of the exported signatures (condition vectors, density rows).
MODEL_FLOAT = np.float32


def model_floats(values: Any, field: str, dtype: type[np.floating] = MODEL_FLOAT) -> np.ndarray:
    """`values` (numbers, or nested lists of them) as an array of `dtype`; BadInput naming the
    first element that is not a finite `dtype` number, e.g. "condition.vector[2]"."""
    exact = np.asarray(values, np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        cast = exact.astype(dtype)
    bad = np.argwhere(~np.isfinite(cast))
    if bad.size:
        index = tuple(int(i) for i in bad[0])
        where = field + "".join(f"[{i}]" for i in index)
        limit = float(np.finfo(dtype).max)
        raise BadInput(
            f"{where} = {float(exact[index])!r} is not a finite {np.dtype(dtype).name} number, "
            f"the model's dtype (its largest magnitude is {limit:.6g})",
            param=field.split(".")[0],
        )
    return cast
