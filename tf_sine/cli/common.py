"""What every command shares: the program name, exit codes, flag names and one-line output."""

from __future__ import annotations

import argparse
import os
import re
import sys
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

from tf_sine.files import first_line

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


def format_metrics(metrics: dict[str, Any]) -> str:
    """The test scores, then the baselines' RMSE on the same targets (when computed)."""
    lines = [
        f"test RMSE {metrics['rmse']:.6f} (root mean squared error; the source printed it as "
        f"'Mean Square Error'), MSE {metrics['mse']:.3e}, MAE {metrics['mae']:.6f}"
    ]
    if "smape" in metrics:
        omitted = f" ({metrics['mape_omitted']})" if "mape_omitted" in metrics else ""
        lines.append("scale-free: " + _scale_free(metrics) + omitted)
    if metrics.get("baselines"):
        lines.append(
            "baselines, same test targets: "
            + format_baselines(metrics["baselines"], metrics.get("period"), metrics.get("baseline_metrics"))
        )
    if metrics.get("filled"):
        lines.append(f"{metrics['filled']} filled values of the series are never scored as truth")
    return "\n".join(lines)


def _scale_free(scores: dict[str, Any]) -> str:
    """``MASE 0.41, sMAPE 2.3%, MAPE 2.2%`` (MASE without a scale, MAPE where omitted: left out)."""
    shown = [f"MASE {scores['mase']:.3g}"] if scores.get("mase") is not None else []
    shown.append(f"sMAPE {scores['smape']:.3g}%")
    if "mape" in scores:
        shown.append(f"MAPE {scores['mape']:.3g}%")
    return ", ".join(shown)


def format_baselines(
    baselines: dict[str, float], period: int | None, scores: dict[str, dict[str, Any]] | None = None
) -> str:
    """``persistence RMSE 0.0072, seasonal naive (period 628) RMSE 0.0058, mean RMSE 0.69``, each
    with its scale-free scores in parentheses where `scores` (name -> scores) has them."""
    names = {"persistence": "persistence", "seasonal_naive": f"seasonal naive (period {period})",
             "mean": "training mean"}  # fmt: skip
    scores = scores or {}
    shown = [
        f"{names[name]} RMSE {value:.6g}" + (f" ({_scale_free(scores[name])})" if name in scores else "")
        for name, value in baselines.items()
        if name in names
    ]
    if "seasonal_naive" not in baselines:
        shown.append("no seasonal naive (no season found; give --period)" if not period
                     else f"no seasonal naive (the history is shorter than the period {period})")  # fmt: skip
    return ", ".join(shown)


def format_interval(interval: dict[str, Any]) -> str:
    """``90% intervals (split conformal): test coverage by horizon 1: 0.91 (width 1.2), ...``."""
    steps = zip(interval["coverage_by_horizon"], interval["width_by_horizon"], strict=True)
    shown = ", ".join(
        f"{h}: {cover:.3f} (half-width {width:.4g})" for h, (cover, width) in enumerate(steps, 1)
    )
    level = f"{interval['level']:.0%}"
    return f"{level} intervals (split conformal, validation part): test coverage by horizon {shown}"


def format_horizon_table(scores: dict[str, Any], rows: int = 24) -> str:
    """RMSE by horizon, the model (rolled out, and a direct model's own forecasts) beside the
    baselines: at most `rows` rows, spread to the longest."""
    names, model = list(scores["baselines_by_horizon"]), scores["rmse_by_horizon"]
    # The first half of the rows horizon by horizon, the rest spread to the longest.
    half, last = rows // 2, len(model) - 1
    shown = sorted({*range(min(len(model), half)), *(round(i * last / (half - 1)) for i in range(half))})
    some = f", {len(shown)} of {len(model)} horizons" if len(shown) < len(model) else ""
    direct = scores.get("direct_rmse_by_horizon")
    header = f"{'h':>5} {'model':>12} " + (f"{'direct':>12} " if direct else "")
    lines = [f"RMSE by horizon on the {scores['targets']} test targets (rolled out, series units{some}):",
             header + " ".join(f"{name:>15}" for name in names)]  # fmt: skip
    for h in shown:
        row = " ".join(f"{scores['baselines_by_horizon'][name][h]:>15.6g}" for name in names)
        beside = "" if not direct else f"{direct[h]:>12.6g} " if h < len(direct) else f"{'':>12} "
        lines.append(f"{h + 1:>5} {model[h]:>12.6g} {beside}{row}")
    return "\n".join(lines)
