"""The command line: `python -m tf_sine` / `tf-sine`.

    tf-sine                          # the source experiment: train the legacy preset
    tf-sine train --cell gru --layout sequence --steps 2000
    tf-sine evaluate --model runs/RUN --horizon 12
    tf-sine train --data sales.csv --difference --patience 5
    tf-sine forecast --model runs/RUN --horizon 12
    tf-sine predict --model runs/RUN --input series.txt --output predictions.txt

The package: this module (the parser, `train`, errors), `series` (evaluate, forecast,
predict), `studies` (compare, gradients, memory, clipping), `common` (names and output).

The only module that knows about argv, exit codes and the terminal. A `TfSineError` (the
user's mistake or input) becomes one line naming the flag and exit status 2; an `OSError` (a
full disk, say) one line and exit status 1; anything else is a bug of ours, said as such, exit
status 1 (`TF_SINE_DEBUG=1` shows the traceback). TensorFlow is imported only after the
arguments have been checked.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tf_sine.cli import export as export_commands
from tf_sine.cli import series as series_commands
from tf_sine.cli import studies as study_commands
from tf_sine.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    PROGRAM,
    Parser,
    flag_for,
    format_metrics,
    note,
)
from tf_sine.config import (
    CELLS,
    DISTRIBUTIONS,
    ENGINES,
    LAYOUTS,
    OPTIMIZERS,
    PRESETS,
    SCALES,
    Config,
    get_preset,
)
from tf_sine.errors import RunFailedError, TfSineError
from tf_sine.startup import start_tensorflow

__all__ = ["build_parser", "config_from_args", "flag_for", "main"]


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    # Defaults are suppressed so that only the flags a user gives override the preset.
    group = parser.add_argument_group("experiment (override the preset)")
    add = group.add_argument
    add(
        "--preset",
        choices=tuple(PRESETS),
        default="legacy",
        help="named configuration to start from: "
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
    add("--layout", choices=tuple(LAYOUTS), help="; ".join(f"{k}: {v}" for k, v in LAYOUTS.items()))
    add("--steps", type=int, help="optimizer steps (default 3000)")
    add("--batch-size", type=int, help="windows per step (default 32)")
    add("--seed", type=int, help="seed for weights, dropout and data order (default 0)")
    add("--checkpoint-every", type=int, help="steps between checkpoints (default 500)")
    add("--engine", choices=tuple(ENGINES), help="; ".join(f"{k}: {v}" for k, v in ENGINES.items()))
    add("--distribute", choices=tuple(DISTRIBUTIONS),
        help="; ".join(f"{k}: {v}" for k, v in DISTRIBUTIONS.items()))  # fmt: skip
    add("--scale", choices=tuple(SCALES), help="; ".join(f"{k}: {v}" for k, v in SCALES.items()))
    add("--difference", action=argparse.BooleanOptionalAction,
        help="model the change between values (undone on every output); helps with trends")  # fmt: skip
    add("--validate-every", type=int, help="steps between validation losses (default 100)")
    add("--patience", type=int, help="stop after this many validations without a better loss")
    for action in group._group_actions:
        if action.dest != "preset":
            action.default = argparse.SUPPRESS
    series_commands.add_data_flags(parser, suppress=True)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with its subcommands (`train`, `evaluate`, `forecast`, `predict`, studies)."""
    parser = Parser(prog=PROGRAM, description="Train and use the port of the TF1 sine-wave LSTM.")
    commands = parser.add_subparsers(dest="command", parser_class=Parser, metavar="COMMAND")

    train = commands.add_parser("train", help="train a model and write a run directory (the default)")
    _add_config_flags(train)
    train.add_argument("--run-dir", help="run directory to write (default: a new one under runs/)")
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a finished run in --run-dir (an unfinished one is resumed)",
    )
    train.add_argument("--tensorboard", action="store_true", help="also write TensorBoard logs")
    train.add_argument("--quiet", action="store_true", help="no progress bar")

    series_commands.add_commands(commands)
    export_commands.add_commands(commands)
    study_commands.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv.insert(0, "train")  # `python -m tf_sine` runs the source experiment
    # TensorFlow's Python warnings (e.g. retracing notes when many models predict) are not ours.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    args = build_parser().parse_args(argv)
    warnings.showwarning = _show_warning
    received: list[int] = []
    _stop_on_sigterm(received)
    try:
        if _set_threads(args):
            start_tensorflow()  # quietly (tf_sine.startup); a bad flag is reported without it
        return _COMMANDS[args.command](args)
    except TfSineError as error:  # the user's mistake or input
        print(f"{PROGRAM}: error: argument {flag_for(error.argument)}: {error.detail}", file=sys.stderr)
        return EXIT_USAGE
    except RunFailedError as error:  # diverged, a worker lost: ran, and failed
        print(f"{PROGRAM}: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        how = "terminated" if received else "interrupted"
        hint = "; run the same command to resume" if args.command == "train" else ""
        print(f"{PROGRAM}: {how}{hint}", file=sys.stderr)
        return EXIT_TERMINATED if received else EXIT_INTERRUPTED
    except OSError as error:  # the machine's: a full disk, a file removed meanwhile
        where = f": {error.filename}" if error.filename else ""
        print(f"{PROGRAM}: error: {error.strerror or error}{where}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as error:  # anything else is a bug of ours, never a usage error
        return _bug(error)


def _set_threads(args: argparse.Namespace) -> bool:
    """TensorFlow's thread pools for this command, chosen before TensorFlow starts; False when
    the training flags are invalid (the command then reports them, with no need of TensorFlow).

    Training runs one chain of small ops: one inter-op thread (handing ops between threads
    costs more than it gives), matmuls on every core. A model the fused kernels cover (no
    dropout) on the sequence layout instead runs each batch as two halves side by side
    (`tf_sine.training._shards`): 2 inter-op threads of 1 intra-op thread each, since each
    kernel op runs on one thread (README has the measurements). Variables already set are kept.
    """
    try:
        config = config_from_args(args) if args.command == "train" else None
    except TfSineError:
        return False  # reported by the command itself
    halves = (
        config is not None and config.engine == "fast" and config.distribute == "none"
        and config.layout == "sequence" and config.dropout == 0 and config.recurrent_dropout == 0
    )  # fmt: skip
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "2" if halves else "1")
    if halves:
        os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    return True


def _show_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    """Warnings as one line each: ``tf-sine: warning: ...`` (tf_sine's) or ``Category: ...``."""
    text = str(message).removeprefix("tf_sine: ")
    origin = "" if str(message).startswith("tf_sine: ") else f"{category.__name__}: "
    print(f"{PROGRAM}: warning: {origin}{text}", file=sys.stderr)


def _stop_on_sigterm(received: list[int]) -> None:
    """SIGTERM stops training like Ctrl-C: a final checkpoint, then exit status 143."""

    def handler(signum: int, frame: Any) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _bug(error: Exception) -> int:
    """Reports an unexpected exception as what it is: a bug in tf_sine (exit status 1)."""
    if os.environ.get("TF_SINE_DEBUG", "").strip() not in ("", "0"):
        traceback.print_exception(error)
    text = str(error).strip().splitlines()
    detail = f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
    print(f"{PROGRAM}: internal error, a bug in tf_sine and not a mistake in the command ({detail}); "
          "TF_SINE_DEBUG=1 shows the traceback", file=sys.stderr)  # fmt: skip
    return EXIT_FAILED


def config_from_args(args: argparse.Namespace) -> Config:
    """The preset named by ``--preset`` with every given flag applied."""
    overrides = {name: value for name, value in vars(args).items() if name in Config.__dataclass_fields__}
    if overrides.get("data"):  # the run directory must find the file from anywhere
        overrides["data"] = str(Path(overrides["data"]).resolve())
    return get_preset(args.preset).replace(**overrides)


def _train(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    from tf_sine.pipeline import run_experiment

    result = run_experiment(
        config, args.run_dir, tensorboard=args.tensorboard, progress=not args.quiet,
        run_prefix=args.preset, overwrite=args.overwrite, notify=note,
    )  # fmt: skip
    metrics = result.metrics
    if "worker" in metrics:
        print(f"{metrics['worker']}, {metrics['replicas']} replicas in all: trained {metrics['steps']} "
              f"steps; weights fingerprint {metrics['weights_fingerprint']}")  # fmt: skip
    if "rmse" not in metrics:  # not the chief: the chief evaluates and writes the run directory
        return 0
    print(format_metrics(metrics))
    if "best_step" in metrics:
        stop = " (stopped early)" if metrics["stopped_early"] else ""
        print(f"kept the model of step {metrics['best_step']}, the best validation loss "
              f"{metrics['best_val_loss']:.4g}{stop}")  # fmt: skip
    print(
        f"trained {metrics['steps']} steps in {metrics['train_seconds']:.2f} s ({config.engine} engine); "
        f"run directory: {result.run.path}"
    )
    return 0


_COMMANDS = {
    "train": _train,
    **series_commands.COMMANDS,
    **export_commands.COMMANDS,
    **study_commands.COMMANDS,
}
