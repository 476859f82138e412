"""A trained run as a library object: `open_run(path) -> Run`, and what a user does with one.

Every command that uses a trained model (`evaluate`, `forecast`, `predict`, `export`) is one
call on a `Run`, so a Python user does what the CLI does with the same objects:

>>> run = open_run("runs/RUN")                        # doctest: +SKIP
>>> run.evaluate(horizon=6)["rmse_by_horizon"]        # doctest: +SKIP
>>> forecast = run.forecast(12)                       # doctest: +SKIP
>>> forecast.save("out")                              # forecast.csv, forecast.png  # doctest: +SKIP

Outputs are in the series' own units: the run's scaling and differencing (``scaling.json``)
are undone, whichever file of the run was named.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tf_sine.checkpoints import checkpoint_step
from tf_sine.config import Config, check_positive_int
from tf_sine.data import as_series, layout_of
from tf_sine.dataset import PANDAS_SOURCE, Dataset, Transform, first_target, load_dataset, season_of
from tf_sine.errors import ConfigError, DataError, ModelError, RunError
from tf_sine.files import atomic_write, first_line, given_path, load_keras
from tf_sine.owned import OwnedFolder, write_together
from tf_sine.runs import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    MODEL_FILE,
    SCALING_FILE,
    RunDirectory,
)
from tf_sine.series import Series, time_text

if TYPE_CHECKING:
    from tf_sine.panel import Forecasts

FORECAST_CSV = "forecast.csv"
EVALUATION_FILE = "evaluation.json"
FORECAST_PLOT = "forecast.png"


@dataclasses.dataclass(frozen=True)
class Run:
    """A trained model with what it was trained with (`open_run`).

    Attributes:
        model: the Keras model.
        model_path: the ``.keras`` file it was loaded from.
        config: the run's `Config`; for a bare ``.keras`` file, the defaults with the model's
            window (`timesteps`, `layout`), so it is scored on the source's sine unless
            `with_series` names another.
        transform: the differencing and scaling the model sees its series through; the
            identity for a bare file.
        directory: the run directory, or None for a bare file.
        series: a series given as a pandas object (`with_series`), used instead of
            `config.data`; None to read `config.data`. For several series: id -> series.
        transforms: for a model of several series (`config.id_column`, `tf_sine.panel`),
            id -> each series' transform; `select` gives the run of one of them.
    """

    model: Any
    model_path: Path
    config: Config
    transform: Transform
    directory: RunDirectory | None
    series: Series | dict[str, Series] | None = None
    transforms: dict[str, Transform] | None = None

    @functools.cached_property
    def dataset(self) -> Dataset:
        """The series the run is scored and forecast on, split as `config` says."""
        self.require_one_series("dataset")
        data = load_dataset(self.config, self.series)
        _check_float32_range("data", data, self.transform)  # another series may hold larger values
        return data

    @functools.cached_property
    def panel(self) -> Any:
        """For a model of several series: each of them split (`tf_sine.panel.Panel`)."""
        from tf_sine.panel import load_panel, naming

        panel = load_panel(self.config, self.series)
        if self.transforms is not None and set(panel.datasets) != set(self.transforms):
            unknown = sorted(set(panel.datasets) ^ set(self.transforms))
            trained = ", ".join(map(repr, self.transforms))
            raise DataError(
                "data", f"expected the series the model was trained on ({trained}), got a table that "
                f"differs in {', '.join(map(repr, unknown))}",
            )  # fmt: skip
        if self.transforms is not None:
            for key, data in panel.datasets.items():
                with naming(key):
                    _check_float32_range("data", data, self.transforms[key])
        return panel

    @property
    def ids(self) -> list[str]:
        """The ids of a model's several series (empty for a model of one)."""
        return [] if self.transforms is None else list(self.transforms)

    def select(self, series_id: str) -> Run:
        """The run of one of a model's several series: its transform, series and scores.

        Raises:
            ConfigError: the model is of one series, or has no series `series_id`.
        """
        from tf_sine.panel import pick

        if self.transforms is None:
            raise ConfigError(
                "series_id",
                f"applies to a model of several series (trained with `id_column`), got {series_id!r}",
            )
        transform = pick(self.transforms, series_id)
        series = pick(self.series, series_id) if isinstance(self.series, dict) else None
        config = self.config.replace(series_id=series_id, difference=transform.difference)
        selected = dataclasses.replace(
            self, config=config, transform=transform, series=series, transforms=None
        )
        selected.__dict__["dataset"] = self.panel.datasets[series_id]  # read once for every series
        return selected

    def require_one_series(self, what: str) -> None:
        """Refuses a model of several series (`series_id` must name one) for `what`."""
        if self.transforms is not None:
            count = len(self.transforms)
            raise ConfigError(
                "series_id", f"expected one of this model's {count} series for {what}, got none"
            )

    @functools.cached_property
    def period(self) -> int | None:
        """The season of the seasonal-naive baseline: the configured one, else detected."""
        return season_of(self.dataset, self.config.period)

    def with_series(
        self,
        data: str | os.PathLike | pd.Series | pd.DataFrame | None = None,
        column: str | None = None,
        split: tuple[float, float, float] | None = None,
        period: int | None = None,
        fill: str | None = None,
    ) -> Run:
        """The same model and transform on another series, split, season or gap filling (None:
        unchanged).

        Args:
            data: a series file, or a pandas `Series`/`DataFrame` (`tf_sine.series.from_pandas`;
                a `DatetimeIndex` gives the dates).

        Raises:
            ConfigError: a bad `split` or `period` (the checks of `Config`), or a `split` of the
                run's own series, whose other test part would hold values the model trained on.
            DataError: a pandas object that is not a series of numbers in time order.
        """
        if split is not None and data is None:
            shown = (
                ",".join(f"{part:g}" for part in split) if isinstance(split, (tuple, list)) else repr(split)
            )
            raise ConfigError(
                "split", "applies to another series (`data`): on the run's own series another split would "
                f"test on values the model trained on, got {shown}",
            )  # fmt: skip
        changes: dict[str, Any] = {"column": column, "split": split, "period": period, "fill": fill}
        series = self.series
        if isinstance(data, pd.DataFrame) and self.config.id_column is not None:  # a long table
            from tf_sine.panel import read_panel

            series = read_panel(data, self.config.id_column, column, fill or "none", self.config.covariates)
            changes.update(data=PANDAS_SOURCE, column=None, fill=None)
        elif isinstance(data, (pd.Series, pd.DataFrame)):
            from tf_sine.series import from_pandas

            series = from_pandas(data, column, fill or "none", self.config.covariates)
            changes.update(data=PANDAS_SOURCE, column=None, fill=None)
        elif data is not None:
            changes["data"], series = str(Path(data).resolve()), None
        changes = {name: value for name, value in changes.items() if value is not None}
        if not changes:
            return self
        return dataclasses.replace(self, config=self.config.replace(**changes), series=series)

    def evaluate(
        self, horizon: int | None = None, out: str | os.PathLike | None = None, interval: float | None = None
    ) -> dict[str, Any]:
        """One-step scores on the test part beside the baselines', and by horizon 1..`horizon`.

        Reads only, unless `out` is given: the run's ``metrics.json`` is training's record and
        is left as it is, so a run on read-only storage can be evaluated.

        Args:
            horizon: also score rolled-out forecasts 1..`horizon` steps ahead.
            out: a folder to write the scores to, as ``evaluation.json``.
            interval: also calibrate split-conformal intervals of this coverage level on the
                validation part and measure their coverage on the test part, by horizon
                1..`horizon` (1 without a horizon).

        Returns:
            `tf_sine.evaluation.score`'s metrics, with `horizon_scores`' entries when `horizon`
            is given and `interval_coverage`'s under ``"interval"`` when `interval` is.
        """
        from tf_sine.evaluation import horizon_scores, interval_coverage, score

        if horizon is not None:
            check_positive_int("horizon", horizon)
        if self.transforms is not None:  # several series: each, and all together
            from tf_sine.panel import naming, score_panel

            metrics, _ = score_panel(self.model, self.panel, self.transforms, self.config.period)
            if horizon is not None or interval is not None:
                metrics["series"] = {}
                for key in self.ids:
                    with naming(key):
                        metrics["series"][key] = self.select(key).evaluate(horizon, interval=interval)
            if out is not None:
                write_together(
                    out, [EVALUATION_FILE], lambda staging: staging.write_json(EVALUATION_FILE, metrics)
                )
            return metrics
        metrics, _ = score(self.model, self.dataset, self.transform, self.period)
        if horizon is not None:
            metrics.update(horizon_scores(self.model, self.dataset, self.transform, horizon, self.period))
        if interval is not None:
            metrics["interval"] = interval_coverage(self.model, self.dataset, self.transform, horizon or 1,
                                                    interval)  # fmt: skip
        if out is not None:
            write_together(
                out, [EVALUATION_FILE], lambda staging: staging.write_json(EVALUATION_FILE, metrics)
            )
        return metrics

    def horizon_scores(
        self, horizon: int, on_step: Callable[[int, int], None] | None = None
    ) -> dict[str, Any]:
        """`tf_sine.evaluation.horizon_scores` up to `horizon`, or up to the longest horizon the
        test part allows (what `forecast` prints beside a forecast).

        `on_step(done, total)` sees the rollout's progress.
        """
        from tf_sine import evaluation

        self.require_one_series("scores by horizon")
        longest = evaluation.max_horizon(self.model, self.dataset, self.transform)
        shortened = min(check_positive_int("horizon", horizon), longest)
        return evaluation.horizon_scores(
            self.model, self.dataset, self.transform, shortened, self.period, on_step
        )

    def predict(self, values: Any) -> np.ndarray:
        """The next value after each full window of `values`, in their units.

        Args:
            values: a 1-D series, at least one window long (`timesteps`, one more when the
                run differences).

        Returns:
            float64 array `(len(values) - first + 1,)`: entry `i` follows `values[: first + i]`,
            the last one the value after the end. A direct model's (`K` outputs): `(n, K)`, row
            `i` the `K` values after `values[: first + i]`.
        """
        from tf_sine.evaluation import direct_forecasts, outputs_of, predict_levels

        self.require_one_series("predict")
        if self.transform.extra_offsets:
            reads = ", ".join(self.dataset.extra_names)
            raise DataError(
                "values", f"expected a model of the values alone, got one that also reads {reads} at each "
                "step; use forecast, or the export's next_value signature",
            )  # fmt: skip
        series = as_series(values, "values").astype(np.float64)
        first = first_target(self.config.timesteps, self.transform.difference)
        if len(series) < first:
            raise DataError("values", f"expected at least {first} values for one window, got {len(series)}")
        empty = np.arange(0)
        data = Dataset(series, empty, empty, empty, len(series))
        _check_float32_range("values", data, self.transform)
        if outputs_of(self.model) > 1:
            return direct_forecasts(self.model, data, self.transform, np.arange(first - 1, len(series)))
        return predict_levels(self.model, data, self.transform, np.arange(first, len(series) + 1))

    def forecast(
        self,
        horizon: int,
        origin: int | str = "end",
        on_step: Callable[[int, int], None] | None = None,
        interval: float | None = None,
    ) -> Forecast | Forecasts:
        """Continues the series `horizon` steps after `origin`: in one pass where the model
        predicts `horizon` values or more at once (direct), else feeding predictions back.

        Args:
            horizon: steps to forecast, at most the series' length (a rollout feeds on its own
                predictions; further than the history it learned from, it is extrapolation).
            origin: the last known value: ``"end"`` (the series' last), ``"test"`` (just before
                the test part, so the truth is known), or a 0-based position.
            on_step: called as `on_step(done, horizon)` after each step (progress).
            interval: a coverage level such as 0.9: split-conformal intervals by horizon,
                calibrated on the validation part (`tf_sine.evaluation.conformal_widths`).

        Returns:
            A `Forecast` with the baselines' forecasts, the truth where it is known and the
            interval's bounds when asked.
        """
        from tf_sine.evaluation import baseline_forecasts, conformal_widths, forecast_method, rollout

        horizon = check_positive_int("horizon", horizon)
        if self.transforms is not None:  # several series: each of them
            from tf_sine.panel import Forecasts, naming

            forecasts = {}
            for key in self.ids:
                with naming(key):
                    forecasts[key] = self.select(key).forecast(horizon, origin, on_step, interval)
            return Forecasts(forecasts, self.config.id_column)
        data = self.dataset
        if horizon > len(data.levels):
            raise ConfigError(
                "horizon", f"expected at most {len(data.levels)} steps (the series' length), got {horizon}"
            )
        position = self._origin(origin)
        data.check_extras(position + horizon)  # the covariates must reach that far
        widths = None
        if interval is not None:  # refused before the rollout when it cannot be calibrated
            widths = conformal_widths(self.model, data, self.transform, horizon, interval)
        at = np.array([position])
        values = rollout(self.model, data, self.transform, at, horizon, on_step, direct=True)[0]
        baselines = {name: v[0] for name, v in baseline_forecasts(data, at, horizon, self.period).items()}
        shown = max(4 * horizon, 3 * data.test_targets.size // 2, 50)  # history drawn before it
        history = range(max(position + 1 - shown, 0), position + 1)
        return Forecast(
            name=data.name,
            origin=position,
            times=self._times(range(position, position + horizon + 1)),
            values=values,
            baselines=baselines,
            truth=_truth(data, position + 1, horizon),
            history_times=self._times(history),
            history=data.levels[history.start : history.stop],
            period=self.period,
            method=forecast_method(self.model, horizon),
            level=interval,
            lower=None if widths is None else values - widths,
            upper=None if widths is None else values + widths,
        )

    def export(self, out: str | os.PathLike, overwrite: bool = False) -> dict[str, Any]:
        """`tf_sine.export.export_model` with the run's transform (``next_value`` in its units)."""
        from tf_sine.export import export_model

        self.require_one_series("export (each has its own scaling)")
        names = self.dataset.extra_names if self.transform.extra_offsets else ()
        return export_model(self.model, out, self.transform, overwrite=overwrite, feature_names=names,
                            series_id=self.config.series_id)  # fmt: skip

    def _origin(self, origin: int | str) -> int:
        data = self.dataset
        if origin == "end":
            return len(data.levels) - 1
        if origin == "test":
            return int(data.test_targets[0]) - 1
        try:
            position = int(origin)
        except (TypeError, ValueError):
            raise ConfigError("origin", f"expected 'end', 'test' or a position, got {origin!r}") from None
        first = first_target(self.config.timesteps, self.transform.difference) - 1  # the first window's end
        if not first <= position < len(data.levels):
            raise ConfigError(
                "origin", f"expected a position from {first} to {len(data.levels) - 1}, got {position}"
            )
        return position

    def _times(self, positions: range) -> list:
        """The dates (or positions) of `positions`, continuing the dates past the end."""
        return self.dataset.times(positions)


@dataclasses.dataclass(frozen=True)
class Forecast:
    """A forecast of `horizon` steps after `origin` (`Run.forecast`), in the series' units.

    Attributes:
        name: what the values are.
        origin: the position of the last known value.
        times: the time of the origin, then of each forecast step: `horizon + 1` dates, or
            positions for a series without dates.
        values: the model's forecast, float64 `(horizon,)`.
        baselines: name -> the baseline's forecast, `(horizon,)` each.
        truth: the known values after the origin, `(k,)` with `k <= horizon`; NaN where
            the series' gap was filled (not truth).
        history_times, history: the stretch of the series drawn before the forecast.
        period: the season of the seasonal-naive baseline, or None.
        method: ``"recursive"`` (each prediction fed back) or ``"direct"`` (a model that
            predicts `horizon` values at once).
        level: the prediction interval's coverage level, or None without an interval.
        lower, upper: the interval's bounds, `(horizon,)` each, or None.
    """

    name: str
    origin: int
    times: list
    values: np.ndarray
    baselines: dict[str, np.ndarray]
    truth: np.ndarray
    history_times: list
    history: np.ndarray
    period: int | None
    method: str = "recursive"
    level: float | None = None
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None

    @property
    def horizon(self) -> int:
        return len(self.values)

    @property
    def known(self) -> int:
        """How many of the forecast steps have a true value (filled gaps are not truth)."""
        return int(np.sum(~np.isnan(self.truth)))

    def labels(self) -> list[str]:
        """`times` as text: dates without a midnight time, positions as numbers."""
        return [time_text(time) for time in self.times]

    def errors(self) -> dict[str, float]:
        """RMSE against the known truth: ``model`` and each baseline (empty without truth)."""
        from tf_sine.evaluation import rmse

        known = ~np.isnan(self.truth)
        if not known.any():
            return {}
        forecasts = {"model": self.values, **self.baselines}
        steps = len(self.truth)
        return {name: rmse(values[:steps][known], self.truth[known]) for name, values in forecasts.items()}

    def to_frame(self) -> pd.DataFrame:
        """The forecast as a DataFrame indexed by time (a `DatetimeIndex` where the series has
        dates): ``forecast``, ``lower``/``upper`` with an interval, each baseline, and ``truth``
        (NaN where unknown)."""
        times = self.times[1:]
        index = pd.DatetimeIndex(times) if times and hasattr(times[0], "isoformat") else pd.Index(times)
        return pd.DataFrame(self._columns(), index=index.rename("time"))

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Writes `csv_text()` to `path`, atomically."""
        text = self.csv_text()
        return atomic_write(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))

    def csv_text(self) -> str:
        """The forecast as CSV: `time`, then `to_frame`'s columns (`truth` empty where unknown; a
        diverged model's NaN stays ``nan``)."""
        columns = self._columns()
        truth = columns.pop("truth")
        table = io.StringIO()
        writer = csv.writer(table, lineterminator="\n")
        writer.writerow(["time", *columns, "truth"])
        for h, time in enumerate(self.labels()[1:]):
            known = "" if np.isnan(truth[h]) else f"{truth[h]:.9g}"
            writer.writerow([time, *(f"{values[h]:.9g}" for values in columns.values()), known])
        return table.getvalue()

    def _columns(self) -> dict[str, np.ndarray]:
        """`forecast`, `lower` and `upper` with an interval, each baseline, and `truth` (NaN where
        unknown), each `(horizon,)`."""
        columns = {"forecast": self.values}
        if self.lower is not None:
            columns.update(lower=self.lower, upper=self.upper)
        columns.update(self.baselines)
        columns["truth"] = np.concatenate([self.truth, np.full(self.horizon - len(self.truth), np.nan)])
        return columns

    def plot(self, ax: Any = None) -> Any:
        """The end of the history, the forecast and the known truth (`tf_sine.plotting`)."""
        from tf_sine import plotting

        title = f"{self.name}: {self.horizon} steps after {self.labels()[0]}"
        band = None if self.lower is None else (self.lower, self.upper, self.level)
        return plotting.plot_forecast(self.history_times, self.history, self.times[1:], self.values,
                                      self.truth, ax=ax, title=title, band=band)  # fmt: skip

    def save(self, folder: str | os.PathLike) -> list[Path]:
        """Writes ``forecast.csv`` and ``forecast.png`` into `folder` (created if missing), both or neither.

        Other files in `folder` stay; an earlier forecast of tf_sine's is replaced.

        Raises:
            RunError: `folder` is a file, cannot be written, is being written by another
                process, or holds a ``forecast.csv``/``forecast.png`` tf_sine did not write.
        """
        from tf_sine import plotting

        ax = self.plot()
        text = self.csv_text()

        def build(staging: OwnedFolder) -> None:
            staging.write(FORECAST_CSV, lambda path: path.write_text(text, encoding="utf-8"))
            staging.write(FORECAST_PLOT, lambda path: plotting.save_figure(ax, path))

        written = write_together(folder, [FORECAST_CSV, FORECAST_PLOT], build)
        return [written.path / FORECAST_CSV, written.path / FORECAST_PLOT]


def _truth(data: Dataset, start: int, horizon: int) -> np.ndarray:
    """The known values from `start` on, at most `horizon`; NaN where a gap was filled."""
    truth = data.levels[start : start + horizon].copy()
    if data.filled is not None:
        truth[data.filled[start : start + horizon]] = np.nan
    return truth


def untrained_run(config: Config) -> Run:
    """`config` on its series, with no model yet: what a refitting backtest trains at each origin
    (`tf_sine.backtest.backtest(..., refit=True)`)."""
    data = load_dataset(config)
    return Run(None, None, config, Transform.for_config(data, config), None)


def _check_float32_range(argument: str, data: Dataset, transform: Transform) -> None:
    """Refuses values, or inputs beside them, that the model, which reads float32, would see as
    infinite once scaled as the run scales its series (they would come back as NaN predictions
    and NaN scores).

    Raises:
        DataError: naming `argument`, the first such value and where it is.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        parts = [("", data.levels[:, None], np.abs(transform.encode(data.levels))[:, None])]
        if data.extras is not None:
            parts.append((" in ", data.extras, np.abs(transform.encode_extras(data.extras))))
    for where, values, scaled in parts:
        beyond = np.argwhere(scaled > np.finfo(np.float32).max)
        if len(beyond):
            row, column = (int(i) for i in beyond[0])
            named = f"{where}{data.extra_names[column]}" if where else ""
            raise DataError(
                argument, f"expected values within float32's range once scaled as the run scales its series "
                f"(about ±3.4e38), got {values[row, column]:.6g}{named} at index {row}, which scales to "
                f"{scaled[row, column]:.3g}",
            )  # fmt: skip


def open_run(path: str | os.PathLike) -> Run:
    """Opens a trained model with its configuration and transform.

    Args:
        path: a run directory, any file inside one (``model.keras``, ``metrics.json``, a
            checkpoint: the checkpoint's model with the run's configuration), or a bare
            ``.keras`` file.

    Raises:
        ModelError: the path is missing, is a directory without ``model.keras``, is not a
            ``.keras`` file nor a file of a run, or the model cannot be loaded.
        RunError: the run's ``config.json`` or ``scaling.json`` cannot be read.
    """
    model_path, directory = _locate(given_path(path, "model", "a .keras file or a run directory", ModelError))
    if directory is None:
        model = load_keras(model_path)
        timesteps, layout = layout_of(model.input_shape)
        return Run(model, model_path, Config(timesteps=timesteps, layout=layout), Transform(), None)
    with directory.files.reading():  # a run being written is refused, never read half-made
        model = load_keras(model_path)
        try:
            config, transform = directory.load_config(), directory.load_transform()
        except (OSError, ValueError, TypeError, KeyError) as error:  # damaged or edited by hand
            raise RunError(
                "model", f"the run {str(directory.path)!r} has an unreadable {CONFIG_FILE} or "
                f"{SCALING_FILE}: {first_line(error)}",
            ) from None  # fmt: skip
        # A series given in memory was kept beside the model (`run_experiment(series=...)`).
        series = directory.load_series(config) if config.data == PANDAS_SOURCE else None
    # The windows follow the transform the model was trained with, whatever series comes next.
    if isinstance(transform, dict):  # several series, each with its own transform
        return Run(model, model_path, config, Transform(), directory, series, transform)
    config = config.replace(difference=transform.difference)
    return Run(model, model_path, config, transform, directory, series)


def load_model(path: str | os.PathLike) -> tuple[Any, Config | None]:
    """`open_run(path)`'s model and the run's configuration (None for a bare ``.keras`` file)."""
    run = open_run(path)
    return run.model, run.config if run.directory is not None else None


def _locate(path: Path) -> tuple[Path, RunDirectory | None]:
    """The model file `path` names and the run directory it belongs to (None for a bare file)."""
    if path.is_dir():
        if not (path / MODEL_FILE).is_file():
            with OwnedFolder(path, "model").reading():
                pass  # a run still being trained is named as such
            raise ModelError(
                "model",
                f"expected a .keras file or a run directory holding {MODEL_FILE}, "
                f"got the directory {str(path)!r} without it",
            )
        return path / MODEL_FILE, _run_of(path)
    if not path.exists():
        raise ModelError("model", f"expected an existing .keras file or run directory, got {str(path)!r}")
    # A file of a run: in the run directory itself, or one of its checkpoints.
    in_checkpoints = path.parent.name == CHECKPOINT_DIR and checkpoint_step(path) is not None
    directory = _run_of(path.parent.parent if in_checkpoints else path.parent)
    if path.suffix == ".keras" and (path.name == MODEL_FILE or in_checkpoints):
        return path, directory
    if path.suffix == ".keras":
        return path, None  # a stray .keras file: the run's config.json does not describe it
    if directory is not None:
        return directory.model_path, directory
    raise ModelError("model", f"expected a .keras file or a file of a run directory, got {str(path)!r}")


def _run_of(folder: Path) -> RunDirectory | None:
    """`folder` as a run directory if it holds a model and its configuration."""
    found = (folder / MODEL_FILE).is_file() and (folder / CONFIG_FILE).is_file()
    return RunDirectory(folder) if found else None
