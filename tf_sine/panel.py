"""Several series in one long table: one global model, each series scaled and scored on its own.

A long table has an id column (`Config.id_column`, ``--id store``), a time column, the value
column and any covariates; the rows of one id are one series, read and checked like a file of its
own (`tf_sine.series`), split in time by the same fractions, and scaled on its own training part
(its own `Transform`). The model trains on the windows of every series together: it learns what
the series share, in units each series' scaling makes alike. Scores are given per series and
over all of them (`pooled_metrics`); MASE, scaled by each series' own naive error, is the one
that compares across series of different sizes.

>>> panel = load_panel(Config(data="stores.csv", id_column="store"))  # doctest: +SKIP
>>> list(panel.datasets)                                              # doctest: +SKIP
['north', 'south']
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tf_sine.config import Config, ConfigError
from tf_sine.dataset import Dataset, Transform, load_dataset
from tf_sine.errors import DataError


@dataclasses.dataclass(frozen=True)
class Panel:
    """The series of a long table, each split in time (`load_panel`).

    Attributes:
        datasets: series id -> its `Dataset`, in the table's order of first appearance.
    """

    datasets: dict[str, Dataset]

    @property
    def levels(self) -> np.ndarray:
        """Every series' values one after another (what identifies the data, with `extras`)."""
        return np.concatenate([data.levels for data in self.datasets.values()])

    @property
    def extras(self) -> np.ndarray | None:
        parts = [data.extras for data in self.datasets.values() if data.extras is not None]
        return np.concatenate(parts) if parts else None

    @property
    def calendar(self) -> tuple[str, ...]:
        return next(iter(self.datasets.values())).calendar

    def windows(
        self, transforms: dict[str, Transform], part: str, timesteps: int, layout: str, horizon: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """Every series' windows of `part` (``"train"``, ``"val"`` or ``"test"``), each in its
        own transform's space, one series after another (`Dataset.windows`)."""
        cut = [data.windows(transforms[key], getattr(data, f"{part}_targets"), timesteps, layout, horizon)
               for key, data in self.datasets.items()]  # fmt: skip
        return np.concatenate([x for x, _ in cut]), np.concatenate([y for _, y in cut])

    def fit_transforms(self, config: Config) -> dict[str, Transform]:
        """Each series' `Transform`, fitted on its own training part."""
        return {key: Transform.for_config(data, config) for key, data in self.datasets.items()}


def read_panel(
    source: Any,
    id_column: str,
    column: str | None,
    fill: str,
    covariates: tuple[str, ...],
    only: str | None = None,
) -> dict[str, Any]:
    """The series of a long table: id -> `tf_sine.series.Series`, in order of first appearance.

    Args:
        source: a CSV path, or a pandas `DataFrame` (the id, time, value and covariate columns).
        id_column: the column naming each row's series.
        only: read this series alone (the others' rows are not parsed); refused in one line if
            the table has no such series.

    Raises:
        DataError: no such id column, no rows, or one series' rows are a bad series (the message
            names the series, and for a file the line).
        ConfigError: `only` names no series of the table.
    """
    from tf_sine.series import from_pandas, read_table, table_series

    series = {}
    if isinstance(source, pd.DataFrame):
        _check_id(id_column, [str(name) for name in source.columns], "the DataFrame")
        if source.empty:
            raise DataError("data", "expected rows of series in the DataFrame, got none")
        ids = source[id_column]
        if ids.isna().any():
            raise DataError(
                "id", f"expected a series id in every row, got a missing one at {ids.index[ids.isna()][0]}"
            )
        if ids.astype(str).nunique() != ids.nunique():
            raise DataError(
                "id", "expected ids that differ as text too, got some (such as 1 and '1') that do not"
            )
        groups = source.groupby(id_column, sort=False)
        if only is not None:
            pick({str(key): None for key in groups.groups}, only)
        for key, rows in groups:
            if only is not None and str(key) != only:
                continue
            with naming(key):
                series[str(key)] = from_pandas(rows.drop(columns=id_column), column, fill, covariates)
        return series
    path = Path(source)
    if not path.is_file():
        raise DataError("data", f"expected an existing .csv file, got {str(path)!r}")
    if path.suffix == ".npy":
        raise DataError("id", f"applies to CSV tables only, got {id_column!r} for {str(path)!r}")
    header, body, lines = read_table(path)
    _check_id(id_column, header, path.name)
    index = header.index(id_column)
    others = header[:index] + header[index + 1 :]
    empty = np.flatnonzero(body.iloc[:, index].to_numpy() == "")
    if empty.size:
        raise DataError("id", f"expected a series id in column {id_column!r}, got an empty cell on line "
                        f"{lines[empty[0]]} of {path.name}")  # fmt: skip
    groups = body.groupby(body.columns[index], sort=False)
    if only is not None:
        pick(dict.fromkeys(groups.groups), only)
    for key, rows in groups:
        if only is not None and key != only:
            continue
        cells = rows.drop(columns=body.columns[index]).reset_index(drop=True)
        cells.columns = range(len(others))
        with naming(key):
            series[key] = table_series(others, cells, lines[rows.index], path.name, str(path), column, fill,
                                       covariates)  # fmt: skip
    return series


def read_one(source: Any, config: Config) -> Any:
    """The series `config.series_id` of the long table `source` (a CSV path or a DataFrame),
    read as `config` says (`read_panel`), the other series' rows unparsed."""
    args = (config.id_column, config.column, config.fill, config.covariates, config.series_id)
    return pick(read_panel(source, *args), config.series_id)


def _check_id(id_column: str, names: list[str], where: str) -> None:
    if id_column not in names:
        raise DataError(
            "id", f"expected a column of {where} among {', '.join(map(repr, names))}, got {id_column!r}"
        )


@contextlib.contextmanager
def naming(key: Any) -> Iterator[None]:
    """Says which series a `DataError` or `ConfigError` raised inside is about."""
    try:
        yield
    except (DataError, ConfigError) as error:
        raise type(error)(error.argument, f"in series {str(key)!r}, {error.detail}") from None


def pick(series: dict[str, Any], key: str | None) -> Any:
    """The series `key` of a panel's `series` (id -> anything), refused in one line if absent."""
    if key not in series:
        shown = ", ".join(repr(name) for name in list(series)[:10]) + (", ..." if len(series) > 10 else "")
        got = "none" if key is None else repr(key)
        raise ConfigError(
            "series_id", f"expected one of the table's {len(series)} series ({shown}), got {got}"
        )
    return series[key]


def load_panel(config: Config, source: Any = None) -> Panel:
    """Every series of the long table `config.data` (or `source`: a long DataFrame, or id ->
    `tf_sine.series.Series` already read), split like `tf_sine.dataset.load_dataset` splits one.

    Raises:
        DataError: a bad table or series (named), or series whose calendar cycles differ.
    """
    series = source if isinstance(source, dict) else read_panel(
        source if source is not None else config.data, config.id_column, config.column, config.fill,
        config.covariates,
    )  # fmt: skip
    datasets = {}
    for key, one in series.items():
        with naming(key):
            datasets[key] = load_dataset(config, one)
    first, first_cycles = next((key, data.calendar) for key, data in datasets.items())
    for key, data in datasets.items():
        if data.calendar != first_cycles:
            shown = [",".join(cycles) or "none" for cycles in (first_cycles, data.calendar)]
            raise DataError(
                "calendar", f"expected the same cycles for every series, got {shown[0]} for series "
                f"{first!r} and {shown[1]} for series {key!r} (name the cycles to use)",
            )  # fmt: skip
    return Panel(datasets)


def score_panel(
    model: Any, panel: Panel, transforms: dict[str, Transform], period: int | None = None
) -> tuple[dict[str, Any], np.ndarray]:
    """`tf_sine.evaluation.score` for each series, and over all of them (`pooled_metrics`).

    Returns:
        `(metrics, predictions)`: the pooled scores with ``series`` (id -> that series' scores)
        and the one-step predictions of every test target, `(n, 1)`, series after series.
    """
    from tf_sine.dataset import season_of
    from tf_sine.evaluation import baseline_forecasts, score

    per, parts, predictions = {}, [], []
    for key, data in panel.datasets.items():
        season = season_of(data, period)
        metrics, predicted = score(model, data, transforms[key], season)
        targets = data.test_targets
        baselines = baseline_forecasts(data, targets - 1, 1, season)
        forecasts = {"model": predicted[:, 0], **{name: values[:, 0] for name, values in baselines.items()}}
        per[key] = metrics
        parts.append((data.levels[targets], forecasts, metrics["mase_scale"]))
        predictions.append(predicted)
    metrics = pooled_metrics(parts)
    metrics["series"] = per
    return metrics, np.concatenate(predictions)


def pooled_metrics(parts: list[tuple[np.ndarray, dict[str, np.ndarray], float | None]]) -> dict[str, Any]:
    """Scores over several series' targets together, in `score`'s layout.

    Args:
        parts: per series, `(truth (n,), {"model": (n,), <baseline>: (n,)}, mase scale)`.

    RMSE, MSE and MAE pool the errors in each series' units (a large series weighs more);
    MASE divides each error by its own series' scale first, so it compares alike across series
    (None where a series has no scale). Baselines are those every series has.
    """
    from tf_sine.evaluation import regression_metrics, scale_free_metrics

    names = [name for name in parts[0][1] if all(name in forecasts for _, forecasts, _ in parts)]
    truth = np.concatenate([part[0] for part in parts])
    scored = {}
    for name in names:
        forecast = np.concatenate([forecasts[name] for _, forecasts, _ in parts])
        scores: dict[str, Any] = regression_metrics(truth[:, None], forecast[:, None])
        scores.update(scale_free_metrics(truth, forecast, None))
        if all(scale for _, _, scale in parts):
            scaled = [np.abs(forecasts[name] - values) / scale for values, forecasts, scale in parts]
            scores["mase"] = float(np.mean(np.concatenate(scaled)))
        scored[name] = scores
    metrics = scored.pop("model")
    metrics["baselines"] = {name: scores["rmse"] for name, scores in scored.items()}
    metrics["baseline_metrics"] = {name: {key: value for key, value in scores.items() if key != "mse"}
                                   for name, scores in scored.items()}  # fmt: skip
    metrics["period"] = None
    return metrics


@dataclasses.dataclass(frozen=True)
class Forecasts:
    """A forecast of every series of a panel (`tf_sine.trained.Run.forecast`): id -> `Forecast`."""

    forecasts: dict[str, Any]
    id_column: str

    def to_frame(self) -> pd.DataFrame:
        """Every series' `Forecast.to_frame()`, one after another, with the id as a first column."""
        frames = [forecast.to_frame().reset_index().assign(**{self.id_column: key})
                  for key, forecast in self.forecasts.items()]  # fmt: skip
        frame = pd.concat(frames, ignore_index=True)
        return frame[[self.id_column, *[name for name in frame.columns if name != self.id_column]]]

    def csv_text(self) -> str:
        """``<id>,time,forecast,...``: `Forecast.csv_text` of every series, the id first."""
        return long_csv(
            {key: forecast.csv_text() for key, forecast in self.forecasts.items()}, self.id_column
        )

    def save(self, folder: str | Path) -> list[Path]:
        """Writes ``forecast.csv`` (every series) and ``forecast.png`` (a panel per series, the
        first `MAX_PLOTTED`), both or neither."""
        from tf_sine import plotting
        from tf_sine.owned import OwnedFolder, write_together
        from tf_sine.trained import FORECAST_CSV, FORECAST_PLOT

        shown = list(self.forecasts.values())[:MAX_PLOTTED]
        axes = plotting.grid_axes(len(shown))
        for forecast, ax in zip(shown, axes, strict=True):
            forecast.plot(ax=ax)
        text = self.csv_text()

        def build(staging: OwnedFolder) -> None:
            staging.write(FORECAST_CSV, lambda path: path.write_text(text, encoding="utf-8"))
            staging.write(FORECAST_PLOT, lambda path: plotting.save_figure(axes[0], path))

        written = write_together(folder, [FORECAST_CSV, FORECAST_PLOT], build)
        return [written.path / FORECAST_CSV, written.path / FORECAST_PLOT]


MAX_PLOTTED = 8  # series drawn in forecast.png; forecast.csv holds them all


@dataclasses.dataclass(frozen=True)
class LongTable:
    """Several series as one long table (a run's ``series.csv``; `read_panel` reads it back)."""

    series: dict[str, Any]
    id_column: str

    def csv_text(self) -> str:
        return long_csv({key: one.csv_text() for key, one in self.series.items()}, self.id_column)


def long_csv(tables: dict[str, str], id_column: str) -> str:
    """CSV tables of the same columns, one per series (id -> text), as one table whose first
    column is `id_column`."""
    rows = []
    for index, (key, text) in enumerate(tables.items()):
        lines = text.splitlines()
        if index == 0:
            rows.append(f"{id_column},{lines[0]}")
        rows += [f"{_cell(key)},{line}" for line in lines[1:]]
    return "\n".join(rows) + "\n"


def _cell(text: str) -> str:
    """`text` as one CSV cell (quoted where it holds a comma or a quote)."""
    return f'"{text.replace(chr(34), 2 * chr(34))}"' if any(c in text for c in ',"\n') else text
