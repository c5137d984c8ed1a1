"""`model_floats`: request numbers cast to the model's dtype, refused (400, named) where they
stop being finite numbers."""

from __future__ import annotations

import re

import numpy as np
import pytest

from service.errors import BadInput
from service.runtimes.floats import model_floats


def test_numbers_in_range_are_cast_and_tiny_ones_round_to_zero() -> None:
    out = model_floats([[1.5, -3e38], [1e-320, 0.0]], "inputs")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.array([[1.5, -3e38], [0.0, 0.0]], np.float32))


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ([0.0, 1e308], "condition.vector[1]"),  # finite as float64, inf as float32
        ([-3.5e38, 0.0], "condition.vector[0]"),  # just past float32's largest magnitude
        ([1.0, float("nan")], "condition.vector[1]"),
    ],
)
def test_numbers_beyond_the_dtype_are_named(values: list[float], where: str) -> None:
    with pytest.raises(BadInput, match="^" + re.escape(f"{where} = ")):
        model_floats(values, "condition.vector")


def test_the_first_bad_element_of_nested_rows_is_named() -> None:
    with pytest.raises(BadInput, match=r"^inputs\[1\]\[0\] = 1e\+300 .*float32"):
        model_floats([[0.0, 1.0], [1e300, 2e300]], "inputs")
    # float64 models would take it.
    assert model_floats([1e300], "inputs", np.float64)[0] == 1e300
