"""The command line: `python -m tf_sine` / `tf-sine`.

    tf-sine                          # the source experiment: train the legacy preset
    tf-sine train --cell gru --layout sequence --steps 2000
    tf-sine evaluate --model runs/RUN --horizon 12
    tf-sine train --data sales.csv --difference --patience 5
    tf-sine forecast --model runs/RUN --horizon 12
    tf-sine predict --model runs/RUN --input series.txt --output predictions.txt
    tf-sine backtest --model runs/RUN --folds 4 --horizon 6 --refit --out backtests/RUN
    tf-sine train --data prices.csv --covariates price,promo --calendar --layout sequence
    tf-sine train --data stores.csv --id store --layout sequence
    tf-sine forecast --model runs/RUN --horizon 7 --series north
    tf-sine backtest --data sales.csv --units 16 --folds 4 --horizon 6 --out backtests/sales

The package: this module (the parser, exit statuses, errors), `train`, `series` (evaluate,
forecast, predict), `backtest`, `export`, `studies` (compare, gradients, memory, clipping), `common`
(names and output). Each command parses, makes one library call and prints; none writes a file.

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
import warnings
from collections.abc import Sequence
from typing import Any

from tf_sine.cli import backtest as backtest_commands
from tf_sine.cli import convert as convert_commands
from tf_sine.cli import export as export_commands
from tf_sine.cli import series as series_commands
from tf_sine.cli import studies as study_commands
from tf_sine.cli import train as train_commands
from tf_sine.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_PIPE_CLOSED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    PROGRAM,
    Parser,
    flag_for,
    in_flags,
    report_bug,
    report_out_of_memory,
    show_warning,
)
from tf_sine.errors import RunFailedError, TfSineError
from tf_sine.startup import start_tensorflow
from tf_sine.threads import apply_plan, plan_for

__all__ = ["build_parser", "flag_for", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with its subcommands (`train`, `evaluate`, `forecast`, `predict`, studies)."""
    parser = Parser(prog=PROGRAM, description="Train and use the port of the TF1 sine-wave LSTM.")
    commands = parser.add_subparsers(dest="command", parser_class=Parser, metavar="COMMAND")
    for module in _MODULES:
        module.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv.insert(0, "train")  # `python -m tf_sine` runs the source experiment
    # TensorFlow's Python warnings (e.g. retracing notes when many models predict) are not ours.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    args = build_parser().parse_args(argv)
    warnings.showwarning = show_warning
    received: list[int] = []
    _stop_on_sigterm(received)
    try:
        # Built once, and checked before TensorFlow starts: a bad flag is reported at once.
        args.config = train_commands.checked_config(args) if args.command == "train" else None
        start_tensorflow()  # quietly (tf_sine.startup), its thread variables checked first
        apply_plan(plan_for(args.config))  # before TensorFlow runs an op
        return _COMMANDS[args.command](args)
    except TfSineError as error:  # the user's mistake or input
        print(
            f"{PROGRAM}: error: argument {flag_for(error.argument, args.command)}: {in_flags(error.detail)}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except RunFailedError as error:  # diverged, a worker lost: ran, and failed
        print(f"{PROGRAM}: error: {in_flags(str(error))}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        how = "terminated" if received else "interrupted"
        hint = "; run the same command to resume" if args.command == "train" else ""
        print(f"{PROGRAM}: {how}{hint}", file=sys.stderr)
        return EXIT_TERMINATED if received else EXIT_INTERRUPTED
    except BrokenPipeError:  # `| head` stopped reading: nothing more to say, and no error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's flush goes nowhere
        return EXIT_PIPE_CLOSED
    except OSError as error:  # the machine's: a full disk, a file removed meanwhile
        where = f": {error.filename}" if error.filename else ""
        print(f"{PROGRAM}: error: {error.strerror or error}{where}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as error:  # anything else is a bug of ours, never a usage error
        if isinstance(error, MemoryError) or type(error).__name__ == "ResourceExhaustedError":
            return report_out_of_memory(error)
        return report_bug(error)


def _stop_on_sigterm(received: list[int]) -> None:
    """SIGTERM stops training like Ctrl-C: a final checkpoint, then exit status 143."""

    def handler(signum: int, frame: Any) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


_MODULES = (
    train_commands,
    series_commands,
    backtest_commands,
    export_commands,
    convert_commands,
    study_commands,
)
_COMMANDS = {name: command for module in _MODULES for name, command in module.COMMANDS.items()}
