"""Rolling-origin backtests: forecasts from several origins across the test part, scored per fold.

Fold `k` forecasts the `horizon` values after origin `o_k = test[0] - 1 + k * horizon`: the
folds tile the start of the test part without overlap. Without `refit` the run's own model
forecasts every fold (it never saw the test part). With `refit` each fold trains a new model of
the run's configuration on the history up to its origin alone (split as the run split its
series), in a run directory of its own under `work`: an interrupted backtest run again resumes
the unfinished fold from its checkpoint and reopens the finished ones.

>>> result = backtest(open_run("runs/sales"), folds=4, horizon=6)  # doctest: +SKIP
>>> result.to_frame()                                              # doctest: +SKIP
>>> result.save("out")  # backtest.csv, backtest.png                # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tf_sine.config import ConfigError, check_positive_int
from tf_sine.dataset import Dataset
from tf_sine.errors import RunError
from tf_sine.evaluation import baseline_forecasts, mase_scale, rmse, rollout, scale_free_metrics
from tf_sine.files import atomic_write
from tf_sine.series import Series, time_text

BACKTEST_CSV = "backtest.csv"
BACKTEST_PLOT = "backtest.png"


@dataclasses.dataclass(frozen=True)
class Backtest:
    """Scores of a rolling-origin backtest (`backtest`), in the series' units.

    Attributes:
        horizon: the steps forecast after each origin.
        refit: whether each fold trained its own model.
        folds: one row per fold: ``fold``, ``origin`` (position), ``time`` (of the origin),
            then ``<name>_<metric>`` for the model and each baseline (``rmse``, ``mae``,
            ``mase``, ``smape``).
        overall: name -> the metrics over every fold's values together.
    """

    horizon: int
    refit: bool
    folds: list[dict[str, Any]]
    overall: dict[str, dict[str, Any]]

    def to_frame(self) -> pd.DataFrame:
        """The folds, then an ``all`` row with the overall scores, as a DataFrame. ``origin`` is a
        nullable integer column (``<NA>`` in the ``all`` row), so positions stay integers."""
        overall = {f"{name}_{metric}": value for name, scores in self.overall.items()
                   for metric, value in scores.items()}  # fmt: skip
        frame = pd.DataFrame([*self.folds, {"fold": "all", **overall}])
        return frame.astype({"origin": "Int64"})

    def save(self, folder: str | os.PathLike) -> list[Path]:
        """Writes ``backtest.csv`` and ``backtest.png`` into `folder`, both or neither."""
        from tf_sine import plotting
        from tf_sine.owned import OwnedFolder, write_together

        text = self.to_frame().to_csv(index=False, float_format="%.9g", lineterminator="\n")
        rmse = {name: [fold[f"{name}_rmse"] for fold in self.folds] for name in self.overall}
        ax = plotting.plot_backtest([fold["fold"] for fold in self.folds], rmse)

        def build(staging: OwnedFolder) -> None:
            staging.write(BACKTEST_CSV, lambda path: path.write_text(text, encoding="utf-8"))
            staging.write(BACKTEST_PLOT, lambda path: plotting.save_figure(ax, path))

        written = write_together(folder, [BACKTEST_CSV, BACKTEST_PLOT], build)
        return [written.path / BACKTEST_CSV, written.path / BACKTEST_PLOT]


def backtest(
    run: Any,
    folds: int,
    horizon: int,
    refit: bool = False,
    work: str | os.PathLike | None = None,
    on_fold: Callable[[int, int], None] | None = None,
    notify: Callable[[str], None] | None = None,
) -> Backtest:
    """Forecasts `horizon` steps from `folds` origins across the test part and scores each.

    Args:
        run: a `tf_sine.trained.Run` (its model, configuration, transform and series).
        folds: how many origins; `folds * horizon` values of the test part are forecast.
        horizon: steps forecast after each origin.
        refit: train a new model for each fold on the history up to its origin (needs `work`).
        work: the folder for the refitted folds' run directories and histories.
        on_fold: called as `on_fold(done, folds)` after each fold (progress).
        notify: receives the refits' notes (a fold resumed, a range warning).

    Raises:
        ConfigError: `folds` or `horizon` is not a positive integer, their product passes the
            test part's length, or `refit` is asked without `work` or on the source's sine.
        RunError: `work` is empty, a file or cannot be written, or holds a fold's history file
            with other contents (another series).
    """
    check_positive_int("folds", folds)
    check_positive_int("horizon", horizon)
    run.require_one_series("a backtest")
    data = run.dataset
    test = data.test_targets
    room = len(data.levels) - int(test[0])
    if folds * horizon > room:
        raise ConfigError(
            "folds", f"expected at most {room // horizon} folds of {horizon} steps in the test part's "
            f"{room} values, got {folds}",
        )  # fmt: skip
    if refit and work is None:
        raise ConfigError("work", "expected a folder for the refitted folds' runs, got None")
    if refit and run.config.data is None:
        raise ConfigError("refit", "applies to a series of your own (`data`), not the source's sine")
    if refit:
        from tf_sine.owned import check_writable_folder

        check_writable_folder(work, "work", keep=True)  # "" or a file refused before any fold trains
    origins = int(test[0]) - 1 + horizon * np.arange(folds)
    scale = mase_scale(data, run.period)
    rows, pooled = [], {}
    for k, origin in enumerate(origins):
        model_run = _refitted(run, data, int(origin), k, Path(work), notify) if refit else run
        truth, forecasts = _fold(run, model_run, data, int(origin), horizon)
        row: dict[str, Any] = {"fold": k + 1, "origin": int(origin), "time": _time(data, int(origin))}
        for name, values in forecasts.items():
            scores = _scores(truth, values, scale)
            row.update({f"{name}_{metric}": value for metric, value in scores.items()})
            pooled.setdefault(name, []).append((truth, values))
        rows.append(row)
        if on_fold is not None:
            on_fold(k + 1, folds)
    overall = {name: _scores(*map(np.concatenate, zip(*pairs, strict=True)), scale)
               for name, pairs in pooled.items()}  # fmt: skip
    return Backtest(horizon, refit, rows, overall)


def _fold(run: Any, model_run: Any, data: Dataset, origin: int, horizon: int) -> tuple[np.ndarray, dict]:
    """The known values after `origin` (filled ones left out) and each forecast of them."""
    at = np.array([origin])
    model = rollout(model_run.model, data, model_run.transform, at, horizon, direct=True)[0]
    baselines = baseline_forecasts(data, at, horizon, run.period)
    forecasts = {"model": model, **{name: values[0] for name, values in baselines.items()}}
    after = slice(origin + 1, origin + 1 + horizon)
    known = np.ones(horizon, bool) if data.filled is None else ~data.filled[after]
    return data.levels[after][known], {name: values[known] for name, values in forecasts.items()}


def _scores(truth: np.ndarray, forecast: np.ndarray, scale: float | None) -> dict[str, Any]:
    free = scale_free_metrics(truth, forecast, scale)
    mae = float(np.mean(np.abs(forecast - truth)))
    return {"rmse": rmse(forecast, truth), "mae": mae, "mase": free["mase"], "smape": free["smape"]}


def _time(data: Dataset, position: int) -> Any:
    return time_text(data.dates[position]) if data.dates is not None else position


def _refitted(
    run: Any, data: Dataset, origin: int, fold: int, work: Path, notify: Callable[[str], None] | None
) -> Any:
    """The run of fold `fold`: the run's configuration trained on `levels[: origin + 1]` in
    ``work/fold-<k>`` (resumed if unfinished, reopened if finished)."""
    from tf_sine.pipeline import run_experiment
    from tf_sine.trained import open_run

    history = work / f"fold-{fold + 1}.csv"
    dates = data.dates[: origin + 1] if data.dates is not None else None
    covariates = run.config.covariates  # the first of the extra inputs, in their own units
    # Filled values stay gaps in the history, filled again by the run's `fill` when the fold reads it.
    filled = None if data.filled is None else data.filled[: origin + 1]
    fill = run.config.fill or "none"
    series = Series(data.levels[: origin + 1], dates, data.name, None, str(history), filled, fill)
    if covariates:
        future = None if dates is None else []
        series = dataclasses.replace(series, covariates=data.extras[: origin + 1, : len(covariates)],
                                     covariate_names=covariates, future_dates=future)  # fmt: skip
    text = series.csv_text()
    if not history.exists():
        atomic_write(history, lambda temporary: temporary.write_text(text, encoding="utf-8"))
    elif not history.is_file() or history.read_text(encoding="utf-8") != text:  # never replaced
        raise RunError(
            "work", f"expected {str(history)!r} to hold fold {fold + 1}'s history (an earlier backtest "
            "of this series), got other contents; choose another folder or remove it",
        )  # fmt: skip
    run_dir = work / f"fold-{fold + 1}"
    # The history is one series (of a long table's, the one selected).
    one_series = {"id_column": None, "series_id": None}
    config = run.config.replace(data=str(history.resolve()), column=data.name, fill=fill, **one_series)
    if (run_dir / "metrics.json").is_file():
        _check_same_experiment(run_dir, config, fold)
    else:
        run_experiment(config, run_dir, progress=False, notify=notify)
    return open_run(run_dir)


def _check_same_experiment(run_dir: Path, config: Any, fold: int) -> None:
    """Refuses a finished fold trained with another configuration (an earlier backtest's)."""
    saved = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    wanted = config.to_dict()
    if config.calendar == ("auto",):  # resolved from the dates when the fold trained
        for name in ("calendar", "features"):
            saved.pop(name, None), wanted.pop(name, None)
    changed = sorted(name for name in wanted if saved.get(name) != wanted[name])
    if changed:
        raise RunError(
            "work", f"expected {str(run_dir)!r} to hold fold {fold + 1} of this experiment, got one trained "
            f"with other {', '.join(changed)}; choose another folder or remove it",
        )  # fmt: skip
