"""The data a density model trains on: rows of a .npy or .csv file, scikit-learn's 8x8 digits with
the issue's split, and the 2-D toy densities (`models.density.data.sample_toy`), each as train /
validation / test rows in data units. The training job (`training.density`) and the baselines of
bench/density_baselines.py read them from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.data_errors import DataError, text_lines
from models.density.data import sample_toy

BUILTIN_PREFIX = "builtin:"
BUILTIN_TOYS = {
    "blobs": "two_blobs",
    "moons": "two_moons",
    "circles": "circles",
    "8gaussians": "eight_gaussians",
    "checkerboard": "checkerboard",
}
# The split of the issue: 447 test digits, then 350 of the rest for validation, both stratified.
DIGITS_TEST_SIZE = 447
DIGITS_VALID_SIZE = 350
DIGITS_LEVELS = 17
# Held-out draws of a toy density (fresh samples, so no split is needed).
TOY_HELD_OUT = 2000
# Largest magnitude of a value read from a file (its square, and a variance of such, stay finite).
MAX_ABS_VALUE = 1e150
# Integer data with values in [0, this] are taken as discrete unless --levels says otherwise.
MAX_AUTO_LEVELS = 256


@dataclass
class DensityData:
    """Train / validation / test rows [N, D] (float64, data units), the levels K of discrete data
    (None: continuous) and the manifest's `data` entry."""

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray | None
    levels: int | None
    summary: dict[str, Any]


def read_array(path: Path) -> np.ndarray:
    """A [N, D] float64 array from a .npy or .csv file (a .csv may start with a header line);
    a .npy of images, [N, H, W] or [N, H, W, C], becomes flat rows.

    Raises:
        DataError: a missing file, another format, or contents that are not a finite 2-D array of
            numbers with at least 2 rows.
    """
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as error:
            raise DataError(f"{path}: not a readable .npy array ({error})") from None
        real = np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
        if not real:
            raise DataError(f"{path}: holds {array.dtype} values, not real numbers")
    elif suffix == ".csv":
        array = _read_csv(path)
    else:
        raise DataError(f"{path}: expected a .npy or .csv file")
    array = np.asarray(array, np.float64)
    if array.ndim == 1:
        raise DataError(f"{path}: a 1-D array; give rows of features, shape [N, D]")
    if array.ndim > 2:
        # Images [N, H, W] or [N, H, W, C]: one flat row each, in row-major (C) order.
        array = array.reshape(array.shape[0], -1)
    if array.shape[0] < 2 or array.shape[1] < 1:
        raise DataError(f"{path}: needs at least 2 rows and 1 column, got shape {array.shape}")
    bad = ~np.isfinite(array).all(axis=1)
    if bad.any():
        raise DataError(f"{path}: row {int(np.argmax(bad))} holds NaN or infinity")
    # Standardising squares the values: past this their variance is no float64.
    if np.abs(array).max() > MAX_ABS_VALUE:
        raise DataError(
            f"{path}: values up to {np.abs(array).max():.3g}, too large to standardise (at most "
            f"{MAX_ABS_VALUE:.0e}); rescale the data"
        )
    return array


def _read_csv(path: Path) -> np.ndarray:
    rows: list[list[float]] = []
    for number, line in enumerate(text_lines(path), start=1):
        line = line.strip()
        if not line:
            continue
        try:
            row = [float(cell) for cell in line.split(",")]
        except ValueError:
            if not rows and number == 1:
                continue  # a header line
            raise DataError(f"{path}:{number}: not a row of numbers: {line[:80]!r}") from None
        if rows and len(row) != len(rows[0]):
            raise DataError(f"{path}:{number}: {len(row)} values, expected {len(rows[0])}")
        rows.append(row)
    if not rows:
        raise DataError(f"{path}: holds no rows of numbers")
    return np.array(rows, np.float64)


def detect_levels(array: np.ndarray) -> int | None:
    """K when every value is an integer in [0, MAX_AUTO_LEVELS - 1] (K = max + 1), else None."""
    if np.all(array == np.round(array)) and array.min() >= 0 and array.max() < MAX_AUTO_LEVELS:
        return max(2, int(array.max()) + 1)
    return None


def check_levels(path: Path, array: np.ndarray, levels: int | None) -> None:
    """Raises DataError unless discrete data (`levels` not None) are integers in [0, levels-1]."""
    if levels is not None and (array.min() < 0 or array.max() > levels - 1):
        raise DataError(f"{path}: values must be integers in [0, {levels - 1}] for {levels} levels")
    if levels is not None and not np.all(array == np.round(array)):
        raise DataError(f"{path}: --levels {levels} needs integer values")


def split_rows(
    path: Path, array: np.ndarray, valid_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(train, valid) rows of a data file: a seeded shuffle, `valid_fraction` of it held out."""
    if not 0.0 < valid_fraction < 1.0:
        raise DataError(f"--valid-fraction must be in (0, 1), not {valid_fraction}")
    order = np.random.default_rng(seed).permutation(len(array))
    n_valid = max(1, int(round(valid_fraction * len(array))))
    if n_valid >= len(array):
        raise DataError(f"{path}: too few rows ({len(array)}) for a validation split")
    return array[order[n_valid:]], array[order[:n_valid]]


def builtin_data(spec: str, seed: int, toy_samples: int) -> DensityData:
    """`builtin:digits` or a `builtin:<toy>` (`BUILTIN_TOYS`)."""
    name = spec[len(BUILTIN_PREFIX) :]
    if name == "digits":
        return digits_split()
    if name in BUILTIN_TOYS:
        return toy_split(name, seed, toy_samples)
    raise DataError(
        f"unknown built-in data {spec!r}; one of "
        f"{[BUILTIN_PREFIX + n for n in ('digits', *BUILTIN_TOYS)]}"
    )


def digits_split() -> DensityData:
    """scikit-learn's 8x8 digits (values 0..16), split as the issue says."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    rest_x, test_x, rest_y, _ = train_test_split(
        x, y, test_size=DIGITS_TEST_SIZE, random_state=0, stratify=y
    )
    train_x, valid_x = train_test_split(
        rest_x, test_size=DIGITS_VALID_SIZE, random_state=0, stratify=rest_y
    )
    summary = {
        "path": "builtin:digits",
        "format": "sklearn-load_digits",
        "sha256": None,
        "rows": len(x),
        "dim": x.shape[1],
        "train": len(train_x),
        "valid": len(valid_x),
        "test": len(test_x),
        "split": "train_test_split(test_size=447, random_state=0, stratify=y), then 350 of "
        "the rest for validation the same way",
    }
    arrays = (np.asarray(a, np.float64) for a in (train_x, valid_x, test_x))
    train, valid, test = arrays
    return DensityData(train, valid, test, DIGITS_LEVELS, summary)


def toy_split(name: str, seed: int, toy_samples: int) -> DensityData:
    """`toy_samples` training draws of toy `name` and `TOY_HELD_OUT` each to validate and test."""
    # Separate streams for train, valid and test, so changing one size leaves the others alone.
    draws = [
        sample_toy(BUILTIN_TOYS[name], n, np.random.default_rng([seed, i]))
        for i, n in enumerate((toy_samples, TOY_HELD_OUT, TOY_HELD_OUT))
    ]
    summary = {
        "path": f"{BUILTIN_PREFIX}{name}",
        "format": "toy-2d",
        "sha256": None,
        "seed": seed,
        "dim": 2,
        "train": toy_samples,
        "valid": TOY_HELD_OUT,
        "test": TOY_HELD_OUT,
    }
    return DensityData(draws[0], draws[1], draws[2], None, summary)
