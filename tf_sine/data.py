"""The source's data: sine series and the sliding windows its `generate_data` cut from them.

Two layouts exist for one window of `timesteps` values (see `tf_sine.config.LAYOUTS`):

* ``"legacy"`` (the default, what the source fed its LSTM): `(N, 1, timesteps)`, i.e. ONE time
  step whose feature vector holds the `timesteps` values. The recurrent layer therefore runs a
  single step and sees the window only as a 10-feature input; its recurrence is never used.
* ``"sequence"``: `(N, timesteps, 1)`, `timesteps` time steps of one value each, the shape a
  Keras RNN normally expects and the one in which the recurrence does the work.

>>> x, y = generate_data(np.arange(15.0), timesteps=10)
>>> x.shape, y.shape, x.dtype
((4, 1, 10), (4, 1), dtype('float32'))
>>> generate_data(np.arange(15.0), layout="sequence")[0].shape
(4, 10, 1)
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from tf_sine.config import LAYOUTS, ConfigError, ConfigTypeError, check_choice, check_positive_int
from tf_sine.errors import ModelError

# The source script's constants.
TIMESTEPS = 10
TRAINING_EXAMPLES = 10000
TESTING_EXAMPLES = 1000
SAMPLE_GAP = 0.01


def as_series(seq: Any, argument: str = "seq") -> np.ndarray:
    """Returns `seq` as a 1-D float array, refusing what no window can be cut from.

    Args:
        seq: a 1-D array-like of real numbers.
        argument: the name used in error messages.

    Returns:
        A 1-D `np.ndarray` (float32 values are kept as float32, other numbers become float64).

    Raises:
        TypeError: the values are not real numbers.
        ValueError: `seq` is not 1-D, is empty, or holds NaN or infinity.
    """
    try:
        array = np.asarray(seq)
    except (ValueError, TypeError) as error:  # ragged nested lists
        raise ConfigError(argument, f"expected a 1-D sequence of numbers, got {error}") from None
    if array.dtype == np.bool_ or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise ConfigTypeError(argument, f"expected real numbers, got values of dtype {array.dtype}")
    if array.ndim != 1:
        raise ConfigError(argument, f"expected a 1-D sequence, got shape {array.shape}")
    if array.size == 0:
        raise ConfigError(argument, "expected a non-empty sequence, got 0 values")
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise ConfigError(
            argument, f"expected finite values, got {array[bad[0]]} at index {bad[0]} ({bad.size} in all)"
        )
    return array


def count_windows(length: int, timesteps: int) -> int:
    """The number of windows `generate_data` cuts from `length` values: `length - timesteps - 1`."""
    return length - timesteps - 1


def generate_data(
    seq: Any, timesteps: int = TIMESTEPS, layout: str = "legacy"
) -> tuple[np.ndarray, np.ndarray]:
    """Cuts `seq` into (window, next value) pairs, exactly as the source's `generate_data`.

    Window `i` is `seq[i : i + timesteps]` and its label is `seq[i + timesteps]`. Like the
    source, the loop stops one window early: `N = len(seq) - timesteps - 1`, so the last
    usable window (whose label is `seq[-1]`) is dropped. We keep that so results stay
    comparable with the source; values are cast to float32 as the source's `np.array(...,
    dtype=np.float32)` did, after slicing, so they are bit-identical to the source's.

    Args:
        seq: 1-D sequence of real numbers, at least `timesteps + 2` long.
        timesteps: values per window (the source's TIMESTEPS).
        layout: ``"legacy"`` gives `x` of shape `(N, 1, timesteps)` (the source's single
            time step of `timesteps` features); ``"sequence"`` gives `(N, timesteps, 1)`.

    Returns:
        `(x, y)`: float32 arrays of shapes `(N, 1, timesteps)` or `(N, timesteps, 1)`, and `(N, 1)`.

    Raises:
        ValueError: bad `layout` or `timesteps`, a series with NaN/inf, or one too short for a
            window (the source silently returned empty arrays there).
        TypeError: non-numeric values or a non-integer `timesteps`.
    """
    timesteps = check_positive_int("timesteps", timesteps)
    series = as_series(seq)
    n = count_windows(series.size, timesteps)
    if n < 1:
        raise ConfigError(
            "seq",
            f"expected at least timesteps + 2 = {timesteps + 2} values for one window, got {series.size}",
        )
    x = all_windows(series[: n + timesteps - 1], timesteps, layout)
    y = series[timesteps : timesteps + n].astype(np.float32).reshape(n, 1)
    return x, y


def all_windows(seq: Any, timesteps: int = TIMESTEPS, layout: str = "legacy") -> np.ndarray:
    """Every full window of `seq`, for inference: `len(seq) - timesteps + 1` of them.

    Window `i` is `seq[i : i + timesteps]`; a model trained on `generate_data` predicts
    `seq[i + timesteps]` from it, so the last window's prediction is the value after the end.

    Returns:
        float32 array of shape `(len(seq) - timesteps + 1, 1, timesteps)` (legacy) or
        `(len(seq) - timesteps + 1, timesteps, 1)` (sequence).

    Raises:
        ValueError: `seq` shorter than `timesteps`, or the checks of `as_series`.
    """
    timesteps = check_positive_int("timesteps", timesteps)
    check_choice("layout", layout, LAYOUTS)
    series = as_series(seq)
    if series.size < timesteps:
        raise ConfigError("seq", f"expected at least timesteps = {timesteps} values, got {series.size}")
    # A strided view, not a Python list: the only copy is the float32 cast. Casting after
    # slicing, as the source's np.array(..., dtype=np.float32) did, gives identical values.
    x = np.lib.stride_tricks.sliding_window_view(series, timesteps).astype(np.float32)
    return to_layout(x.reshape(len(x), 1, timesteps), layout)


def to_layout(x: np.ndarray, layout: str) -> np.ndarray:
    """Converts windows of shape `(N, 1, T)` (legacy) to `layout`, returning a contiguous array."""
    check_choice("layout", layout, LAYOUTS)
    if layout == "legacy":
        return x
    return np.ascontiguousarray(x.transpose(0, 2, 1))


def window_shape(timesteps: int, layout: str, features: int = 1) -> tuple[int, int]:
    """The shape of one window (a model input without its batch axis) for `layout`."""
    check_positive_int("timesteps", timesteps)
    check_positive_int("features", features)
    return (1, timesteps) if check_choice("layout", layout, LAYOUTS) == "legacy" else (timesteps, features)


def layout_of(shape: tuple[Any, ...]) -> tuple[int, str]:
    """Infers `(timesteps, layout)` from a model input shape `(batch, a, b)`: `(batch, 1, T)`
    is the legacy layout, `(batch, T, features)` the sequence layout.

    Raises:
        ValueError: the shape is not `(batch, 1, T)` or `(batch, T, features)`.
    """
    if len(shape) != 3 or None in shape[1:]:
        raise ModelError(
            "model", f"expected an input shape (batch, 1, T) or (batch, T, features), got {shape}"
        )
    _, first, second = shape
    return (int(second), "legacy") if first == 1 else (int(first), "sequence")


def sine_series(
    training_examples: int = TRAINING_EXAMPLES,
    testing_examples: int = TESTING_EXAMPLES,
    sample_gap: float = SAMPLE_GAP,
) -> tuple[np.ndarray, np.ndarray]:
    """The source's training and test series, built from its constants.

    Training: `sin(linspace(0, 100, 10000))`; test: `sin(linspace(100, 110, 1000))`, both
    float32 as in the source (the two ranges share the point 100).

    Returns:
        `(train_seq, test_seq)`, float32 arrays of shapes `(training_examples,)` and
        `(testing_examples,)`.
    """
    for name, value in (("training_examples", training_examples), ("testing_examples", testing_examples)):
        check_positive_int(name, value)
    if isinstance(sample_gap, bool) or not isinstance(sample_gap, numbers.Real) or not sample_gap > 0:
        raise ConfigError("sample_gap", f"expected a positive number, got {sample_gap!r}")
    test_start = training_examples * sample_gap
    test_end = (training_examples + testing_examples) * sample_gap
    train_seq = np.sin(np.linspace(0, test_start, training_examples, dtype=np.float32))
    test_seq = np.sin(np.linspace(test_start, test_end, testing_examples, dtype=np.float32))
    return train_seq, test_seq


def sine_windows(
    timesteps: int = TIMESTEPS, layout: str = "legacy"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The source experiment's `(train_x, train_y, test_x, test_y)` in `layout`.

    With the defaults: shapes `(9989, 1, 10)`, `(9989, 1)`, `(989, 1, 10)`, `(989, 1)`.
    """
    timesteps = check_positive_int("timesteps", timesteps)
    if timesteps > TESTING_EXAMPLES - 2:
        raise ConfigError(
            "timesteps",
            f"expected at most {TESTING_EXAMPLES - 2} for the source's {TESTING_EXAMPLES}-point test series, "
            f"got {timesteps}",
        )
    train_seq, test_seq = sine_series()
    train_x, train_y = generate_data(train_seq, timesteps, layout)
    test_x, test_y = generate_data(test_seq, timesteps, layout)
    return train_x, train_y, test_x, test_y


def adding_problem(count: int, timesteps: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The adding problem (Hochreiter & Schmidhuber, 1997): a task that needs long memory.

    Each sequence has `timesteps` steps of two features: a random value in [0, 1) and a
    marker, 1 at exactly two steps (one in each half) and 0 elsewhere. The target is the sum
    of the two marked values, so a model must remember a value seen up to `timesteps` steps
    before the end. Always predicting 1.0 scores the variance of the sum, 2/12 ≈ 0.167 MSE.

    Returns:
        `(x, y)`: float32 arrays of shapes `(count, timesteps, 2)` and `(count, 1)`.
    """
    count = check_positive_int("count", count)
    timesteps = check_positive_int("timesteps", timesteps)
    if timesteps < 2:
        raise ConfigError("timesteps", f"expected at least 2 for two marked steps, got {timesteps}")
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.0, 1.0, (count, timesteps))
    half = timesteps // 2
    first = rng.integers(0, half, count)
    second = rng.integers(half, timesteps, count)
    rows = np.arange(count)
    markers = np.zeros((count, timesteps))
    markers[rows, first] = markers[rows, second] = 1.0
    x = np.stack([values, markers], axis=-1).astype(np.float32)
    y = (values[rows, first] + values[rows, second]).astype(np.float32).reshape(count, 1)
    return x, y
