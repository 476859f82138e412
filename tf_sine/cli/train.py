"""`train`: the experiment's flags (each overrides the preset) and the command itself."""

from __future__ import annotations

import argparse
from pathlib import Path

from tf_sine.cli.common import add_data_flags, choices, names, note
from tf_sine.cli.tables import format_metrics, format_series_table
from tf_sine.config import (
    BATCH_ORDERS,
    CALENDARS,
    CELLS,
    DEFAULT_PRESET,
    DISTRIBUTIONS,
    ENGINES,
    INITIALIZERS,
    LAYOUTS,
    OPTIMIZERS,
    PRESETS,
    SCALES,
    Config,
    check_positive_int,
    get_preset,
)
from tf_sine.distribute import PEER_TIMEOUT


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Adds `train` to the CLI's parser."""
    train = commands.add_parser("train", help="train a model and write a run directory (the default)")
    add_config_flags(train)
    train.add_argument("--run-dir", help="run directory to write (default: a new one under runs/)")
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a finished run in --run-dir (an unfinished one is resumed)",
    )
    train.add_argument("--tensorboard", action="store_true", help="also write TensorBoard logs")
    train.add_argument(
        "--peer-timeout", type=float, default=PEER_TIMEOUT,
        help=f"multi-worker: seconds to wait for the other workers (default {PEER_TIMEOUT:g})",
    )  # fmt: skip
    train.add_argument("--quiet", action="store_true", help="no progress bar")


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    # Defaults are suppressed so that only the flags a user gives override the preset.
    group = parser.add_argument_group("experiment (override the preset)")
    add = group.add_argument
    add(
        "--preset",
        choices=tuple(PRESETS),
        help=f"named configuration to start from (default {DEFAULT_PRESET}): "
        + "; ".join(f"{name}: {preset.description}" for name, preset in PRESETS.items()),
    )
    add("--cell", choices=tuple(CELLS), help="recurrent cell (default lstm)")
    add("--units", type=int, help="hidden units per layer (default 30)")
    add("--layers", dest="num_layers", type=int, help="stacked recurrent layers (default 2)")
    add("--bidirectional", action=argparse.BooleanOptionalAction, help="wrap each layer in Bidirectional")
    add("--dropout", type=float, help="input dropout of each recurrent layer, in [0, 1)")
    add("--recurrent-dropout", type=float, help="recurrent-state dropout, in [0, 1)")
    add("--optimizer", choices=tuple(OPTIMIZERS), help="optimizer (default adagrad)")
    add("--learning-rate", type=float, help="learning rate (default 0.1)")
    add("--clipnorm", type=float, help="clip each gradient tensor to this L2 norm")
    add("--clipvalue", type=float, help="clip each gradient element to [-v, v]")
    add("--global-clipnorm", type=float, help="clip all gradients by their joint L2 norm")
    add("--timesteps", type=int, help="values per window (default 10)")
    add("--layout", **choices(LAYOUTS))
    add("--initializer", **choices(INITIALIZERS))
    add("--output-steps", type=int,
        help="values the model predicts at once (direct multi-step; default 1, the next value)")  # fmt: skip
    add("--steps", type=int, help="optimizer steps (default 3000)")
    add("--batch-size", type=int, help="windows per step (default 32)")
    add("--seed", type=int, help="seed for weights, dropout and data order (default 0)")
    add("--checkpoint-every", type=int, help="steps between checkpoints (default 500)")
    add("--batches", **choices(BATCH_ORDERS))
    add("--engine", **choices(ENGINES))
    add("--distribute", **choices(DISTRIBUTIONS))
    add("--scale", **choices(SCALES))
    add("--difference", action=argparse.BooleanOptionalAction,
        help="model the change between values (undone on every output); helps with trends")  # fmt: skip
    add("--covariates", type=names, metavar="COL,...",
        help="CSV columns fed beside the values (sequence layout), known ahead: their rows after the "
        "last value are the future a forecast reads")  # fmt: skip
    add("--calendar", type=names, nargs="?", const=("auto",), metavar="CYCLE,...",
        help="feed the sine and cosine of each date's place in these cycles (sequence layout); alone: "
        + "; ".join(f"{name}: {meaning}" for name, meaning in CALENDARS.items()))  # fmt: skip
    add("--id", dest="id_column", metavar="COL",
        help="a long table's column naming each row's series: one model trained on every series, each "
        "scaled on its own")  # fmt: skip
    add("--validate-every", type=int, help="steps between validation losses (default 100)")
    add("--patience", type=int, help="stop after this many validations without a better loss")
    for action in group._group_actions:
        action.default = argparse.SUPPRESS
    add_data_flags(parser, suppress=True)


def config_from_args(args: argparse.Namespace) -> Config:
    """The preset named by ``--preset`` with every given flag applied."""
    # `horizon` is --output-steps here: a command's own --horizon (backtest) is not the head's.
    overrides = {name: value for name, value in vars(args).items()
                 if name in Config.__dataclass_fields__ and name != "horizon"}  # fmt: skip
    if getattr(args, "output_steps", None) is not None:
        overrides["horizon"] = check_positive_int("output_steps", args.output_steps)
    if overrides.get("data"):  # the run directory must find the file from anywhere
        overrides["data"] = str(Path(overrides["data"]).resolve())
    return get_preset(preset_of(args)).replace(**overrides)


def preset_of(args: argparse.Namespace) -> str:
    """The preset ``--preset`` names, else the source's (`legacy`)."""
    return getattr(args, "preset", DEFAULT_PRESET)


def checked_config(args: argparse.Namespace) -> Config:
    """`config_from_args`, with ``--run-dir`` checked too: what `main` checks before TensorFlow starts."""
    from tf_sine.owned import OwnedFolder

    config = config_from_args(args)
    config.check_batch_memory()
    if config.data is None:
        config.check_for_sine()
    if args.run_dir is not None:
        OwnedFolder(args.run_dir).check()
    return config


def train(args: argparse.Namespace) -> int:
    config = args.config  # `checked_config`, built by `main` before TensorFlow started
    from tf_sine.pipeline import run_experiment

    result = run_experiment(
        config, args.run_dir, tensorboard=args.tensorboard, progress=not args.quiet,
        run_prefix=preset_of(args), overwrite=args.overwrite, notify=note, peer_timeout=args.peer_timeout,
    )  # fmt: skip
    metrics = result.metrics
    if "worker" in metrics:
        print(f"{metrics['worker']}, {metrics['replicas']} replicas in all: trained {metrics['steps']} "
              f"steps; weights fingerprint {metrics['weights_fingerprint']}")  # fmt: skip
    if "rmse" not in metrics:  # not the chief: the chief evaluates and writes the run directory
        return 0
    print(format_metrics(metrics))
    if "series" in metrics:
        print(format_series_table(metrics["series"]))
    if "best_step" in metrics:
        stop = " (stopped early)" if metrics["stopped_early"] else ""
        print(f"kept the model of step {metrics['best_step']}, the best validation loss "
              f"{metrics['best_val_loss']:.4g}{stop}")  # fmt: skip
    print(
        f"trained {metrics['steps']} steps in {metrics['train_seconds']:.2f} s ({config.engine} engine); "
        f"run directory: {result.run.path}"
    )
    return 0


COMMANDS = {"train": train}
