"""Using a trained model on a series: `evaluate`, `forecast` and `predict`.

Each takes `--model`: a ``.keras`` file, or a run directory, whose ``config.json`` names the
series it was trained on and whose ``scaling.json`` the transform; outputs are always in the
series' own units, and every score is printed beside the naive baselines'.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from tf_sine.cli.common import format_baselines, format_metrics
from tf_sine.config import Config, ConfigError, check_positive_int
from tf_sine.errors import DataError


def split_fractions(text: str) -> tuple[float, ...]:
    """Parses ``--split 0.7,0.15,0.15`` (checked by `Config`)."""
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected three fractions train,validation,test such as 0.7,0.15,0.15, got {text!r}"
        ) from None


def add_data_flags(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """`--data`, `--column`, `--split`, `--period`: shared by train, evaluate and forecast."""
    group = parser.add_argument_group("series (default: the source's sine, or the run's own series)")
    add = group.add_argument
    add("--data", help="a CSV file with a header row (a date column is kept) or a .npy array")
    add("--column", help="the CSV column of values (default: the only numeric one)")
    add(
        "--split",
        type=split_fractions,
        help="chronological train,validation,test fractions (default 0.7,0.15,0.15)",
    )
    add("--period", type=int, help="season length for the seasonal-naive baseline (default: detected)")
    if suppress:
        for action in group._group_actions:
            action.default = argparse.SUPPRESS


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Adds `evaluate`, `forecast` and `predict` to the CLI's parser."""
    evaluate = commands.add_parser("evaluate", help="score a model on the test part, beside naive baselines")
    evaluate.add_argument("--model", required=True, help="a .keras file or a run directory")
    evaluate.add_argument("--horizon", type=int, help="also score forecasts 1..H steps ahead (rolled out)")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    add_data_flags(evaluate, suppress=False)

    forecast = commands.add_parser("forecast", help="continue a series H steps ahead (autoregressive)")
    forecast.add_argument("--model", required=True, help="a run directory (or a .keras file with --data)")
    forecast.add_argument("--horizon", type=int, required=True, help="steps to forecast")
    forecast.add_argument(
        "--origin",
        default="end",
        help="where the forecast starts: 'end' (after the last value, the default), 'test' (at the "
        "start of the test part, so the truth is known) or the 0-based position of the last known value",
    )
    forecast.add_argument(
        "--out", help="folder for forecast.csv and forecast.png (default: the run directory)"
    )
    add_data_flags(forecast, suppress=False)

    predict = commands.add_parser("predict", help="predict the next value after each window of a series")
    predict.add_argument("--model", required=True, help="a .keras file or a run directory")
    predict.add_argument(
        "--input",
        default="-",
        help="series: .npy, or text with one number per line/comma/space (default stdin)",
    )
    predict.add_argument(
        "--output", default="-", help="where to write predictions, one per line (default stdout)"
    )


class _Scoring:
    """A model with the series, transform and season it is scored on."""

    def __init__(self, args: argparse.Namespace):
        from tf_sine.data import layout_of
        from tf_sine.dataset import detect_period, load_dataset
        from tf_sine.runs import open_run

        if getattr(args, "horizon", None) is not None:
            check_positive_int("horizon", args.horizon)
        if args.period is not None:
            Config(period=args.period)  # the same check as training
        run = open_run(args.model)
        self.model, saved, self.transform = run.model, run.config, run.transform
        self.run = run.directory
        timesteps, layout = layout_of(self.model.input_shape)
        changes: dict[str, Any] = {
            name: getattr(args, name) for name in ("data", "column", "split") if getattr(args, name)
        }
        if "data" in changes:
            changes["data"] = str(Path(changes["data"]).resolve())
        # Scores may be added to the run's metrics.json: its own model, on its own series.
        self.own_series = not changes and self.run is not None and run.model_path == self.run.model_path
        # The windows follow the transform the model was trained with, whatever the new series.
        changes["difference"] = self.transform.difference
        self.config = (saved or Config(timesteps=timesteps, layout=layout)).replace(**changes)
        self.data = load_dataset(self.config)
        self.period = (
            args.period or self.config.period or detect_period(self.data.levels[: self.data.train_end])
        )

    def time_of(self, position: int) -> Any:
        """The date (or number) of a position, or the position itself without dates."""
        if self.data.dates is None:
            return position
        if position < len(self.data.dates):
            return self.data.dates[position]
        from tf_sine.series import future_dates

        return future_dates(self.data.dates, position - len(self.data.dates) + 1)[-1]


def _evaluate(args: argparse.Namespace) -> int:
    from tf_sine.evaluation import horizon_scores, score
    from tf_sine.runs import read_json, write_json

    scoring = _Scoring(args)
    metrics, _ = score(scoring.model, scoring.data, scoring.transform, scoring.period)
    if args.horizon is not None:
        metrics.update(
            horizon_scores(scoring.model, scoring.data, scoring.transform, args.horizon, scoring.period)
        )
    if scoring.run is not None and scoring.own_series and scoring.run.finished:
        saved = read_json(scoring.run.metrics_path)
        write_json(scoring.run.metrics_path, {**saved, **metrics})  # adds rmse_by_horizon
    if args.json:
        print(json.dumps(metrics))
        return 0
    print(format_metrics(metrics))
    if args.horizon is not None:
        print(_horizon_table(metrics))
    return 0


def _horizon_table(scores: dict[str, Any]) -> str:
    names = list(scores["baselines_by_horizon"])
    lines = [f"RMSE by horizon on the {scores['targets']} test targets (rolled out, series units):",
             f"{'h':>4} {'model':>12} " + " ".join(f"{name:>15}" for name in names)]  # fmt: skip
    for h, value in enumerate(scores["rmse_by_horizon"]):
        row = " ".join(f"{scores['baselines_by_horizon'][name][h]:>15.6g}" for name in names)
        lines.append(f"{h + 1:>4} {value:>12.6g} {row}")
    return "\n".join(lines)


def _forecast(args: argparse.Namespace) -> int:
    from tf_sine import plotting
    from tf_sine.evaluation import baseline_forecasts, horizon_scores, max_horizon, rollout
    from tf_sine.runs import atomic_write

    scoring = _Scoring(args)  # checks --horizon
    horizon = args.horizon
    data, levels = scoring.data, scoring.data.levels
    origin = _origin(args.origin, scoring)
    forecast = rollout(scoring.model, data, scoring.transform, np.array([origin]), horizon)[0]
    baselines = {name: values[0] for name, values in baseline_forecasts(data, np.array([origin]), horizon,
                                                                         scoring.period).items()}  # fmt: skip
    truth = levels[origin + 1 : origin + 1 + horizon]
    times = [scoring.time_of(origin + 1 + h) for h in range(horizon)]
    out = Path(args.out) if args.out else (scoring.run.path if scoring.run is not None else Path("."))
    out.mkdir(parents=True, exist_ok=True)
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["time", "forecast", *baselines, "truth"])
    for h in range(horizon):
        known = f"{truth[h]:.9g}" if h < len(truth) else ""
        writer.writerow(
            [_time_text(times[h]), f"{forecast[h]:.9g}", *(f"{v[h]:.9g}" for v in baselines.values()), known]
        )
    atomic_write(out / "forecast.csv", lambda path: path.write_text(table.getvalue(), encoding="utf-8"))
    shown = max(4 * horizon, 3 * data.test_targets.size // 2, 50)
    first = max(origin + 1 - shown, 0)
    ax = plotting.plot_forecast(
        [scoring.time_of(p) for p in range(first, origin + 1)], levels[first : origin + 1], times, forecast,
        truth, title=f"{data.name}: {horizon} steps after {_time_text(scoring.time_of(origin))}",
    )  # fmt: skip
    atomic_write(out / "forecast.png", lambda path: plotting.save_figure(ax, path))
    print(f"forecast of {horizon} steps after {_time_text(scoring.time_of(origin))} ({data.name}):")
    print(", ".join(f"{_time_text(t)}: {v:.6g}" for t, v in zip(times, forecast, strict=False)))
    if len(truth):
        errors = {
            name: float(np.sqrt(np.mean((v[: len(truth)] - truth) ** 2))) for name, v in baselines.items()
        }
        model_error = float(np.sqrt(np.mean((forecast[: len(truth)] - truth) ** 2)))
        print(f"against the {len(truth)} known values: model RMSE {model_error:.6g}; "
              + format_baselines(errors, scoring.period))  # fmt: skip
    backtest = min(horizon, max_horizon(scoring.model, data, scoring.transform))
    print(_horizon_table(horizon_scores(scoring.model, data, scoring.transform, backtest, scoring.period)))
    print(f"written: {out / 'forecast.csv'}, {out / 'forecast.png'}")
    return 0


def _origin(text: str, scoring: _Scoring) -> int:
    data = scoring.data
    first = scoring.config.timesteps + scoring.transform.difference - 1  # the first full window ends here
    if text == "end":
        return len(data.levels) - 1
    if text == "test":
        return int(data.test_targets[0]) - 1
    try:
        position = int(text)
    except ValueError:
        raise ConfigError("origin", f"expected 'end', 'test' or a position, got {text!r}") from None
    if not first <= position < len(data.levels):
        raise ConfigError(
            "origin", f"expected a position from {first} to {len(data.levels) - 1}, got {position}"
        )
    return position


def _time_text(time: Any) -> str:
    if hasattr(time, "isoformat"):
        text = time.isoformat(sep=" ")
        return text[:10] if text.endswith("00:00:00") else text
    return str(time)


def _predict(args: argparse.Namespace) -> int:
    from tf_sine.data import layout_of
    from tf_sine.dataset import Dataset
    from tf_sine.evaluation import predict_levels
    from tf_sine.runs import atomic_write, open_run

    series = read_series(args.input)
    run = open_run(args.model)
    model, transform = run.model, run.transform
    timesteps, _ = layout_of(model.input_shape)
    first = timesteps + transform.difference
    if len(series) < first:
        raise DataError("input", f"expected at least {first} values for one window, got {len(series)}")
    # Position t predicts the value after series[t - 1]: one prediction per full window.
    targets = np.arange(first, len(series) + 1)
    empty = np.arange(0)
    data = Dataset(series.astype(np.float64), empty, empty, empty, len(series))
    predictions = predict_levels(model, data, transform, targets)
    text = "".join(f"{value:.9g}\n" for value in predictions)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        atomic_write(Path(args.output), lambda path: path.write_text(text, encoding="utf-8"))
    return 0


def read_series(source: str) -> Any:
    """Reads a 1-D series from a ``.npy`` file, a text file, or stdin (``-``).

    Text holds numbers separated by newlines, commas or white space.

    Raises:
        ValueError: the file is missing or holds something other than numbers.
    """
    from tf_sine.data import as_series

    if source != "-" and not Path(source).is_file():
        raise DataError("input", f"expected an existing file or '-' for stdin, got {source!r}")
    if source.endswith(".npy"):
        try:
            values = np.load(source, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise DataError("input", f"cannot read {source!r} as a .npy array: {error}") from None
    else:
        try:
            text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise DataError(
                "input", f"expected UTF-8 text or a .npy file, got {error.reason} in {source!r}"
            ) from None
        tokens = text.replace(",", " ").split()
        try:
            values = np.array([float(token) for token in tokens])
        except ValueError as error:
            raise DataError("input", f"expected numbers, got {str(error).split(': ', 1)[-1]}") from None
    return as_series(values, "input")


COMMANDS = {"evaluate": _evaluate, "forecast": _forecast, "predict": _predict}
