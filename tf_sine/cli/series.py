"""Using a trained model on a series: `evaluate`, `forecast` and `predict`.

Each takes `--model`: a ``.keras`` file, or a run directory, whose ``config.json`` names the
series it was trained on and whose ``scaling.json`` the transform; outputs are always in the
series' own units, and every score is printed beside the naive baselines'.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tf_sine.cli.common import add_data_flags, step_notes
from tf_sine.cli.tables import (
    format_baselines,
    format_forecast,
    format_horizon_table,
    format_interval,
    format_metrics,
    format_series_table,
)
from tf_sine.config import Config, ConfigError, check_positive_int

SERIES_SHOWN = 8  # several series: the ones whose scores by horizon are printed one by one
INTERVAL_HELP = "a coverage level such as 0.9: split-conformal intervals by horizon, from the validation part"


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Adds `evaluate`, `forecast` and `predict` to the CLI's parser."""
    evaluate = commands.add_parser("evaluate", help="score a model on the test part, beside naive baselines")
    evaluate.add_argument("--model", required=True, help="a .keras file or a run directory")
    evaluate.add_argument("--horizon", type=int, help="also score forecasts 1..H steps ahead (rolled out)")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    evaluate.add_argument("--interval", type=float, help=INTERVAL_HELP + "; prints their test coverage")
    evaluate.add_argument(
        "--out", help="also write evaluation.json into this folder (default: write nothing)"
    )
    add_data_flags(evaluate, suppress=False)

    forecast = commands.add_parser("forecast", help="continue a series H steps ahead (autoregressive)")
    forecast.add_argument("--model", required=True, help="a run directory (or a .keras file with --data)")
    forecast.add_argument("--horizon", type=int, required=True, help="steps to forecast")
    forecast.add_argument("--interval", type=float, help=INTERVAL_HELP)
    forecast.add_argument(
        "--origin",
        default="end",
        help="where the forecast starts: 'end' (after the last value, the default), 'test' (at the "
        "start of the test part, so the truth is known) or the 0-based position of the last known value",
    )
    forecast.add_argument(
        "--out",
        help="write forecast.csv and forecast.png into this folder (default: print only, write nothing)",
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


def open_from_args(args: argparse.Namespace) -> Any:
    """The run `--model` names, on the series the data flags name (default: its own)."""
    from tf_sine.trained import open_run

    if getattr(args, "horizon", None) is not None:
        check_positive_int("horizon", args.horizon)  # before the model is loaded
    run = open_run(args.model)
    given = {name: getattr(args, name, None) for name in ("data", "column", "split", "period", "fill")}
    experiment = {*Config.__dataclass_fields__, "output_steps", "preset"}
    others = sorted(set(vars(args)) & experiment - {*given, "series_id", "horizon"})
    if others:  # the experiment flags of a backtest without --model
        raise ConfigError(others[0], "applies to a backtest without --model (a trained run keeps its own)")
    run = run.with_series(**given)
    series_id = getattr(args, "series_id", None)
    return run if series_id is None else run.select(series_id)


def _evaluate(args: argparse.Namespace) -> int:
    metrics = open_from_args(args).evaluate(args.horizon, out=args.out, interval=args.interval)
    if args.json:
        print(json.dumps(metrics))
        return 0
    print(format_metrics(metrics))
    if "series" not in metrics:
        if args.horizon is not None or args.interval is not None:
            print(_horizon_and_interval(metrics))
        return 0
    # Several series: each of them, all together above; by horizon, the first few one by one.
    print(format_series_table(metrics["series"]))
    by_horizon = args.horizon is not None or args.interval is not None
    shown = list(metrics["series"].items())[:SERIES_SHOWN] if by_horizon else []
    for key, scores in shown:
        print(f"series {key!r}:\n{_horizon_and_interval(scores)}")
    if len(metrics["series"]) > len(shown) > 0:
        print(f"(the other {len(metrics['series']) - len(shown)} series: --json or --out)")
    return 0


def _horizon_and_interval(metrics: dict[str, Any]) -> str:
    """The table by horizon and the interval line, those of them `metrics` holds."""
    lines = [format_horizon_table(metrics)] if "rmse_by_horizon" in metrics else []
    if "interval" in metrics:
        lines.append(format_interval(metrics["interval"]))
    return "\n".join(lines)


def _forecast(args: argparse.Namespace) -> int:
    run = open_from_args(args)
    forecast = run.forecast(args.horizon, args.origin, step_notes("forecast"), args.interval)
    written = forecast.save(args.out) if args.out is not None else []
    if run.ids:  # several series: each one's forecast
        print("\n".join(format_forecast(one, key) for key, one in forecast.forecasts.items()))
        if written:
            print("written: " + ", ".join(map(str, written)))
        return 0
    print(format_forecast(forecast))
    errors = forecast.errors()
    if errors:
        model = errors.pop("model")
        print(f"against the {forecast.known} known values: model RMSE {model:.6g}; "
              + format_baselines(errors, forecast.period))  # fmt: skip
    print(format_horizon_table(run.horizon_scores(args.horizon, step_notes("scoring by horizon"))))
    if written:
        print("written: " + ", ".join(map(str, written)))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from tf_sine.series import check_output_path, parse_values, read_values, values_text, write_values
    from tf_sine.trained import open_run

    if args.output != "-":
        check_output_path(args.output, "output")  # before the model is loaded
    series = (
        parse_values(sys.stdin.read(), "input") if args.input == "-" else read_values(args.input, "input")
    )
    predictions = open_run(args.model).predict(series)
    if args.output == "-":
        sys.stdout.write(values_text(predictions))
    else:
        write_values(args.output, predictions, "output")
    return 0


COMMANDS = {"evaluate": _evaluate, "forecast": _forecast, "predict": _predict}
