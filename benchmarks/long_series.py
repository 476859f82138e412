"""Peak memory and time for a long series: windows, training and prediction on 10^7 points.

    python benchmarks/long_series.py --points 10000000

Reports the process's peak RSS after each stage (`resource.getrusage`), so a stage that copied
the data more than once would show. Windows are cut with a strided view and one float32 copy
(`generate_data`), never as Python lists.
"""

import argparse
import json
import os
import resource
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

import tf_sine


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000_000)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    report = {"points": args.points}
    began = time.perf_counter()
    series = np.sin(np.arange(args.points, dtype=np.float32) * np.float32(0.01))
    x, y = tf_sine.generate_data(series)
    seconds = time.perf_counter() - began
    report.update(windows=len(x), window_mib=x.nbytes / 2**20, windows_seconds=seconds)
    report.update(after_windows_mib=peak_mib())
    model = tf_sine.build_model(units=30)
    result = tf_sine.train(model, x, y, steps=args.steps, progress=False)
    report.update(train_steps=args.steps, train_seconds=result.train_seconds, after_training_mib=peak_mib())
    began = time.perf_counter()
    predictions = tf_sine.predict(model, x)
    report.update(predict_seconds=time.perf_counter() - began, predictions=len(predictions),
                  after_prediction_mib=peak_mib())  # fmt: skip
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in report.items()}, indent=1))


if __name__ == "__main__":
    main()
