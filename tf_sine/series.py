"""Reading a user's series from a file: CSV with a header row, or a NumPy ``.npy`` array.

A CSV file holds one value column and, optionally, a date/time column (kept for plots and
forecast dates) and other columns (ignored). The value column is `column`, or the only numeric
column besides the time column. Every problem is one `ConfigError` naming the argument, the
line and the value, so the CLI can print it as one line.

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

import csv
import datetime as dt
import itertools
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tf_sine.data import as_series
from tf_sine.errors import DataError
from tf_sine.files import atomic_write, given_path

# Tried in order after `datetime.fromisoformat`; a column is a date column when ONE format
# reads every one of its cells.
DATE_FORMATS = ("%Y-%m", "%Y/%m/%d", "%Y/%m", "%m/%d/%Y", "%d.%m.%Y", "%Y-%m-%d %H:%M", "%d/%m/%Y %H:%M")
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
    """

    values: np.ndarray
    dates: list | None
    name: str
    time_name: str | None
    path: str


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
    """Writes one number per line (9 significant digits), atomically.

    Raises:
        DataError: the folder of `path` is missing, or `path` is a directory.
    """
    path = check_output_path(path, argument)
    text = "".join(f"{value:.9g}\n" for value in values)
    return atomic_write(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def read_series_file(path: str | os.PathLike, column: str | None = None) -> Series:
    """Reads a series from a ``.npy`` file or a CSV file with a header row.

    Args:
        path: the file. ``.npy``: a 1-D array or one column `(N, 1)`. Anything else is read
            as CSV (comma, semicolon or tab separated, sniffed from the first lines).
        column: the CSV column holding the values; default the only numeric column that is
            not the time column.

    Returns:
        A `Series` in file order (dates must increase).

    Raises:
        ValueError: a missing or unreadable file, a missing column, text or an empty cell in
            the value column, dates that do not increase, or no numeric column.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("data", f"expected an existing .csv or .npy file, got {str(path)!r}")
    if path.suffix == ".npy":
        if column is not None:
            raise DataError("column", f"applies to CSV files only, got {column!r} for {str(path)!r}")
        return _read_npy(path)
    return _read_csv(path, column)


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


def _read_csv(path: Path, column: str | None) -> Series:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError("data", f"cannot read {str(path)!r} as UTF-8 text: {error}") from None
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = [(number, row) for number, row in enumerate(csv.reader(text.splitlines(), dialect), start=1)
            if any(cell.strip() for cell in row)]  # fmt: skip
    if len(rows) < 2:
        raise DataError("data", f"expected a header row and at least one row of values in {str(path)!r}")
    _, header = rows[0]
    header = [name.strip() for name in header]
    body = _drop_footer(rows[1:], len(header), path)
    columns = {
        name: [(number, row[index].strip()) for number, row in body] for index, name in enumerate(header)
    }
    numeric = [name for name in header if all(_is_number(cell) for _, cell in columns[name])]
    time_name, dates = _time_column(header, columns, numeric)
    # A value column with a stray word or an empty cell is still the value column: it is
    # chosen when most of its cells are numbers, and the bad cell is then reported.
    mostly_numeric = [name for name in header
                      if 2 * sum(_is_number(cell) for _, cell in columns[name]) > len(body)]  # fmt: skip
    if column is not None:
        if column not in columns:
            names = ", ".join(repr(name) for name in header)
            raise DataError("column", f"expected one of {names} (the columns of {path.name}), got {column!r}")
        value_name = column
    else:
        # An unnamed column (a saved DataFrame's index) is not a value column.
        candidates = [name for name in mostly_numeric
                      if name != time_name and name and not name.startswith("Unnamed")]  # fmt: skip
        if len(candidates) != 1:
            found = ", ".join(repr(name) for name in candidates) or "none"
            raise DataError(
                "column",
                f"expected the name of the value column of {path.name} (numeric columns: {found})",
            )
        value_name = candidates[0]
    if value_name == time_name:
        raise DataError("column", f"expected a value column, got the time column {value_name!r}")
    values = np.array([_number(cell, number, value_name, path) for number, cell in columns[value_name]])
    if dates is not None:
        _check_increasing(dates, columns[time_name], time_name, path)
    return Series(values, dates, value_name, time_name, str(path))


def _drop_footer(rows: list[tuple[int, list[str]]], width: int, path: Path) -> list[tuple[int, list[str]]]:
    # Some published CSV exports end with a one-cell description line; a short row in the
    # middle of the file is an error.
    while rows and len(rows[-1][1]) < width and sum(bool(cell.strip()) for cell in rows[-1][1]) <= 1:
        rows = rows[:-1]
    for number, row in rows:
        if len(row) != width:
            raise DataError(
                "data",
                f"expected {width} fields like the header on line {number} of {path.name}, got {len(row)}",
            )
    return rows


def _is_number(cell: str) -> bool:
    try:
        return math.isfinite(float(cell))
    except ValueError:
        return False


def _number(cell: str, line: int, name: str, path: Path) -> float:
    if not cell:
        raise DataError(
            "data", f"expected a number in column {name!r}, got an empty cell on line {line} of {path.name}"
        )
    try:
        value = float(cell)
    except ValueError:
        raise DataError(
            "data", f"expected numbers in column {name!r}, got {cell!r} on line {line} of {path.name}"
        ) from None
    if not math.isfinite(value):
        raise DataError(
            "data", f"expected finite numbers in column {name!r}, got {cell!r} on line {line} of {path.name}"
        )
    return value


def _time_column(header: list[str], columns: dict, numeric: list[str]) -> tuple[str | None, list | None]:
    """The first column whose every cell is a date in one format, or a numeric time column."""
    for name in header:
        if name in numeric:
            continue
        dates = parse_dates([cell for _, cell in columns[name]])
        if dates is not None:
            return name, dates
    first = header[0]
    if first in numeric and first.lower() in TIME_NAMES and len(numeric) > 1:
        cells = [float(cell) for _, cell in columns[first]]
        if all(value.is_integer() for value in cells):
            return first, [int(value) for value in cells]
    return None, None


def parse_dates(cells: list[str]) -> list[dt.datetime] | None:
    """Parses every cell with one date format; None when no format reads them all."""
    if not cells or not all(cells):
        return None
    try:
        parsed = [dt.datetime.fromisoformat(cell.replace("Z", "+00:00")) for cell in cells]
        # Aware times become naive UTC, so that they compare and plot alike.
        return [d if d.tzinfo is None else d.astimezone(dt.timezone.utc).replace(tzinfo=None) for d in parsed]
    except ValueError:
        pass
    for fmt in DATE_FORMATS:
        try:
            return [dt.datetime.strptime(cell, fmt) for cell in cells]
        except ValueError:
            continue
    return None


def _check_increasing(dates: list, cells: list[tuple[int, str]], name: str, path: Path) -> None:
    for index in range(1, len(dates)):
        if not dates[index] > dates[index - 1]:
            (line_before, before), (line, cell) = cells[index - 1], cells[index]
            raise DataError(
                "data",
                f"expected increasing dates in column {name!r} of {path.name}, "
                f"got {cell!r} on line {line} after {before!r} on line {line_before}",
            )


def future_dates(dates: list, count: int) -> list:
    """The `count` times after `dates`, continuing its spacing.

    Monthly (or quarterly, yearly) dates on one day of the month continue by calendar
    months; other dates by the median spacing; integer times (years) by their median step.
    """
    if len(dates) < 2:
        raise DataError("dates", f"expected at least 2 dates to continue, got {len(dates)}")
    last = dates[-1]
    if isinstance(last, int):
        step = int(np.median(np.diff(dates)))
        return [last + step * (k + 1) for k in range(count)]
    months = [d.year * 12 + d.month - 1 for d in dates]
    month_steps = set(np.diff(months).tolist())
    if len({d.day for d in dates}) == 1 and len(month_steps) == 1 and month_steps.pop() > 0:
        step = months[1] - months[0]
        return [_add_months(last, step * (k + 1)) for k in range(count)]
    spacing = dt.timedelta(
        seconds=float(np.median([(b - a).total_seconds() for a, b in itertools.pairwise(dates)]))
    )
    return [last + spacing * (k + 1) for k in range(count)]


def _add_months(date: dt.datetime, months: int) -> dt.datetime:
    index = date.year * 12 + date.month - 1 + months
    return date.replace(year=index // 12, month=index % 12 + 1)
