"""Reading a user's series from a file: CSV with a header row, or a NumPy ``.npy`` array.

A CSV file holds one value column and, optionally, a date/time column (kept for plots and
forecast dates) and other columns (ignored). The value column is `column`, or the only numeric
column besides the time column. pandas reads the table (`read_csv`), the dates (`to_datetime`,
one format for the whole column) and continues them (`infer_freq`, `date_range`). Every problem
is one `DataError` naming the argument, the line and the value, so the CLI can print it as one
line. Empty cells in the value column are refused or filled (`fill`, one of `FILLS`).

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "sales.csv"
>>> _ = path.write_text("month,sales\\n2020-01,10\\n2020-02,12.5\\n2020-03,11\\n")
>>> series = read_series_file(path)
>>> series.name, series.values.tolist(), series.dates[0].isoformat()
('sales', [10.0, 12.5, 11.0], '2020-01-01T00:00:00')
>>> [d.isoformat()[:10] for d in future_dates(series.dates, 2)]
['2020-04-01', '2020-05-01']
"""

from __future__ import annotations

import collections
import csv
import io
import itertools
import numbers
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries.api import guess_datetime_format
from pandas.tseries.frequencies import to_offset

from tf_sine.config import FILLS, check_choice
from tf_sine.data import as_series
from tf_sine.errors import DataError
from tf_sine.files import atomic_write, first_line, given_path

# A numeric first column with one of these names is a time axis (e.g. yearly counts), not a value.
TIME_NAMES = frozenset({"year", "date", "time", "timestamp", "datetime", "month", "day", "week", "period",
                        "quarter", "index", "t", "ds"})  # fmt: skip


@dataclass(frozen=True)
class Series:
    """One series read from a file.

    Attributes:
        values: the values, float64, shape `(N,)`.
        dates: the time of each value (`datetime.datetime`, or an `int` for a numeric time
            column such as years), shape `(N,)`; None when the file has no time column.
        name: the value column's name (``"values"`` for ``.npy``).
        time_name: the time column's name, or None.
        path: the file read.
        filled: bool `(N,)`, True where an empty cell was filled (`FILLS`); None when none was.
        fill: how the gaps were (or would have been) filled, one of `FILLS`.
        covariates: the covariate columns, float64 `(M, C)` with `M >= N`: rows past `N` are
            the future rows (after the last value, known ahead); None without covariates.
        covariate_names: the covariate columns' names, `(C,)`.
        future_dates: the times of the future rows, `(M - N,)`; None without dates.
    """

    values: np.ndarray
    dates: pd.DatetimeIndex | list[int] | None
    name: str
    time_name: str | None
    path: str
    filled: np.ndarray | None = None
    fill: str = "none"
    covariates: np.ndarray | None = None
    covariate_names: tuple[str, ...] = ()
    future_dates: list | None = None

    def csv_text(self) -> str:
        """The series as CSV (a time column where there are dates, then the covariates and
        their future rows), every value exact, filled cells empty again: `read_series_file`
        reads the same series back."""
        values = self.values if self.filled is None else np.where(self.filled, np.nan, self.values)
        rows = len(values) if self.covariates is None else len(self.covariates)
        frame = pd.DataFrame({self.name: np.concatenate([values, np.full(rows - len(values), np.nan)])})
        for index, name in enumerate(self.covariate_names):
            frame[name] = self.covariates[:, index]
        if self.dates is not None:
            times = [*self.dates, *(self.future_dates or [])]
            frame.index = pd.Index(times, name=self.time_name or "time")
        return frame.to_csv(index=self.dates is not None, float_format="%.17g", lineterminator="\n")


def read_values(path: str | os.PathLike, argument: str = "input") -> np.ndarray:
    """A 1-D series from a ``.npy`` file or a text file of numbers (see `parse_values`).

    Raises:
        DataError: the file is missing, unreadable, or holds something other than numbers.
    """
    path = given_path(path, argument, "a file path", DataError)
    if not path.is_file():
        raise DataError(argument, f"expected an existing file, got {str(path)!r}")
    if path.suffix == ".npy":
        try:
            values = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise DataError(argument, f"cannot read {str(path)!r} as a .npy array: {error}") from None
        return as_series(values, argument)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DataError(
            argument, f"expected UTF-8 text or a .npy file, got {error.reason} in {str(path)!r}"
        ) from None
    return parse_values(text, argument)


def parse_values(text: str, argument: str = "input") -> np.ndarray:
    """Numbers separated by newlines, commas or white space, as a 1-D float64 series."""
    try:
        values = np.array([float(token) for token in text.replace(",", " ").split()])
    except ValueError as error:
        raise DataError(argument, f"expected numbers, got {str(error).split(': ', 1)[-1]}") from None
    return as_series(values, argument)


def check_output_path(path: str | os.PathLike, argument: str = "output") -> Path:
    """`path` as a file `write_values` can write: refused before any work otherwise.

    Raises:
        DataError: `path` is empty, a directory, or in a missing directory.
    """
    path = given_path(path, argument, "a file path", DataError)
    if path.is_dir() or not path.parent.is_dir():
        what = "a directory" if path.is_dir() else "in a missing directory"
        raise DataError(argument, f"expected a file in an existing directory, got {what}: {str(path)!r}")
    return path


def write_values(path: str | os.PathLike, values: np.ndarray, argument: str = "output") -> Path:
    """Writes one number per line (9 significant digits; a row of `(n, K)` values comma
    separated), atomically.

    Raises:
        DataError: the folder of `path` is missing, or `path` is a directory.
    """
    path = check_output_path(path, argument)
    text = values_text(values)
    return atomic_write(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def values_text(values: np.ndarray) -> str:
    """`values` `(n,)` as one number per line, or `(n, K)` as comma-separated rows."""
    rows = np.asarray(values).reshape(len(values), -1)
    return "".join(",".join(f"{value:.9g}" for value in row) + "\n" for row in rows)


def read_series_file(
    path: str | os.PathLike, column: str | None = None, fill: str = "none", covariates: tuple[str, ...] = ()
) -> Series:
    """Reads a series from a ``.npy`` file or a CSV file with a header row.

    Args:
        path: the file. ``.npy``: a 1-D array or one column `(N, 1)`. Anything else is read
            as CSV (comma, semicolon or tab separated, sniffed from the first lines).
        column: the CSV column holding the values; default the only numeric column that is
            not the time column.
        fill: what to do with empty cells in the value column, one of `FILLS`; filled values
            are marked in `Series.filled`.
        covariates: CSV columns read beside the values (`Series.covariates`). Rows after the
            last value, with the value cell empty, are their future rows.

    Returns:
        A `Series` in file order (dates must increase).

    Raises:
        DataError: a missing or unreadable file, a missing column, text or (unless filled) an
            empty cell in the value column, dates that do not increase, or no numeric column.
    """
    check_choice("fill", fill, FILLS)
    path = Path(path)
    if not path.is_file():
        raise DataError("data", f"expected an existing .csv or .npy file, got {str(path)!r}")
    if path.suffix == ".npy":
        for name, value in (("column", column), ("covariates", ",".join(covariates) or None)):
            if value is not None:
                raise DataError(name, f"applies to CSV files only, got {value!r} for {str(path)!r}")
        return _read_npy(path)
    return _read_csv(path, column, fill, covariates)


def _read_npy(path: Path) -> Series:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DataError("data", f"cannot read {str(path)!r} as a .npy array: {error}") from None
    if not isinstance(array, np.ndarray):  # an .npz archive under a .npy name
        raise DataError("data", f"expected one array in {str(path)!r}, got an archive of {len(array.files)}")
    if array.size == 0:
        raise DataError("data", f"expected values in {str(path)!r}, got an empty array")
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1 or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise DataError(
            "data", f"expected a 1-D numeric array in {str(path)!r}, got {array.dtype} {array.shape}"
        )
    values = array.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise DataError(
            "data", f"expected finite values in {str(path)!r}, got {values[bad[0]]} at index {bad[0]}"
        )
    return Series(values, None, "values", None, str(path))


def _read_csv(path: Path, column: str | None, fill: str, covariates: tuple[str, ...]) -> Series:
    return table_series(*read_table(path), path.name, str(path), column, fill, covariates)


def table_series(
    header: list[str],
    body: pd.DataFrame,
    lines: np.ndarray,
    name: str,
    source: str,
    column: str | None,
    fill: str,
    covariates: tuple[str, ...],
) -> Series:
    """The series in a table's text cells (`body`, each row's file line in `lines`), checked
    as `read_series_file` says; messages name the file `name` and its lines."""
    path = Path(name)
    numbers = body.apply(pd.to_numeric, errors="coerce")
    finite = np.isfinite(numbers.to_numpy(dtype=np.float64))
    numeric = [name for index, name in enumerate(header) if finite[:, index].all()]
    mostly_numeric = [name for index, name in enumerate(header) if 2 * finite[:, index].sum() > len(body)]
    time_name, dates = _time_column(header, body, numeric, mostly_numeric)
    if time_name is None:
        _check_no_broken_dates(header, body, mostly_numeric, lines, path)
    # A value column with a stray word or an empty cell is still the value column: it is
    # chosen when most of its cells are numbers, and the bad cell is then reported.
    if column is not None:
        if column not in header:
            names = ", ".join(repr(name) for name in header)
            raise DataError("column", f"expected one of {names} (the columns of {path.name}), got {column!r}")
        value_name = column
    else:
        # An unnamed column (a saved DataFrame's index) is not a value column.
        candidates = [name for name in mostly_numeric if name != time_name and name
                      and not name.startswith("Unnamed") and name not in covariates]  # fmt: skip
        if len(candidates) != 1:
            found = ", ".join(repr(name) for name in candidates) or "none" + _why_none(
                header, body, covariates
            )
            raise DataError(
                "column",
                f"expected the name of the value column of {path.name} (numeric columns: {found})",
            )
        value_name = candidates[0]
    if value_name == time_name:
        raise DataError("column", f"expected a value column, got the time column {value_name!r}")
    index = header.index(value_name)
    cells = body.iloc[:, index].tolist()
    values = numbers.iloc[:, index].to_numpy(dtype=np.float64)
    gaps = np.array([cell == "" for cell in cells], dtype=bool)
    for position in np.flatnonzero(~gaps & ~np.isfinite(values)):
        what = "finite numbers" if _is_float(cells[position]) else "numbers"
        raise DataError(
            "data",
            f"expected {what} in column {value_name!r}, got {cells[position]!r} on line {lines[position]} "
            f"of {path.name}",
        )
    if dates is not None:
        _check_increasing(dates, body.iloc[:, header.index(time_name)].tolist(), lines, time_name, path)
    extra: dict[str, Any] = {}
    if covariates:
        end = _covariates_end(gaps, value_name, path.name)
        for name in covariates:
            if name not in header or name in (time_name, value_name):
                what = "its time column" if name == time_name else "its value column"
                others = [n for n in header if n not in (time_name, value_name)]
                got = f"{name!r}, {what}" if name in header else repr(name)
                listed = ", ".join(map(repr, others)) or "none"
                raise DataError("covariates", f"expected columns of {path.name} among {listed}, got {got}")
            index = header.index(name)
            for position in np.flatnonzero(~finite[:, index]):
                cell = body.iloc[position, index]
                got = repr(cell) if cell else "an empty cell"
                where = f"on line {lines[position]} of {path.name}"
                raise DataError("covariates", f"expected a number in column {name!r}, got {got} {where}")
    where = lambda row: f"after line {lines[row]} of {path.name}"  # noqa: E731
    if covariates:
        matrix = numbers.iloc[:, [header.index(name) for name in covariates]].to_numpy(np.float64)
        values, gaps, dates, extra = _cut_future_rows(values, gaps, dates, end, matrix, covariates, where)
    if gaps.any() and fill == "none":
        raise DataError(
            "data",
            f"expected a number in column {value_name!r}, got an empty cell on line "
            f"{lines[np.argmax(gaps)]} of {path.name} ({_gaps_note(gaps)})",
        )
    if not covariates:  # with them, `_cut_future_rows` checked every date, the future's too
        values, gaps, dates = _with_missing_dates(values, gaps, dates, fill, where, False)
    return _filled_series(values, gaps, dates, value_name, time_name, source, fill, **extra)


def _with_missing_dates(values: np.ndarray, gaps: np.ndarray, dates: Any, fill: str, where: Any,
                        covariates: bool) -> tuple[np.ndarray, np.ndarray, Any]:  # fmt: skip
    """The series on its regular grid of dates (`regular_grid`): a missing date is a gap, refused
    unless `fill` fills it (`where(row)` says where, by the row before it). A table with
    covariates is refused either way: their values cannot be filled."""
    grid = regular_grid(dates) if isinstance(dates, pd.DatetimeIndex) else None
    if grid is None:
        return values, gaps, dates
    missing = ~grid.isin(dates)
    first = grid[missing][0]
    before = int(dates.searchsorted(first)) - 1
    if fill == "none" or covariates:
        why = f"{int(missing.sum())} missing in all; `fill` can fill them: 'interpolate', 'ffill'"
        if covariates:
            why = "a table with covariates needs every row: their values cannot be filled"
        raise DataError(
            "data", f"expected a row for every date at the series' frequency ({grid.freqstr}), got none for "
            f"{time_text(first)} {where(before)} ({why})",
        )  # fmt: skip
    full_values, full_gaps = np.full(len(grid), np.nan), np.ones(len(grid), dtype=bool)
    full_values[~missing], full_gaps[~missing] = values, gaps
    return full_values, full_gaps, pd.DatetimeIndex(grid, freq=None)


def regular_grid(dates: pd.DatetimeIndex) -> pd.DatetimeIndex | None:
    """Every date from the first to the last at the frequency most runs of three consecutive
    `dates` show, when some of them are missing from `dates`; None when none are, or when no
    frequency shows. Business days are left alone: a holiday is not a missing value."""
    if len(dates) < 4:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas's notes on offsets
        if pd.infer_freq(dates) is not None:
            return None  # regular throughout
        step = max(1, (len(dates) - 2) // 200)
        seen = collections.Counter(pd.infer_freq(dates[i : i + 3]) for i in range(0, len(dates) - 2, step))
    seen.pop(None, None)
    if not seen:
        return None
    frequency_name = seen.most_common(1)[0][0]
    weekdays_only = frequency_name == "D" and bool(
        (dates.day_of_week < 5).all()
    )  # business days, read as days
    if frequency_name.startswith(("B", "C")) or weekdays_only:
        return None
    grid = pd.date_range(dates[0], dates[-1], freq=frequency_name)
    return grid if len(grid) > len(dates) and dates.isin(grid).all() else None


def _cut_future_rows(
    values: np.ndarray,
    gaps: np.ndarray,
    dates: Any,
    end: int,
    covariates: np.ndarray,
    names: tuple[str, ...],
    where: Any,
) -> tuple[np.ndarray, np.ndarray, Any, dict[str, Any]]:
    """The values, gaps and dates up to `end` (one past the last value), and the `Series` fields
    of the covariates `(rows, C)`, whose rows from `end` on are the future. Every date, the
    future's too, must be on the series' regular grid (`where(row)` names the row before a
    missing one)."""
    _with_missing_dates(values, gaps, dates, "none", where, True)
    extra = {
        "covariates": covariates,
        "covariate_names": names,
        "future_dates": None if dates is None else list(dates[end:]),
    }
    return values[:end], gaps[:end], None if dates is None else dates[:end], extra


def _covariates_end(gaps: np.ndarray, value_name: str, where: str) -> int:
    """One past the last value: the rows after it are the covariates' future rows."""
    known = np.flatnonzero(~gaps)
    if not known.size:
        raise DataError("data", f"expected values in column {value_name!r} of {where}, got only empty cells")
    return int(known[-1]) + 1


def _gaps_note(gaps: np.ndarray) -> str:
    others = ", ".join(repr(name) for name in FILLS if name != "none")
    return f"{int(gaps.sum())} empty in all; `fill` can fill them: {others}"


def _filled_series(values: np.ndarray, gaps: np.ndarray, dates: Any, name: str, time_name: str | None,
                   source: str, fill: str, **covariates: Any) -> Series:  # fmt: skip
    if not gaps.any():
        return Series(values, dates, name, time_name, source, None, fill, **covariates)
    filled = fill_gaps(np.where(gaps, np.nan, values), dates, fill)
    return Series(filled, dates, name, time_name, source, gaps, fill, **covariates)


def from_pandas(
    data: pd.Series | pd.DataFrame,
    column: str | None = None,
    fill: str = "none",
    covariates: tuple[str, ...] = (),
) -> Series:
    """A `Series` from a pandas object, checked like a file.

    Args:
        data: a `pandas.Series`, or a `DataFrame` whose value column is `column` (default its
            only numeric column). A `DatetimeIndex` gives the dates (times with a time zone
            become naive UTC), or a DataFrame's first datetime column, or its first column of date
            strings (read as in a file); any other index is ignored.
        column: the DataFrame's value column.
        fill: what to do with missing values (NaN), one of `FILLS`.
        covariates: DataFrame columns read beside the values; rows after the last value (NaN
            in the value column) are their future rows.

    Raises:
        DataError: not a pandas object, no such column, no single numeric column, values that
            are not numbers or infinite, missing values unless filled, or dates that do not
            increase.
    """
    check_choice("fill", fill, FILLS)
    if isinstance(data, pd.DataFrame):
        if not isinstance(data.index, pd.DatetimeIndex):
            data = _dates_as_index(data)
        if column is None:
            numeric = [name for name in data.columns
                       if pd.api.types.is_numeric_dtype(data[name]) and name not in covariates]  # fmt: skip
            if len(numeric) != 1:
                found = ", ".join(repr(name) for name in numeric) or "none"
                raise DataError(
                    "column", f"expected the name of the DataFrame's value column (numeric: {found})"
                )
            column = numeric[0]
        if column not in data.columns:
            names = ", ".join(repr(name) for name in data.columns)
            raise DataError("column", f"expected one of {names} (the DataFrame's columns), got {column!r}")
        extra = _frame_covariates(data, column, covariates)
        data = data[column]
    elif not isinstance(data, pd.Series):
        raise DataError("data", f"expected a pandas Series or DataFrame, got {type(data).__name__}")
    elif covariates:
        raise DataError(
            "covariates", f"expected a DataFrame with the columns {', '.join(covariates)}, got a Series"
        )
    else:
        extra = None
    if not pd.api.types.is_numeric_dtype(data) or pd.api.types.is_bool_dtype(data):
        raise DataError("data", f"expected numbers in {data.name!r}, got values of type {data.dtype}")
    values = data.to_numpy(dtype=np.float64, na_value=np.nan)
    if not len(values):
        raise DataError("data", "expected values, got an empty Series")
    infinite = np.flatnonzero(np.isinf(values))
    if infinite.size:
        raise DataError(
            "data", f"expected finite numbers, got {values[infinite[0]]} at {data.index[infinite[0]]}"
        )
    dates = None
    if isinstance(data.index, pd.DatetimeIndex):
        dates = data.index if data.index.tz is None else data.index.tz_convert("UTC").tz_localize(None)
        wrong = np.flatnonzero(np.diff(dates.asi8) <= 0)
        if wrong.size:
            after, at = dates[wrong[0]], dates[wrong[0] + 1]
            raise DataError("data", f"expected increasing dates in the index, got {at} after {after}")
        dates = pd.DatetimeIndex(dates, freq=None)
    gaps = np.isnan(values)
    name = "values" if data.name is None else str(data.name)
    covariates_of: dict[str, Any] = {}
    where = lambda row: f"after {time_text(dates[row])}"  # noqa: E731
    if extra is not None:
        end = _covariates_end(gaps, name, "the DataFrame")
        values, gaps, dates, covariates_of = _cut_future_rows(
            values, gaps, dates, end, extra, tuple(covariates), where
        )
    if gaps.any() and fill == "none":
        raise DataError(
            "data", f"expected a number at {data.index[np.argmax(gaps)]}, got NaN ({_gaps_note(gaps)})"
        )
    if extra is None:  # with covariates, `_cut_future_rows` checked every date, the future's too
        values, gaps, dates = _with_missing_dates(values, gaps, dates, fill, where, False)
    return _filled_series(values, gaps, dates, name, data.index.name, "pandas", fill, **covariates_of)


def _dates_as_index(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` indexed by its first datetime column, else by its first column of date strings
    (read as a file's would be, `parse_dates`); as it is when it has neither.

    Raises:
        DataError: a column of date strings that one cell breaks (`broken_date`).
    """
    times = [name for name in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[name])]
    if times:
        return frame.set_index(times[0])
    for name in frame.columns:
        if pd.api.types.is_numeric_dtype(frame[name]):
            continue
        cells = frame[name].tolist()
        if all(isinstance(cell, str) for cell in cells):
            dates = parse_dates(cells)
            if dates is not None:
                return frame.drop(columns=name).set_index(pd.DatetimeIndex(dates, name=name))
        broken = broken_date(cells)
        if broken is not None:
            raise DataError("data", f"{_broken_text(name, cells, *broken)} at {frame.index[broken[0]]}")
    return frame


def _frame_covariates(frame: pd.DataFrame, column: str, covariates: tuple[str, ...]) -> np.ndarray | None:
    """The `covariates` columns of `frame`, float64 `(M, C)`, checked; None without covariates."""
    if not covariates:
        return None
    for name in covariates:
        if name not in frame.columns or name == column:
            others = ", ".join(repr(other) for other in frame.columns if other != column) or "none"
            got = f"{name!r}, the value column" if name == column else repr(name)
            raise DataError("covariates", f"expected columns of the DataFrame among {others}, got {got}")
        cells = frame[name]
        if not pd.api.types.is_numeric_dtype(cells) or pd.api.types.is_bool_dtype(cells):
            raise DataError(
                "covariates", f"expected numbers in column {name!r}, got values of type {cells.dtype}"
            )
        values = cells.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise DataError(
                "covariates",
                f"expected a number in column {name!r} at {frame.index[bad[0]]}, got {values[bad[0]]}",
            )
    return frame[list(covariates)].to_numpy(dtype=np.float64)


def read_table(path: Path) -> tuple[list[str], pd.DataFrame, np.ndarray]:
    """The header, the body (text cells, stripped) and each body row's line number."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError("data", f"cannot read {str(path)!r} as UTF-8 text: {error}") from None
    try:
        delimiter = csv.Sniffer().sniff(text[:4096], delimiters=",;\t").delimiter
    except csv.Error:
        delimiter = ","
    try:
        # Every cell as text, blank lines kept: row i is line i + 1, and each cell can be named.
        table = pd.read_csv(io.StringIO(text), sep=delimiter, header=None, dtype=str, engine="python",
                            keep_default_na=False, skip_blank_lines=False)  # fmt: skip
    except pd.errors.EmptyDataError:
        table = pd.DataFrame()
    except pd.errors.ParserError as error:
        match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(error))
        if match is None:
            raise DataError("data", f"cannot read {path.name} as CSV: {first_line(error)}") from None
        width, line, got = match.groups()
        raise DataError(
            "data", f"expected {width} fields like the header on line {line} of {path.name}, got {got}"
        ) from None
    table = table.apply(lambda cells: cells.str.strip())
    table = table[(table.fillna("") != "").any(axis=1)]  # blank lines
    if len(table) < 2:
        raise DataError("data", f"expected a header row and at least one row of values in {str(path)!r}")
    header = table.iloc[0].fillna("").tolist()
    body = table.iloc[1:]
    # Some published CSV exports end with a one-cell description line; a short row in the
    # middle of the file is an error (pandas fills a short row's missing cells with NaN).
    while len(body) and body.iloc[-1].isna().any() and (body.iloc[-1].fillna("") != "").sum() <= 1:
        body = body.iloc[:-1]
    short = body.isna().any(axis=1).to_numpy()
    if short.any():
        row = body[short].iloc[0]
        raise DataError(
            "data", f"expected {len(header)} fields like the header on line {row.name + 1} of {path.name}, "
            f"got {int(row.notna().sum())}",
        )  # fmt: skip
    return header, body.reset_index(drop=True), body.index.to_numpy() + 1


def _is_float(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def fill_gaps(values: np.ndarray, dates: pd.DatetimeIndex | list | None, fill: str) -> np.ndarray:
    """`values` with its NaN entries filled as `fill` says (one of `FILLS` but ``"none"``).

    ``"interpolate"`` draws a straight line in time where there are dates (in position
    otherwise); a gap at either end takes the nearest value.
    """
    series = pd.Series(values, index=dates if isinstance(dates, pd.DatetimeIndex) else None)
    if fill == "interpolate":
        method = "time" if isinstance(series.index, pd.DatetimeIndex) else "linear"
        series = series.interpolate(method=method, limit_direction="both")
    else:
        series = series.ffill().bfill()
    return series.to_numpy(dtype=np.float64)


def _why_none(header: list[str], body: pd.DataFrame, covariates: tuple[str, ...]) -> str:
    """What a table without a value column holds instead: numeric columns taken as covariates,
    columns of empty cells only (an all-NaN column, as pandas writes it)."""
    taken = [name for name in covariates if name in header]
    empty = [
        name for index, name in enumerate(header) if name not in taken and (body.iloc[:, index] == "").all()
    ]
    notes = [f" besides the covariates {', '.join(map(repr, taken))}"] if taken else []
    notes += [f"; {name!r} has only empty cells" for name in empty]
    return "".join(notes)


def _time_column(
    header: list[str], body: pd.DataFrame, numeric: list[str], mostly_numeric: list[str]
) -> tuple[str | None, pd.DatetimeIndex | list[int] | None]:
    """The first column whose every cell is a date in one format, or a numeric time column
    (beside another column of numbers, which may have a gap or a stray word)."""
    for index, name in enumerate(header):
        if name in numeric:
            continue
        dates = parse_dates(body.iloc[:, index].tolist())
        if dates is not None:
            return name, dates
    first = header[0]
    if first in numeric and first.lower() in TIME_NAMES and len(mostly_numeric) > 1:
        text = body.iloc[:, 0].tolist()
        if all(len(cell) == 8 and cell.isdigit() for cell in text):  # compact dates, 19580329
            try:
                return first, pd.DatetimeIndex(pd.to_datetime(text, format="%Y%m%d"))
            except ValueError:
                pass  # eight-digit numbers that are not dates: a numeric time axis
        cells = [float(cell) for cell in text]
        if all(value.is_integer() for value in cells):
            return first, [int(value) for value in cells]
    return None, None


def _check_no_broken_dates(
    header: list[str], body: pd.DataFrame, mostly_numeric: list[str], lines: np.ndarray, path: Path
) -> None:
    """Refuses a column of dates that one cell breaks (a typo, an empty cell), which would
    otherwise leave the whole series without dates (`broken_date`)."""
    for index, name in enumerate(header):
        if name in mostly_numeric:
            continue
        cells = body.iloc[:, index].tolist()
        broken = broken_date(cells)
        if broken is not None:
            where = f"on line {lines[broken[0]]} of {path.name}"
            raise DataError("data", f"{_broken_text(name, cells, *broken)} {where}")


_DATE_EXAMPLES = 3  # the first non-empty cells a date format is guessed from


def broken_date(cells: list[Any]) -> tuple[int, str] | None:
    """`(position, example)` of the first cell that breaks a column of dates: one format, guessed
    from one of the first non-empty cells (`example`; the first may be the broken one) month first
    or day first, reads more than half of the cells but not this one. None for a column of other
    text, or of dates all read."""
    filled = (cell for cell in cells if isinstance(cell, str) and cell)
    examples = list(dict.fromkeys(itertools.islice(filled, _DATE_EXAMPLES)))
    texts = pd.Index([cell if isinstance(cell, str) else "" for cell in cells])
    best, example = None, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas's notes on the guessed order
        for candidate in examples:
            for dayfirst in (False, True):
                pattern = guess_datetime_format(candidate, dayfirst=dayfirst)
                if pattern is not None:
                    read = pd.to_datetime(texts, format=pattern, errors="coerce", utc=True)
                    if best is None or read.notna().sum() > best.notna().sum():
                        best, example = read, candidate
    if best is None or 2 * int(best.notna().sum()) <= len(cells) or not best.isna().any():
        return None
    return int(np.argmax(best.isna())), example


def _broken_text(name: str, cells: list[Any], position: int, example: str) -> str:
    cell = cells[position]
    got = repr(cell) if isinstance(cell, str) and cell else "an empty cell"
    return f"expected a date in column {name!r} like {example!r}, got {got}"


def parse_dates(cells: list[str]) -> pd.DatetimeIndex | None:
    """Parses every cell with one date format, guessed from the first cell (month first where
    the order is ambiguous, then day first); None when no format reads them all.

    Times with a UTC offset become naive UTC, so that they compare and plot alike.
    """
    if not cells or not all(cells):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas's notes on the guessed order
        for dayfirst in (False, True):
            pattern = guess_datetime_format(cells[0], dayfirst=dayfirst)
            if pattern is None:
                continue
            try:
                return pd.to_datetime(pd.Index(cells), format=pattern, utc=True).tz_localize(None)
            except (ValueError, TypeError, OverflowError):
                continue
    return None


def _check_increasing(dates: pd.DatetimeIndex | list[int], cells: list[str], lines: np.ndarray,
                      name: str, path: Path) -> None:  # fmt: skip
    order = np.asarray(dates.asi8 if isinstance(dates, pd.DatetimeIndex) else dates, dtype=np.int64)
    wrong = np.flatnonzero(np.diff(order) <= 0)
    if wrong.size:
        index = int(wrong[0]) + 1
        raise DataError(
            "data",
            f"expected increasing dates in column {name!r} of {path.name}, got {cells[index]!r} on line "
            f"{lines[index]} after {cells[index - 1]!r} on line {lines[index - 1]}",
        )


def future_dates(dates: pd.DatetimeIndex | list, count: int) -> list:
    """The `count` times after `dates`, continuing its frequency.

    Dates continue by the frequency pandas infers (monthly, quarterly, month ends, business
    days...), else by their median spacing; integer times (years) by their median step.
    """
    if len(dates) < 2:
        raise DataError("dates", f"expected at least 2 dates to continue, got {len(dates)}")
    if not isinstance(dates, pd.DatetimeIndex) and isinstance(dates[-1], numbers.Integral):
        step = int(np.median(np.diff(dates)))
        return [int(dates[-1]) + step * (k + 1) for k in range(count)]
    index = pd.DatetimeIndex(dates)
    return list(pd.date_range(index[-1], periods=count + 1, freq=frequency(index))[1:])


def time_text(time: Any) -> str:
    """A date without a midnight time, a datetime, or a position, as text."""
    if hasattr(time, "isoformat"):
        text = time.isoformat(sep=" ")
        return text[:10] if text.endswith("00:00:00") else text
    return str(time)


def frequency(index: pd.DatetimeIndex) -> pd.DateOffset | pd.Timedelta:
    """The frequency of `index`: the one pandas infers, else the median spacing."""
    if len(index) >= 3:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas 3 announces an offset instead of a string
            inferred = pd.infer_freq(index)
        if inferred is not None:
            return to_offset(inferred)
    return pd.Series(index).diff().median()
