"""Inputs beside a series' own values: covariate columns and calendar features of its dates.

A covariate is a column known over the forecast horizon too (a price, a holiday flag): its
future values are the table's rows after the series' last value (`tf_sine.series.Series`). A
calendar feature is the sine and cosine of where each date lies in a cycle (`CALENDARS`: the
hour of the day, the day of the week or of the year, the month of the year), so that a model
sees December beside January.

At each time step the model reads a value and the extra inputs of the *next* time: the window
for target `t` pairs `levels[t - T + j]` with the extras of time `t - T + j + 1`, so its last
step carries the target's own covariates (the price on the day being forecast).

>>> times = pd.date_range("2024-01-01", periods=3, freq="MS")
>>> calendar_features(times, ("month",)).round(3).tolist()
[[0.0, 1.0], [0.5, 0.866], [0.866, 0.5]]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from tf_sine.errors import DataError

# The phase, in [0, 1), of each date in each cycle of `tf_sine.config.CALENDARS` (but "auto").
_PHASES = {
    "hour": lambda times: (times.hour + times.minute / 60) / 24,
    "weekday": lambda times: times.day_of_week / 7,
    "yearday": lambda times: (times.day_of_year - 1) / 365.25,
    "month": lambda times: (times.month - 1) / 12,
}


def resolve_calendar(cycles: tuple[str, ...], dates: Any) -> tuple[str, ...]:
    """The cycles `cycles` names: ``("auto",)`` becomes those the dates' spacing shows.

    Raises:
        DataError: the series has no dates, or (auto) dates a year or more apart.
    """
    if not cycles:
        return ()
    if not isinstance(dates, pd.DatetimeIndex):
        got = "none" if dates is None else "numbers such as years"
        raise DataError(
            "calendar", f"expected a series with dates (a date column or a DatetimeIndex), got {got}"
        )
    if cycles != ("auto",):
        return cycles
    step = pd.Series(dates).diff().median() if len(dates) > 1 else pd.Timedelta(0)
    for cycles_at, below in ((("hour", "weekday"), 1), (("weekday", "yearday"), 7), (("yearday",), 28),
                             (("month",), 300)):  # fmt: skip
        if pd.Timedelta(0) < step < pd.Timedelta(days=below):
            return cycles_at
    raise DataError(
        "calendar", f"expected dates less than 300 days apart for 'auto' (a cycle within the year), got a "
        f"median spacing of {step}",
    )  # fmt: skip


def calendar_features(times: pd.DatetimeIndex, cycles: tuple[str, ...]) -> np.ndarray:
    """The sine and cosine of each time's phase in each cycle: float64 `(len(times), 2 * len(cycles))`,
    columns ordered as `calendar_names`."""
    columns = []
    for cycle in cycles:
        phase = 2 * math.pi * np.asarray(_PHASES[cycle](times), dtype=np.float64)
        columns += [np.sin(phase), np.cos(phase)]
    return np.stack(columns, axis=1) if columns else np.zeros((len(times), 0))


def calendar_names(cycles: tuple[str, ...]) -> tuple[str, ...]:
    """The names of `calendar_features`' columns: ``month_sin``, ``month_cos``, ..."""
    return tuple(f"{cycle}_{part}" for cycle in cycles for part in ("sin", "cos"))


def extra_inputs(series: Any, cycles: tuple[str, ...]) -> tuple[np.ndarray | None, list | None]:
    """The extra inputs of every row of `series`: its covariates, then `cycles`' calendar features.

    Args:
        series: a `tf_sine.series.Series` (`N` values, `M >= N` covariate rows).
        cycles: resolved calendar cycles (`resolve_calendar`).

    Returns:
        `(extras, future)`: float64 `(M, E)` (None without covariates or cycles), and the times
        of rows `N..M-1`. Without covariates the calendar runs `N` rows past the end: a
        forecast is at most as long as its series.
    """
    if series.covariates is None and not cycles:
        return None, series.future_dates
    rows = len(series.values) if series.covariates is None else len(series.covariates)
    future = series.future_dates
    if series.covariates is None and series.dates is not None and len(series.dates) > 1:
        from tf_sine.series import future_dates

        rows, future = 2 * len(series.values), future_dates(series.dates, len(series.values))
    parts = [] if series.covariates is None else [series.covariates[:rows]]
    if cycles:
        parts.append(calendar_features(pd.DatetimeIndex([*series.dates, *future]), cycles))
    return np.concatenate(parts, axis=1), future
