"""`backtest`: a run's forecasts from several origins across the test part, scored per fold."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tf_sine.cli.common import note
from tf_sine.cli.series import open_from_args
from tf_sine.cli.train import add_config_flags, config_from_args
from tf_sine.errors import ConfigError

FOLDS_DIR = "folds"


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Adds `backtest` to the CLI's parser."""
    parser = commands.add_parser(
        "backtest", help="rolling-origin evaluation: forecasts from several origins, scored per fold"
    )
    add = parser.add_argument
    add("--model", help="a run directory (or a .keras file with --data); without it, --data and the "
        "experiment flags are trained at each origin (--refit)")  # fmt: skip
    add("--folds", type=int, required=True, help="origins, H steps apart from the test part's start")
    add("--horizon", type=int, required=True, help="steps forecast after each origin")
    add(
        "--refit",
        action="store_true",
        help="train a model at each origin on the history before it (needs --out)",
    )
    add("--out", help=f"write backtest.csv and backtest.png here; --refit's runs go to OUT/{FOLDS_DIR}")
    add_config_flags(parser)


def _backtest(args: argparse.Namespace) -> int:
    from tf_sine.backtest import backtest
    from tf_sine.owned import check_writable_folder

    args.refit = args.refit or args.model is None  # nothing trained yet: every fold trains
    if args.refit and args.out is None:
        raise ConfigError("out", "expected a folder for the refitted folds' runs with --refit, got none")
    if args.out is not None:
        check_writable_folder(args.out, "out")  # before any fold is trained or forecast
    run = open_from_args(args) if args.model is not None else _untrained(args)
    work = Path(args.out) / FOLDS_DIR if args.out is not None else None
    result = backtest(run, args.folds, args.horizon, args.refit, work,
                      on_fold=lambda done, total: note(f"backtest: fold {done} of {total} done"),
                      notify=note)  # fmt: skip
    names = list(result.overall)
    how = "a model trained at each origin" if args.refit else "the run's model"
    print(f"backtest of {args.folds} folds, {args.horizon} steps each ({how}); RMSE by fold, MASE overall:")
    print(_row("fold", "origin", names, "{:>15}"))
    for fold in result.folds:
        print(_row(fold["fold"], fold["time"], [fold[f"{name}_rmse"] for name in names]))
    print(_row("all", "RMSE", [result.overall[name]["rmse"] for name in names]))
    print(_row("all", "MASE", [result.overall[name]["mase"] for name in names]))
    if args.out is not None:
        print("written: " + ", ".join(map(str, result.save(args.out))))
    return 0


def _untrained(args: argparse.Namespace) -> Any:
    """The run a backtest without `--model` refits at each origin: the experiment flags on `--data`."""
    from tf_sine.trained import untrained_run

    if getattr(args, "data", None) is None:
        raise ConfigError("model", "expected a trained run, or --data to train at each origin, got neither")
    return untrained_run(config_from_args(args))


def _row(first: object, second: object, cells: list, form: str = "{:>15.6g}") -> str:
    shown = (f"{'-':>15}" if cell is None else form.format(cell) for cell in cells)
    return f"{first!s:>5} {second!s:>20} " + " ".join(shown)


COMMANDS = {"backtest": _backtest}
