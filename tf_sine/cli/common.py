"""What every command shares: the program name, exit codes, flag names and one-line output."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from typing import Any, NoReturn

PROGRAM = "tf-sine"
EXIT_USAGE = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM

# Config field -> CLI flag, where they differ by more than '_' vs '-'.
_FLAGS = {
    "num_layers": "--layers",
    "seq": "--input",
    "x": "--input",
    "values": "--input",
    "preset": "--preset",
}


def flag_for(argument: str) -> str:
    """The CLI flag that sets a configuration field or library argument."""
    return _FLAGS.get(argument, "--" + argument.replace("_", "-"))


def in_flags(text: str) -> str:
    """A library message with the arguments it names (`run_dir`) written as flags (--run-dir)."""
    return re.sub(r"`([a-z_]+)`", lambda match: flag_for(match.group(1)), text)


class Parser(argparse.ArgumentParser):
    """An `ArgumentParser` whose errors are one line (no usage block) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{PROGRAM}: error: {message} (see {self.prog} --help)\n")


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


def format_metrics(metrics: dict[str, Any]) -> str:
    """The test scores, then the baselines' RMSE on the same targets (when computed)."""
    lines = [
        f"test RMSE {metrics['rmse']:.6f} (root mean squared error; the source printed it as "
        f"'Mean Square Error'), MSE {metrics['mse']:.3e}, MAE {metrics['mae']:.6f}"
    ]
    if metrics.get("baselines"):
        lines.append(
            "baselines, same test targets: " + format_baselines(metrics["baselines"], metrics.get("period"))
        )
    return "\n".join(lines)


def format_baselines(baselines: dict[str, float], period: int | None) -> str:
    """``persistence RMSE 0.0072, seasonal naive (period 628) RMSE 0.0058, mean RMSE 0.69``."""
    names = {"persistence": "persistence", "seasonal_naive": f"seasonal naive (period {period})",
             "mean": "training mean"}  # fmt: skip
    shown = [f"{names[name]} RMSE {value:.6g}" for name, value in baselines.items() if name in names]
    if "seasonal_naive" not in baselines:
        shown.append("no seasonal naive (no season found; give --period)" if not period
                     else f"no seasonal naive (the history is shorter than the period {period})")  # fmt: skip
    return ", ".join(shown)
