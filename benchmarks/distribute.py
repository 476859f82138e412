"""One process against two MultiWorkerMirroredStrategy workers on this machine, side by side.

    python benchmarks/distribute.py [--repeats 3] [--json out.json]

Each configuration trains the source experiment (3000 steps, global batch 32) as real
`python -m tf_sine train` processes: once alone, once as two workers on 127.0.0.1 (TF_CONFIG),
each worker taking 16 windows of every step. Prints steps per second (median of repeats; the
chief's train_seconds, tracing included) and the whole-command wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tf_sine.distribute import local_tf_configs

ROOT = Path(__file__).resolve().parents[1]
STEPS = 3000


def run(layout: str, workers: int, run_dir: Path) -> dict:
    """Trains once with `workers` processes (1: no strategy); returns the chief's timings."""
    command = [sys.executable, "-m", "tf_sine", "train", "--layout", layout, "--steps", str(STEPS),
               "--run-dir", str(run_dir), "--quiet"]  # fmt: skip
    base = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    began = time.perf_counter()
    if workers == 1:
        processes = [subprocess.Popen(command, cwd=ROOT, env=base, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True)]  # fmt: skip
    else:
        processes = []
        for tf_config in local_tf_configs(workers):
            env = dict(base, TF_CONFIG=tf_config)
            worker = [*command, "--distribute", "multi-worker"]
            processes.append(subprocess.Popen(worker, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.PIPE, text=True))  # fmt: skip
    for process in processes:
        _, err = process.communicate(timeout=900)
        if process.returncode:
            raise RuntimeError(err[-2000:])
    wall = time.perf_counter() - began
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {"train_seconds": metrics["train_seconds"], "wall_seconds": wall, "rmse": metrics["rmse"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layouts", nargs="+", default=["legacy", "sequence"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for layout in args.layouts:
            results: dict[int, list[dict]] = {1: [], 2: []}
            for repeat in range(args.repeats):  # interleaved, so drifts in load hit both alike
                for workers in (1, 2):
                    results[workers].append(
                        run(layout, workers, Path(scratch) / f"{layout}-{workers}-{repeat}")
                    )
            for workers, runs in results.items():
                seconds = statistics.median(r["train_seconds"] for r in runs)
                row = {"layout": layout, "workers": workers, "train_seconds": seconds,
                       "steps_per_second": STEPS / seconds,
                       "wall_seconds": statistics.median(r["wall_seconds"] for r in runs),
                       "rmse": statistics.median(r["rmse"] for r in runs)}  # fmt: skip
                rows.append(row)
                print(json.dumps(row), flush=True)
    print("\n| layout | workers | train seconds | steps/s | whole command, s | test RMSE |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['layout']} | {row['workers']} | {row['train_seconds']:.2f} "
            f"| {row['steps_per_second']:.0f} | {row['wall_seconds']:.1f} | {row['rmse']:.6f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
