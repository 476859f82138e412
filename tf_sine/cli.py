"""The command line: `python -m tf_sine` / `tf-sine`.

    tf-sine                          # the source experiment: train the legacy preset
    tf-sine train --cell gru --layout sequence --steps 2000
    tf-sine evaluate --model runs/RUN
    tf-sine predict --model runs/RUN --input series.txt --output predictions.txt

The only module that knows about argv, exit codes and the terminal. Library errors
(`ValueError`/`TypeError`) become one line on stderr and exit status 2; TensorFlow is imported
only after the arguments have been checked.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from tf_sine.config import CELLS, ENGINES, LAYOUTS, OPTIMIZERS, PRESETS, Config, ConfigError, get_preset

PROGRAM = "tf-sine"
EXIT_USAGE = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM

# Config field -> CLI flag, where they differ by more than '_' vs '-'.
_FLAGS = {"num_layers": "--layers", "seq": "--input", "x": "--input", "preset": "--preset"}


def flag_for(argument: str) -> str:
    """The CLI flag that sets a configuration field or library argument."""
    return _FLAGS.get(argument, "--" + argument.replace("_", "-"))


class _Parser(argparse.ArgumentParser):
    """An `ArgumentParser` whose errors are one line (no usage block) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{PROGRAM}: error: {message} (see {self.prog} --help)\n")


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
    for action in group._group_actions:
        if action.dest != "preset":
            action.default = argparse.SUPPRESS


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with its subcommands `train`, `evaluate` and `predict`."""
    parser = _Parser(prog=PROGRAM, description="Train and use the port of the TF1 sine-wave LSTM.")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")

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

    evaluate = commands.add_parser("evaluate", help="score a saved model on the source's test windows")
    evaluate.add_argument("--model", required=True, help="a .keras file or a run directory")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")

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
    compare = commands.add_parser(
        "compare", help="SimpleRNN, LSTM, GRU, bidirectional and deep LSTM side by side"
    )
    compare.add_argument("--steps", type=int, default=3000, help="optimizer steps per run (default 3000)")
    compare.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2], help="one run per seed (default 0 1 2)"
    )
    compare.add_argument(
        "--layout", choices=tuple(LAYOUTS), default="sequence", help="window layout (default sequence)"
    )
    compare.add_argument(
        "--out", help="folder for compare.json and compare.png (default: a new one under runs/)"
    )

    gradients = commands.add_parser(
        "gradients", help="input-gradient norm by time step, for SimpleRNN, LSTM, GRU"
    )
    gradients.add_argument("--steps", type=int, default=1000, help="training steps per cell (default 1000)")
    gradients.add_argument("--timesteps", type=int, default=100, help="window length (default 100)")
    gradients.add_argument(
        "--out", help="folder for gradients.json and gradients.png (default: a new one under runs/)"
    )
    memory = commands.add_parser("memory", help="the adding problem: where each cell stops remembering")
    memory.add_argument("--steps", type=int, default=2000, help="training steps per run (default 2000)")
    memory.add_argument("--lengths", type=int, nargs="+", default=[10, 50, 100, 200],
                        help="sequence lengths T (default 10 50 100 200)")  # fmt: skip
    memory.add_argument("--out", help="folder for memory.json (default: a new one under runs/)")
    clipping = commands.add_parser("clipping", help="a diverging setting with and without gradient clipping")
    clipping.add_argument("--steps", type=int, default=600, help="training steps per option (default 600)")
    clipping.add_argument(
        "--out", help="folder for clipping.json and its figures (default: a new one under runs/)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv.insert(0, "train")  # `python -m tf_sine` runs the source experiment
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported
    # One inter-op thread: training runs one chain of small ops, and handing them between
    # threads cost 9% on the sequence preset here (matmuls still use every core).
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    # TensorFlow's Python warnings (e.g. retracing notes when many models predict) are not ours.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    args = build_parser().parse_args(argv)
    received: list[int] = []
    _stop_on_sigterm(received)
    try:
        return _COMMANDS[args.command](args)
    except (ValueError, TypeError) as error:
        return _fail(error)
    except KeyboardInterrupt:
        how = "terminated" if received else "interrupted"
        hint = "; run the same command to resume" if args.command == "train" else ""
        print(f"{PROGRAM}: {how}{hint}", file=sys.stderr)
        return EXIT_TERMINATED if received else EXIT_INTERRUPTED


def _stop_on_sigterm(received: list[int]) -> None:
    """SIGTERM stops training like Ctrl-C: a final checkpoint, then exit status 143."""

    def handler(signum: int, frame: Any) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _fail(error: Exception) -> int:
    if isinstance(error, ConfigError):
        message = f"argument {flag_for(error.argument)}: {error.detail}"
    else:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    print(f"{PROGRAM}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def config_from_args(args: argparse.Namespace) -> Config:
    """The preset named by ``--preset`` with every given flag applied."""
    overrides = {name: value for name, value in vars(args).items() if name in Config.__dataclass_fields__}
    return get_preset(args.preset).replace(**overrides)


def _train(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    from tf_sine.pipeline import run_experiment
    from tf_sine.training import TrainingDivergedError

    try:
        result = run_experiment(
            config, args.run_dir, tensorboard=args.tensorboard, progress=not args.quiet,
            run_prefix=args.preset, overwrite=args.overwrite, notify=_note,
        )  # fmt: skip
    except TrainingDivergedError as error:
        print(f"{PROGRAM}: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    metrics = result.metrics
    print(_format_metrics(metrics))
    print(
        f"trained {metrics['steps']} steps in {metrics['train_seconds']:.2f} s ({config.engine} engine); "
        f"run directory: {result.run.path}"
    )
    return 0


def _note(message: str) -> None:
    print(f"{PROGRAM}: {message}", file=sys.stderr)


def _format_metrics(metrics: dict[str, Any]) -> str:
    return (
        f"test RMSE {metrics['rmse']:.6f} (root mean squared error; the source printed it as "
        f"'Mean Square Error'), MSE {metrics['mse']:.3e}, MAE {metrics['mae']:.6f}"
    )


def _evaluate(args: argparse.Namespace) -> int:
    from tf_sine.data import layout_of, sine_windows
    from tf_sine.evaluation import evaluate
    from tf_sine.runs import load_model

    model, _ = load_model(args.model)
    timesteps, layout = layout_of(model.input_shape)
    _, _, test_x, test_y = sine_windows(timesteps, layout)
    metrics, _ = evaluate(model, test_x, test_y)
    print(json.dumps(metrics) if args.json else _format_metrics(metrics))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from tf_sine.data import all_windows, layout_of
    from tf_sine.evaluation import predict
    from tf_sine.runs import atomic_write, load_model

    series = read_series(args.input)
    model, _ = load_model(args.model)
    timesteps, layout = layout_of(model.input_shape)
    predictions = predict(model, all_windows(series, timesteps, layout)).reshape(-1)
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
    import numpy as np

    from tf_sine.data import as_series

    if source != "-" and not Path(source).is_file():
        raise ConfigError("input", f"expected an existing file or '-' for stdin, got {source!r}")
    if source.endswith(".npy"):
        try:
            values = np.load(source, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise ConfigError("input", f"cannot read {source!r} as a .npy array: {error}") from None
    else:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
        tokens = text.replace(",", " ").split()
        try:
            values = np.array([float(token) for token in tokens])
        except ValueError as error:
            raise ConfigError("input", f"expected numbers, got {str(error).split(': ', 1)[-1]}") from None
    return as_series(values, "input")


def _study_folder(out: str | None, prefix: str) -> Path:
    from tf_sine.runs import RunDirectory

    return RunDirectory.create(out, prefix=prefix).path


def _compare(args: argparse.Namespace) -> int:
    config = Config(layout=args.layout, steps=args.steps)  # validates --steps before any work
    folder = _study_folder(args.out, "compare")
    from tf_sine import plotting
    from tf_sine.experiments import compare
    from tf_sine.runs import atomic_write, write_json

    rows = compare(config, seeds=args.seeds)
    write_json(folder / "compare.json", rows)
    ax = plotting.plot_compare(rows)
    atomic_write(folder / "compare.png", lambda path: plotting.save_figure(ax, path))
    seeds = " ".join(map(str, args.seeds))
    print(f"{args.layout} layout, {args.steps} steps, median over seeds {seeds}:")
    print(f"{'configuration':<20} {'parameters':>10} {'train s':>8} {'test RMSE':>10}")
    for row in rows:
        print(f"{row['name']:<20} {row['parameters']:>10,} {row['train_seconds']:>8.2f} {row['rmse']:>10.6f}")
    print(f"written: {folder / 'compare.json'}, {folder / 'compare.png'}")
    return 0


def _gradients(args: argparse.Namespace) -> int:
    Config(layout="sequence", timesteps=args.timesteps, steps=args.steps)  # validates the flags
    folder = _study_folder(args.out, "gradients")
    from tf_sine import plotting
    from tf_sine.experiments import gradient_study
    from tf_sine.runs import atomic_write, write_json

    study = gradient_study(timesteps=args.timesteps, steps=args.steps)
    write_json(folder / "gradients.json", study)
    ax = plotting.plot_input_gradients(study)
    atomic_write(folder / "gradients.png", lambda path: plotting.save_figure(ax, path))
    print(f"|d loss / d input| at the first of {args.timesteps} steps, relative to the last step:")
    for cell, result in study.items():
        first = {stage: result[stage][0] / result[stage][-1] for stage in ("initial", "trained")}
        print(
            f"{cell:<12} initial {first['initial']:.3g}   after {args.steps} steps {first['trained']:.3g}"
            f"   (test RMSE {result['test_rmse']:.4f})"
        )
    print(f"for comparison: 0.99^{args.timesteps} = {0.99**args.timesteps:.3g}, 1.1^{args.timesteps} = "
          f"{1.1**args.timesteps:.4g}; written: {folder / 'gradients.png'}")  # fmt: skip
    return 0


def _memory(args: argparse.Namespace) -> int:
    Config(steps=args.steps)  # validates --steps before any work
    for length in args.lengths:
        if length < 2:
            raise ConfigError("lengths", f"expected sequence lengths of at least 2, got {length}")
    folder = _study_folder(args.out, "memory")
    from tf_sine.experiments import ADDING_BASELINE_MSE, memory_study
    from tf_sine.runs import write_json

    rows = memory_study(lengths=args.lengths, steps=args.steps)
    write_json(folder / "memory.json", rows)
    cells = list(dict.fromkeys(row["cell"] for row in rows))
    baseline = f"{ADDING_BASELINE_MSE:.3f}"
    print(
        f"adding problem, {args.steps} steps: test MSE / baseline MSE {baseline} (near 1: nothing remembered)"
    )
    print(f"{'T':>5} " + " ".join(f"{cell:>11}" for cell in cells))
    for length in args.lengths:
        ratios = {row["cell"]: row["ratio"] for row in rows if row["timesteps"] == length}
        print(f"{length:>5} " + " ".join(f"{ratios[cell]:>11.3f}" for cell in cells))
    print(f"written: {folder / 'memory.json'}")
    return 0


def _clipping(args: argparse.Namespace) -> int:
    Config(steps=args.steps)  # validates --steps before any work
    folder = _study_folder(args.out, "clipping")
    from tf_sine import plotting
    from tf_sine.experiments import clipping_study
    from tf_sine.runs import atomic_write, write_json

    study = clipping_study(steps=args.steps)
    write_json(folder / "clipping.json", study)
    for name, plot in (("clipping_loss.png", plotting.plot_clipping_losses),
                       ("clipping_norms.png", plotting.plot_clipping_norms)):  # fmt: skip
        ax = plot(study)
        atomic_write(folder / name, lambda path, ax=ax: plotting.save_figure(ax, path))
    print(f"2 x LSTM(30), 50-step windows, SGD at learning rate 1.0, {args.steps} steps:")
    for name, result in study.items():
        outcome = (f"diverged at step {result['diverged_at']}" if result["diverged_at"]
                   else f"test RMSE {result['test_rmse']:.4f}")  # fmt: skip
        print(f"{name:<16} {outcome:<28} gradient norm: largest {max(result['norm_before']):.3g}, "
              f"after clipping {max(result['norm_after']):.3g}")  # fmt: skip
    print(f"written: {folder / 'clipping.json'}, clipping_loss.png, clipping_norms.png")
    return 0


_COMMANDS = {
    "train": _train,
    "evaluate": _evaluate,
    "predict": _predict,
    "compare": _compare,
    "gradients": _gradients,
    "memory": _memory,
    "clipping": _clipping,
}
