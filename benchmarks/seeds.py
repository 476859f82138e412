"""Accuracy and training time of presets over several seeds, as a Markdown table.

    python benchmarks/seeds.py --presets legacy sequence --seeds 5 [--engines fast] [--steps 3000 6000]
    python benchmarks/seeds.py --presets legacy-exact --fits 3000 3000

Each run is a full `tf_sine.run_experiment` in a temporary run directory. Prints one row per
preset, engine and step count: median and range of the test RMSE, median `train_seconds`.
With `--fits`, each run is instead the source script run once per count on one `model_dir`:
`LegacyRegressor.fit` calls of that many steps (a new DataFeeder each, with ``datafeeder``
batches), scored as the script scores (RMSE of the squeezed predictions on the test windows).
"""

import argparse
import itertools
import json
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tf_sine.compat import LegacyRegressor
from tf_sine.config import ENGINES, MODEL_FIELDS, PRESETS, Config, get_preset
from tf_sine.data import generate_data, sine_series
from tf_sine.evaluation import rmse
from tf_sine.pipeline import run_experiment


def script_runs(config: Config, fits: list[int], seed: int, model_dir: str) -> dict[str, float]:
    """The source script run once per entry of `fits` on one `model_dir`: its test RMSE."""
    train_seq, test_seq = sine_series()
    (train_x, train_y), (test_x, test_y) = generate_data(train_seq), generate_data(test_seq)
    options = {
        name: getattr(config, name)
        for name in MODEL_FIELDS
        if name not in ("timesteps", "layout", "features")
    }
    start = time.perf_counter()
    for steps in fits:
        regressor = LegacyRegressor(model_dir, seed=seed, batches=config.batches, **options)
        regressor.fit(train_x, train_y, batch_size=config.batch_size, steps=steps)
    seconds = time.perf_counter() - start
    return {"rmse": rmse(regressor.predict(test_x), test_y.reshape(-1)), "train_seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["legacy"], choices=tuple(PRESETS))
    parser.add_argument("--engines", nargs="+", default=["fast"], choices=tuple(ENGINES))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, nargs="+", help="step counts instead of the presets' own")
    parser.add_argument("--fits", type=int, nargs="+", help="steps of successive fits on one model_dir")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for preset in args.presets:
            for engine, steps in itertools.product(args.engines, args.steps or [None]):
                config = get_preset(preset).replace(engine=engine)
                if steps:
                    config = config.replace(steps=steps)
                folders = [f"{scratch}/{preset}-{engine}-{steps}-{seed}" for seed in range(args.seeds)]
                if args.fits:
                    config = config.replace(steps=sum(args.fits))
                    runs = [script_runs(config, args.fits, seed, folders[seed]) for seed in range(args.seeds)]
                else:
                    runs = [
                        run_experiment(config.replace(seed=seed), folders[seed], progress=False).metrics
                        for seed in range(args.seeds)
                    ]
                rmse = [run["rmse"] for run in runs]
                seconds = [run["train_seconds"] for run in runs]
                rows.append(
                    {
                        "preset": preset,
                        "engine": engine,
                        "steps": " + ".join(map(str, args.fits)) if args.fits else config.steps,
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
