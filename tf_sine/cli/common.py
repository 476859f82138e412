"""What every command shares: the program name, exit codes, flag names and one-line output."""

from __future__ import annotations

import argparse
import os
import re
import sys
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

from tf_sine.config import FILLS
from tf_sine.files import first_line

PROGRAM = "tf-sine"
EXIT_USAGE = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM
EXIT_PIPE_CLOSED = 141  # 128 + SIGPIPE: the reader of stdout went away, as for a Unix tool

# Config field -> CLI flag, where they differ by more than '_' vs '-'.
_FLAGS = {
    "num_layers": "--layers",
    "seq": "--input",
    "x": "--input",
    "values": "--input",
    "preset": "--preset",
    "id_column": "--id",
    "series_id": "--series",
    "work": "--out",  # backtest's folds go to OUT/folds
}
# Where one command's flag differs from the table: `train` sets the head's `horizon` with
# --output-steps (forecast and backtest have a --horizon of their own, the steps forecast).
_COMMAND_FLAGS = {("train", "horizon"): "--output-steps"}


def flag_for(argument: str, command: str | None = None) -> str:
    """The CLI flag that sets a configuration field or library argument in `command` (an
    environment variable, in capitals, is named as it is)."""
    if argument.isupper():
        return argument
    return _COMMAND_FLAGS.get((command, argument)) or _FLAGS.get(argument, "--" + argument.replace("_", "-"))


def in_flags(text: str) -> str:
    """A library message with the arguments it names (`run_dir`) written as flags (--run-dir)."""
    return re.sub(r"`([a-z_]+)`", lambda match: flag_for(match.group(1)), text)


class Parser(argparse.ArgumentParser):
    """An `ArgumentParser` whose errors are one line (no usage block) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{PROGRAM}: error: {message} (see {self.prog} --help)\n")


def show_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    """Warnings as one line each: ``tf-sine: warning: ...`` (tf_sine's) or ``Category: ...``."""
    text = in_flags(str(message).removeprefix("tf_sine: "))
    origin = "" if str(message).startswith("tf_sine: ") else f"{category.__name__}: "
    print(f"{PROGRAM}: warning: {origin}{text}", file=sys.stderr)


def note(message: str) -> None:
    """Prints one of the library's notes (resuming, a range warning) on stderr."""
    print(f"{PROGRAM}: {in_flags(message)}", file=sys.stderr)


def step_notes(what: str, every: float = 0.1, least: int = 200) -> Callable[[int, int], None]:
    """A progress callback for long loops: one line on stderr each tenth, from `least` steps on."""
    shown: list[int] = []

    def on_step(done: int, total: int) -> None:
        tenth = int(done / total / every)
        if total >= least and done < total and tenth > len(shown):
            shown.append(done)
            print(f"{PROGRAM}: {what}: step {done} of {total}", file=sys.stderr)

    return on_step


def report_out_of_memory(error: Exception) -> int:
    """One line for running out of memory (exit status 1)."""
    # Python's MemoryError, or TensorFlow's ResourceExhaustedError (which names the tensor's shape).
    what = first_line(error)[:200] if str(error).strip() else "no size given"
    print(f"{PROGRAM}: error: out of memory ({what}); try fewer --units or --layers, or a smaller "
          "--batch-size", file=sys.stderr)  # fmt: skip
    return EXIT_FAILED


def report_bug(error: Exception) -> int:
    """Reports an unexpected exception as what it is: a bug in tf_sine (exit status 1)."""
    if os.environ.get("TF_SINE_DEBUG", "").strip() not in ("", "0"):
        traceback.print_exception(error)
    text = str(error).strip().splitlines()
    detail = f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
    print(f"{PROGRAM}: internal error, a bug in tf_sine and not a mistake in the command ({detail}); "
          "TF_SINE_DEBUG=1 shows the traceback", file=sys.stderr)  # fmt: skip
    return EXIT_FAILED


def choices(table: dict[str, str]) -> dict:
    """`choices` and `help` of a flag from its table in `tf_sine.config` (name -> meaning)."""
    return {
        "choices": tuple(table),
        "help": "; ".join(f"{name}: {meaning}" for name, meaning in table.items()),
    }


def split_fractions(text: str) -> tuple[float, ...]:
    """Parses ``--split 0.7,0.15,0.15`` (checked by `Config`)."""
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected three fractions train,validation,test such as 0.7,0.15,0.15, got {text!r}"
        ) from None


def names(text: str) -> tuple[str, ...]:
    """Parses ``--covariates price,holiday`` (checked by `Config`)."""
    return tuple(part.strip() for part in text.split(","))


SERIES_HELP = "one series of a model of several (trained with --id): its id"


def add_data_flags(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """`--data`, `--column`, `--fill`, `--split`, `--period`, `--series`: shared by train, evaluate,
    forecast and backtest."""
    group = parser.add_argument_group("series (default: the source's sine, or the run's own series)")
    add = group.add_argument
    add("--data", help="a CSV file with a header row (a date column is kept) or a .npy array")
    add("--column", help="the CSV column of values (default: the only numeric one)")
    add("--fill", **choices(FILLS))
    add(
        "--split",
        type=split_fractions,
        help="chronological train,validation,test fractions (default 0.7,0.15,0.15)",
    )
    add("--period", type=int, help="season length for the seasonal-naive baseline (default: detected)")
    add("--series", dest="series_id", help=SERIES_HELP + "; default every series")
    if suppress:
        for action in group._group_actions:
            action.default = argparse.SUPPRESS
