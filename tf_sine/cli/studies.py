"""The studies of the source text's claims: `compare`, `gradients`, `memory`, `clipping`."""

from __future__ import annotations

import argparse
from typing import Any

from tf_sine.config import LAYOUTS, Config


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Adds the study subcommands to the CLI's parser."""
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


def _run(name: str, out: str | None, **parameters: Any) -> tuple[Any, str]:
    from tf_sine.experiments import run_study

    result, written = run_study(name, out, **parameters)
    return result.data, "written: " + ", ".join(map(str, written))


def _compare(args: argparse.Namespace) -> int:
    rows, written = _run(
        "compare", args.out, base=Config(layout=args.layout), seeds=args.seeds, steps=args.steps
    )
    print(f"{args.layout} layout, {args.steps} steps, median over seeds {' '.join(map(str, args.seeds))}:")
    print(f"{'configuration':<20} {'parameters':>10} {'train s':>8} {'test RMSE':>10}")
    for row in rows:
        print(f"{row['name']:<20} {row['parameters']:>10,} {row['train_seconds']:>8.2f} {row['rmse']:>10.6f}")
    print(written)
    return 0


def _gradients(args: argparse.Namespace) -> int:
    study, written = _run("gradients", args.out, timesteps=args.timesteps, steps=args.steps)
    print(f"|d loss / d input| at the first of {args.timesteps} steps, relative to the last step:")
    for cell, result in study.items():
        first = {stage: result[stage][0] / result[stage][-1] for stage in ("initial", "trained")}
        print(
            f"{cell:<12} initial {first['initial']:.3g}   after {args.steps} steps {first['trained']:.3g}"
            f"   (test RMSE {result['test_rmse']:.4f})"
        )
    print(f"for comparison: 0.99^{args.timesteps} = {0.99**args.timesteps:.3g}, "
          f"1.1^{args.timesteps} = {1.1**args.timesteps:.4g}")  # fmt: skip
    print(written)
    return 0


def _memory(args: argparse.Namespace) -> int:
    rows, written = _run("memory", args.out, lengths=args.lengths, steps=args.steps)
    cells = list(dict.fromkeys(row["cell"] for row in rows))
    print(f"adding problem, {args.steps} steps: test MSE / baseline MSE {rows[0]['baseline_mse']:.3f} "
          "(near 1: nothing remembered)")  # fmt: skip
    print(f"{'T':>5} " + " ".join(f"{cell:>11}" for cell in cells))
    for length in args.lengths:
        ratios = {row["cell"]: row["ratio"] for row in rows if row["timesteps"] == length}
        print(f"{length:>5} " + " ".join(f"{ratios[cell]:>11.3f}" for cell in cells))
    print(written)
    return 0


def _clipping(args: argparse.Namespace) -> int:
    study, written = _run("clipping", args.out, steps=args.steps)
    print(f"2 x LSTM(30), 50-step windows, SGD at learning rate 1.0, {args.steps} steps:")
    for name, result in study.items():
        outcome = (f"diverged at step {result['diverged_at']}" if result["diverged_at"]
                   else f"test RMSE {result['test_rmse']:.4f}")  # fmt: skip
        print(f"{name:<16} {outcome:<28} gradient norm: largest {max(result['norm_before']):.3g}, "
              f"after clipping {max(result['norm_after']):.3g}")  # fmt: skip
    print(written)
    return 0


COMMANDS = {"compare": _compare, "gradients": _gradients, "memory": _memory, "clipping": _clipping}
