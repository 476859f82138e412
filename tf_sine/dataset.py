"""A series split in time, the transform the model sees it through, and the windows cut from it.

One `Dataset` holds a whole series in its own units (`levels`) and the positions of the values
each part predicts (`train_targets`, `val_targets`, `test_targets`). The window for target `t`
is the `timesteps` values before it, so a validation or test window may look back into an
earlier part; no target is ever used by two parts, and nothing is shuffled across them.

A `Transform` is what the model sees: optionally the differences `x[t] - x[t-1]`
(`difference`), then scaled with statistics of the training part only. `decode` undoes both,
so every output is in the series' units.

The source's sine is a `Dataset` too (`sine_dataset`): its training and test series side by
side, with exactly the windows of the source's `generate_data` (the last one dropped).

>>> data = split_series(np.arange(100.0), (0.7, 0.15, 0.15), timesteps=5)
>>> len(data.train_targets), len(data.val_targets), len(data.test_targets)
(65, 15, 15)
>>> transform = Transform.fit(data, scale="standard")
>>> x, y = data.windows(transform, data.test_targets, 5, "sequence")
>>> x.shape, y.shape
((15, 5, 1), (15, 1))
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tf_sine.config import SCALES, Config, ConfigError, check_choice
from tf_sine.data import TESTING_EXAMPLES, sine_series, to_layout
from tf_sine.errors import DataError

# `Config.data` of a series given as a pandas object (`Run.with_series`, `run_experiment(series=)`):
# its values live in memory, or in the run directory's ``series.csv``.
PANDAS_SOURCE = "<pandas>"

# A season is reported only when the autocorrelation at its length reaches this: weaker
# cycles do not make the seasonal-naive baseline worth showing.
MIN_SEASONAL_CORRELATION = 0.3


@dataclass(frozen=True)
class Dataset:
    """A series and the target positions of its chronological parts.

    Attributes:
        levels: the series in its own units, float64, shape `(N,)`.
        train_targets, val_targets, test_targets: int arrays of positions in `levels`
            predicted in each part (ascending; `val_targets` may be empty).
        train_end: `levels[:train_end]` is the training part (scaling, mean baseline, season).
        dates: the time of each value, or None.
        name: what the values are (a column name, or ``"sin"``).
        difference: the windows are differenced (targets start one step later).
        filled: bool `(N,)`, True where an empty cell was filled (`tf_sine.series.fill_gaps`);
            None when none was. Filled values feed windows and training but are never a
            validation or test target: they are not truth.
        extras: the inputs fed beside the values (`tf_sine.covariates`), float64 `(M, E)`,
            `M >= N`: the covariates, then the calendar features; rows past `N` are known
            ahead. None without them.
        extra_names: the names of `extras`' columns, `(E,)`.
        future_dates: the times of rows `N..M-1`, or None.
        calendar: the calendar cycles among the extras (`tf_sine.config.CALENDARS`).
    """

    levels: np.ndarray
    train_targets: np.ndarray
    val_targets: np.ndarray
    test_targets: np.ndarray
    train_end: int
    dates: list | None = None
    name: str = "sin"  # the source labelled its curve 'real_sin'
    difference: bool = False  # whether targets leave room for one differenced window
    filled: np.ndarray | None = None
    extras: np.ndarray | None = None
    extra_names: tuple[str, ...] = ()
    future_dates: list | None = None
    calendar: tuple[str, ...] = ()

    def windows(
        self, transform: Transform, targets: np.ndarray, timesteps: int, layout: str, horizon: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """Model inputs and labels for `targets`, in the transform's space.

        Args:
            horizon: label each window with the `horizon` values from its target on (direct
                multi-step); those of `targets` whose last label would pass the part's last
                target are left out, so no label crosses into the next part.

        Returns:
            `(x, y)`: float32 arrays of shapes `(n, 1, T)` or `(n, T, 1 + E)` (by `layout`;
            `E` extra inputs) and `(n, horizon)`.
        """
        targets = np.asarray(targets, dtype=np.int64)
        if horizon > 1 and len(targets):
            targets = targets[targets + horizon - 1 <= targets[-1]]
        encoded = transform.encode(self.levels)
        labels = encoded[targets[:, None] + np.arange(horizon)].astype(np.float32)
        return self.with_extras(transform, _cut(encoded, targets, timesteps), targets, layout), labels

    def inputs(self, transform: Transform, targets: np.ndarray, timesteps: int, layout: str) -> np.ndarray:
        """The window before each of `targets` (a target may be `len(levels)`, the value after
        the end), in the transform's space: float32, `(n, 1, T)` or `(n, T, 1 + E)`."""
        targets = np.asarray(targets, dtype=np.int64)
        return self.with_extras(transform, self.value_windows(transform, targets, timesteps), targets, layout)

    def with_extras(
        self, transform: Transform, values: np.ndarray, targets: np.ndarray, layout: str
    ) -> np.ndarray:
        """Model inputs from windows of values `(n, T)` (model space) predicting `targets`:
        `(n, 1, T)` or `(n, T, 1 + E)`, each step beside the extras of the time after it.

        Raises:
            DataError: a target lies past the known future rows of a covariate.
        """
        x = to_layout(values.astype(np.float32)[:, None, :], layout)
        if self.extras is None:
            return x
        timesteps = values.shape[1]
        targets = np.asarray(targets, dtype=np.int64)
        if len(targets):
            self.check_extras(int(targets.max()))
        extras = transform.encode_extras(self.extras)[targets[:, None] - timesteps + 1 + np.arange(timesteps)]
        return np.concatenate([x, extras.astype(np.float32)], axis=2)

    def check_extras(self, target: int) -> None:
        """Raises `DataError` when the extra inputs stop before `target` (a covariate's future
        rows end), naming the covariate and the first missing date."""
        if self.extras is None or target < len(self.extras):
            return
        from tf_sine.series import time_text

        last = len(self.extras) - 1
        raise DataError(
            "horizon",
            f"expected a value of covariate {self.extra_names[0]!r} at {time_text(self.time_at(last + 1))} "
            f"for this horizon, got none (the table's rows end at {time_text(self.time_at(last))})",
        )

    def value_windows(self, transform: Transform, targets: np.ndarray, timesteps: int) -> np.ndarray:
        """The values before each of `targets` in the transform's space, float64 `(n, T)`."""
        return _cut(transform.encode(self.levels), np.asarray(targets, dtype=np.int64), timesteps)

    def time_at(self, position: int) -> Any:
        """The date (or position, without dates) of `position`, past the end too."""
        return self.times(range(position, position + 1))[0]

    def times(self, positions: range) -> list:
        """The dates of `positions` (the future rows' dates past the end, then the dates
        continued: `tf_sine.series.future_dates`), or the positions without dates."""
        if self.dates is None:
            return list(positions)
        times = [*self.dates, *(self.future_dates or [])]
        if positions.stop > len(times):
            from tf_sine.series import future_dates

            times += future_dates(times, positions.stop - len(times))
        return [times[p] for p in positions]


def _cut(encoded: np.ndarray, targets: np.ndarray, timesteps: int) -> np.ndarray:
    """The `timesteps` values before each of `targets`: `(n, T)`."""
    return np.lib.stride_tricks.sliding_window_view(encoded, timesteps)[targets - timesteps]


def first_target(timesteps: int, difference: bool) -> int:
    """The first position a full window can predict: `timesteps` values before it, one more
    when the windows are differenced (a difference needs the value before it)."""
    return timesteps + int(difference)


def sine_dataset(timesteps: int, difference: bool = False) -> Dataset:
    """The source's training series (10000 points) and test series (1000) side by side.

    Training targets are those of `generate_data(train_seq)`, test targets those of
    `generate_data(test_seq)`: the windows are the source's, value for value.
    """
    if timesteps > TESTING_EXAMPLES - 2 - difference:
        raise ConfigError(
            "timesteps",
            f"expected at most {TESTING_EXAMPLES - 2 - difference} for the source's "
            f"{TESTING_EXAMPLES}-point test series, got {timesteps}",
        )
    train_seq, test_seq = sine_series()
    first = first_target(timesteps, difference)
    # generate_data stops one window early: its last target is seq[-2].
    train = np.arange(first, len(train_seq) - 1)
    test = len(train_seq) + np.arange(first, len(test_seq) - 1)
    levels = np.concatenate([train_seq, test_seq]).astype(np.float64)
    return Dataset(levels, train, np.arange(0), test, len(train_seq), difference=difference)


def split_series(
    levels: np.ndarray,
    split: tuple[float, float, float],
    timesteps: int,
    difference: bool = False,
    dates: Any = None,
    name: str = "values",
    filled: np.ndarray | None = None,
) -> Dataset:
    """Splits a series in time: the first `split[0]` for training, then validation, then test.

    Positions marked in `filled` are left out of the validation and test targets.

    Raises:
        ValueError: the series is too short for one training window plus a value in each part.
    """
    n = len(levels)
    first = first_target(timesteps, difference)
    if not _long_enough(n, split, first):
        needed = _shortest_series(split, first, start=n + 1)
        shown = ",".join(f"{part:g}" for part in split)
        raise DataError(
            "data",
            f"expected at least {needed} values for one window of {timesteps} steps"
            f"{' (differenced)' if difference else ''} plus the split {shown}, got {n}",
        )
    train_end, val_end = _boundaries(n, split)
    validation, test = np.arange(train_end, val_end), np.arange(val_end, n)
    if filled is not None:
        validation, test = validation[~filled[validation]], test[~filled[test]]
        if not len(test):
            raise DataError(
                "data", f"expected a value in the test part that was not filled, got {n - val_end} filled"
            )
    return Dataset(
        np.asarray(levels, dtype=np.float64),
        np.arange(first, train_end),
        validation,
        test,
        train_end,
        dates,
        name,
        difference,
        filled,
    )


def _boundaries(n: int, split: tuple[float, float, float]) -> tuple[int, int]:
    train_end = round(split[0] * n)
    return train_end, train_end + round(split[1] * n)


def _shortest_series(split: tuple[float, float, float], first: int, start: int) -> int:
    """The fewest values, at least `start`, that `split` leaves long enough (see `_long_enough`).

    Rounding gives a validation part its first value beyond half a value over its fraction, and
    training needs more than `first` values: the search starts at those bounds, not below.
    """
    validation = math.floor(0.5 / split[1]) if split[1] > 0 else 0
    m = max(start, validation, math.floor(first / split[0]))
    while not _long_enough(m, split, first):
        m += 1
    return m


def _long_enough(n: int, split: tuple[float, float, float], first: int) -> bool:
    train_end, val_end = _boundaries(n, split)
    return train_end > first and (split[1] == 0 or val_end > train_end) and n > val_end


@dataclass(frozen=True)
class Transform:
    """Differencing and scaling, fitted on the training part; stored as ``scaling.json``.

    The model sees `(d - offset) / factor`, where `d` is the series (or its differences).
    """

    difference: bool = False
    scale: str = "none"
    offset: float = 0.0
    factor: float = 1.0
    # The extra inputs' scaling (`Dataset.extras`), column by column; never differenced.
    extra_offsets: tuple[float, ...] = ()
    extra_factors: tuple[float, ...] = ()

    @classmethod
    def fit(cls, data: Dataset, scale: str = "none", difference: bool = False) -> Transform:
        """Fits the scaling on the training part of `data` (``"auto"`` means ``"standard"``)."""
        check_choice("scale", scale, SCALES)
        scale = "standard" if scale == "auto" else scale
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is refused below
            values = _differenced(data.levels[: data.train_end], difference)[int(difference) :]
            offset, factor = 0.0, 1.0
            if scale == "standard":
                offset, factor = float(values.mean()), float(values.std())
            elif scale == "minmax":
                offset, factor = float(values.min()), float(values.max() - values.min())
        if not (np.isfinite(values).all() and math.isfinite(offset) and math.isfinite(factor)):
            largest = float(np.max(np.abs(data.levels)))
            raise DataError(
                "data",
                f"expected values whose differences and spread a float64 can hold, got values up to "
                f"{largest:.3g} in size; divide the series by a power of ten first",
            )
        if not factor > 0 and scale == "standard":  # a spread whose squares underflow (values near 1e-300)
            factor = root_mean_square(values - offset)
        if not factor > 0:  # a constant training part: shift only
            factor = 1.0
        offsets, factors = _extra_scaling(data, scale)
        return cls(difference, scale, offset, factor, offsets, factors)

    @classmethod
    def for_config(cls, data: Dataset, config: Config) -> Transform:
        """The transform `config` asks for; ``scale="auto"`` is none on the sine, standard on a file."""
        scale = config.scale
        if scale == "auto":
            scale = "none" if config.data is None else "standard"
        return cls.fit(data, scale, data.difference)

    def encode(self, levels: np.ndarray) -> np.ndarray:
        """What the model sees, aligned with `levels` (position 0 is NaN when differenced)."""
        values = _differenced(np.asarray(levels, dtype=np.float64), self.difference)
        if self.scale == "none":
            return values  # unchanged, so the sine's windows stay bit-identical
        return (values - self.offset) / self.factor

    def encode_extras(self, extras: np.ndarray) -> np.ndarray:
        """The extra inputs `(M, E)` as the model sees them: scaled column by column."""
        if self.scale == "none":
            return extras
        return (extras - np.asarray(self.extra_offsets)) / np.asarray(self.extra_factors)

    def decode(self, outputs: np.ndarray, previous: np.ndarray) -> np.ndarray:
        """Model outputs back to the series' units.

        Args:
            outputs: model outputs for targets `t`, any shape.
            previous: the series' values at `t - 1`, same shape (used when differenced).
        """
        values = np.asarray(outputs, dtype=np.float64)
        if self.scale != "none":
            values = values * self.factor + self.offset
        return values + previous if self.difference else values

    def decode_ahead(self, outputs: np.ndarray, last: np.ndarray) -> np.ndarray:
        """A direct model's outputs `(n, horizon)` (value `k + 1` steps after each window)
        back to the series' units; `last`: the value ending each window, `(n,)`. Differences
        are summed from `last` on."""
        values = self.decode(outputs, np.zeros(np.shape(outputs)))  # scaled back, not yet summed
        return (
            np.asarray(last, np.float64)[:, None] + np.cumsum(values, axis=1) if self.difference else values
        )

    def to_dict(self) -> dict:
        """A JSON-ready dict; the extra inputs' scaling only where there are extra inputs."""
        values = asdict(self)
        if not self.extra_offsets:
            del values["extra_offsets"], values["extra_factors"]
        return values

    @classmethod
    def from_dict(cls, values: dict) -> Transform:
        extras = {name: tuple(values.get(name, ())) for name in ("extra_offsets", "extra_factors")}
        return cls(**{**values, **extras})


def _extra_scaling(data: Dataset, scale: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Each extra input's offset and factor for `scale`, from the training part's rows."""
    if data.extras is None:
        return (), ()
    seen = data.extras[: data.train_end]
    if scale == "minmax":
        offsets, factors = seen.min(axis=0), seen.max(axis=0) - seen.min(axis=0)
    elif scale == "standard":
        offsets, factors = seen.mean(axis=0), seen.std(axis=0)
    else:
        offsets, factors = np.zeros(seen.shape[1]), np.ones(seen.shape[1])
    factors = np.where(factors > 0, factors, 1.0)  # a constant column: shifted only
    return tuple(map(float, offsets)), tuple(map(float, factors))


def root_mean_square(values: np.ndarray) -> float:
    """`sqrt(mean(values ** 2))` in float64, computed on `values / max|values|` where the squares
    themselves would underflow to zero or overflow (values beyond about 1e±150)."""
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(over="ignore", under="ignore"):
        plain = float(np.sqrt(np.mean(values**2))) if values.size else math.nan
    largest = float(np.max(np.abs(values))) if values.size else 0.0
    if (plain > 0 and math.isfinite(plain)) or not largest > 0 or not math.isfinite(largest):
        return plain
    return largest * float(np.sqrt(np.mean((values / largest) ** 2)))


def _differenced(values: np.ndarray, difference: bool) -> np.ndarray:
    if not difference:
        return values
    return np.concatenate([[np.nan], np.diff(values)])


def load_dataset(config: Config, series: Any = None) -> Dataset:
    """The series `config` names (`config.data`, else the source's sine), split for training.

    Args:
        config: the split, window and differencing (and the file to read).
        series: a `tf_sine.series.Series` to use instead of reading `config.data`.

    ``difference=None`` (auto) differences a file's series when `has_trend` finds a trend in
    its training part; the sine is never differenced unless asked (the source did not).
    """
    if config.data is None and series is None:
        config.check_for_sine()
        return sine_dataset(config.timesteps, bool(config.difference))
    if series is None and config.id_column is not None:  # one series of a long table
        from tf_sine.panel import read_one

        series = read_one(config.data, config)
    elif series is None:
        from tf_sine.series import read_series_file

        series = read_series_file(config.data, config.column, config.fill, config.covariates)
    if series.covariate_names != config.covariates:
        raise ConfigError(
            "covariates", f"expected the series' covariates to be {','.join(config.covariates) or 'none'}, "
            f"got {','.join(series.covariate_names) or 'none'}",
        )  # fmt: skip
    difference = config.difference
    if difference is None:
        train_end, _ = _boundaries(len(series.values), config.split)
        difference = has_trend(series.values[: max(train_end, 2)])
    data = split_series(series.values, config.split, config.timesteps, difference, series.dates, series.name,
                        series.filled)  # fmt: skip
    from tf_sine.covariates import calendar_names, extra_inputs, resolve_calendar

    cycles = resolve_calendar(config.calendar, series.dates)
    extras, future = extra_inputs(series, cycles)
    names = series.covariate_names + calendar_names(cycles)
    return dataclasses.replace(data, extras=extras, extra_names=names, future_dates=future, calendar=cycles)


def data_fingerprint(config: Config, data: Dataset) -> dict[str, Any]:
    """What identifies the data a run trains on: the file, its size, a hash of the values used.

    A resume compares it with the run's, so a changed file is caught even at the same size.
    """
    values = np.ascontiguousarray(data.levels, dtype=np.float64)
    digest = hashlib.sha256(values.tobytes())
    if data.extras is not None:  # a changed covariate changes the data too
        digest.update(np.ascontiguousarray(data.extras, dtype=np.float64).tobytes())
    fingerprint: dict[str, Any] = {"values_sha256": digest.hexdigest()}
    if config.data is not None and config.data != PANDAS_SOURCE:
        fingerprint.update(path=str(config.data), size=os.path.getsize(config.data))
    return fingerprint


def has_trend(values: np.ndarray) -> bool:
    """True when a straight line through `values` rises or falls by more than the spread
    around it: a level the model would have to extrapolate, which differencing removes."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 3 or not np.isfinite(values).all():
        return False  # too few values to tell (the split's check then names the length)
    time = np.arange(len(values))
    with np.errstate(over="ignore", invalid="ignore"):  # values near float64's limit: no trend told
        slope, intercept = np.polyfit(time, values, 1)
        spread = float(np.std(values - (slope * time + intercept)))
        return bool(abs(slope) * (len(values) - 1) > spread)


def range_warnings(data: Dataset, transform: Transform) -> list[str]:
    """One line for each later part whose values leave the training part's range.

    A model fitted on levels has never seen such values and rarely extrapolates to them (a
    rising trend); differencing often helps.
    """
    what = "differences" if transform.difference else "values"
    values = _differenced(data.levels, transform.difference)
    seen = values[data.train_targets]
    low, high = float(seen.min()), float(seen.max())
    span = max(high - low, 1e-12)
    lines = []
    for part, targets in (("validation", data.val_targets), ("test", data.test_targets)):
        if not len(targets):
            continue
        part_low, part_high = float(values[targets].min()), float(values[targets].max())
        # A sliver beyond the range is noise; a tenth of the range is a trend.
        if part_high > high + 0.1 * span or part_low < low - 0.1 * span:
            reach = part_high if part_high > high + 0.1 * span else part_low
            hint = "" if transform.difference else "; consider `difference`"
            lines.append(
                f"warning: the {part} part's {what} reach {reach:.4g}, outside the training part's "
                f"range [{low:.4g}, {high:.4g}]{hint}"
            )
    return lines


def season_of(data: Dataset, period: int | None = None) -> int | None:
    """`period` if given, else the season `detect_period` finds in the training part."""
    return period or detect_period(data.levels[: data.train_end])


def detect_period(values: np.ndarray, max_period: int | None = None) -> int | None:
    """The season length of `values`: the strongest autocorrelation peak, or None.

    The series is detrended (least-squares line) and its autocorrelation computed for lags
    2 .. `max_period` (default a third of the length); the lag of the highest local maximum
    wins if its correlation reaches `MIN_SEASONAL_CORRELATION` and the band 2/sqrt(n) within
    which a series without a cycle stays 95% of the time.
    """
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    max_period = min(max_period or n // 3, n // 2)
    if max_period < 3:
        return None
    time = np.arange(n)
    residual = values - np.polyval(np.polyfit(time, values, 1), time)
    residual -= residual.mean()
    if not np.any(residual):
        return None
    size = 1 << math.ceil(math.log2(2 * n))
    spectrum = np.fft.rfft(residual, size)
    acf = np.fft.irfft(spectrum * np.conj(spectrum), size)[: max_period + 2]
    acf /= acf[0]
    lags = np.arange(2, max_period + 1)
    peaks = lags[(acf[lags] > acf[lags - 1]) & (acf[lags] >= acf[lags + 1])]
    if not len(peaks):
        return None
    best = int(peaks[np.argmax(acf[peaks])])
    # Beyond the 95% band of a series without any cycle (2/sqrt(n)), which short series need.
    return best if acf[best] >= max(MIN_SEASONAL_CORRELATION, 2 / math.sqrt(n)) else None
