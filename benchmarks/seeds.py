"""Accuracy and training time of presets over several seeds, as a Markdown table.

    python benchmarks/seeds.py --presets legacy sequence --seeds 5 [--engines fast] [--steps 3000 6000]

Each run is a full `tf_sine.run_experiment` in a temporary run directory. Prints one row per
preset, engine and step count: median and range of the test RMSE, median `train_seconds`.
"""

import argparse
import itertools
import json
import os
import statistics
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tf_sine.config import ENGINES, PRESETS, get_preset
from tf_sine.pipeline import run_experiment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["legacy"], choices=tuple(PRESETS))
    parser.add_argument("--engines", nargs="+", default=["fast"], choices=tuple(ENGINES))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, nargs="+", help="step counts instead of the presets' own")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for preset in args.presets:
            for engine, steps in itertools.product(args.engines, args.steps or [None]):
                config = get_preset(preset).replace(engine=engine)
                if steps:
                    config = config.replace(steps=steps)
                runs = [
                    run_experiment(
                        config.replace(seed=seed),
                        f"{scratch}/{preset}-{engine}-{steps}-{seed}",
                        progress=False,
                    ).metrics
                    for seed in range(args.seeds)
                ]
                rmse = [run["rmse"] for run in runs]
                seconds = [run["train_seconds"] for run in runs]
                rows.append(
                    {
                        "preset": preset,
                        "engine": engine,
                        "steps": config.steps,
                        "seeds": args.seeds,
                        "rmse_median": statistics.median(rmse),
                        "rmse_min": min(rmse),
                        "rmse_max": max(rmse),
                        "train_seconds_median": statistics.median(seconds),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    print("\n| preset | engine | steps | test RMSE, median of seeds (min-max) | train seconds (median) |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['preset']} | {row['engine']} | {row['steps']} | {row['rmse_median']:.6f} "
            f"({row['rmse_min']:.6f}-{row['rmse_max']:.6f}) | {row['train_seconds_median']:.2f} |"
        )


if __name__ == "__main__":
    main()
