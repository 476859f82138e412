"""tf_sine's training engines against the reference trainers, side by side in one invocation.

    python benchmarks/engines.py --peer-python /path/to/venv-with-torch-and-jax/bin/python
    python benchmarks/engines.py --peer-python ... --cases legacy sequence large legacy-30000 sequence-30000
    python benchmarks/engines.py --sweep            # scaling: timesteps, units, batch size
    python benchmarks/engines.py --predict          # prediction throughput
    python benchmarks/engines.py --kernels          # one LSTM layer: native kernel against BlockLSTM
    python benchmarks/engines.py --max-isa avx2 ... # every engine, peers and peak held to AVX2 code

Every run is a fresh subprocess, so each pays its own imports, tracing and compilation, and its
peak RSS is its own (from `os.wait4`). tf_sine runs are `python -m tf_sine train` (their
`train_seconds` comes from metrics.json); the references in ../shared/bench print theirs. The
references run only when `--peer-python` can import their framework. Prints a Markdown table
and writes all numbers as JSON (`--json`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BENCH = ROOT.parent / "shared" / "bench"
PEERS = {
    "pytorch eager": ("reference_torch.py", "torch"),
    "keras-jax fit": ("reference_keras_jax.py", "jax"),
    "jax scan": ("reference_jax_scan.py", "jax"),
}
# The cases timed side by side: (layout, changes to the preset's flags). The reference
# trainers take the same flags (../shared/bench/common.py).
CASES = {
    "legacy": ("legacy", {}),
    "sequence": ("sequence", {}),
    "large": ("sequence", {"timesteps": 100, "units": 128, "steps": 300}),
    "legacy-30000": ("legacy", {"steps": 30000}),
    "sequence-30000": ("sequence", {"steps": 30000}),
}
PRESET_SHAPE = {"timesteps": 10, "units": 30, "steps": 3000}
# What holds every process of a run (the peak's, tf_sine's, the peers') to one instruction set, so
# that an AVX-512 machine runs the code an AVX2 machine would: oneDNN (TensorFlow's and PyTorch's
# matmuls and PyTorch's LSTM), MKL and ATen (PyTorch), XLA (JAX) and tf_sine's own kernels.
# TensorFlow's Eigen kernels are compiled into its wheel and are not capped.
MAX_ISA = {
    "avx2": {
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "ATEN_CPU_CAPABILITY": "avx2",
        "XLA_FLAGS": "--xla_cpu_max_isa=AVX2",
        "TF_SINE_NATIVE_MARCH": "-march=x86-64-v3",
    },
}
# tf_sine's rows: (engine, environment). "fallback" is the fast engine without the native
# kernels (TF_SINE_NATIVE=0), what a machine without a C++ compiler gets.
# "per-op" is the fast engine's graph of per-layer native ops, without the training op
# (TF_SINE_WHOLE_STEPS=0): what the whole-step op gains.
TF_SINE_ROWS = {
    "fast": ("fast", {}),
    "per-op": ("fast", {"TF_SINE_WHOLE_STEPS": "0"}),
    "fallback": ("fast", {"TF_SINE_NATIVE": "0"}),
    "fit": ("fit", {}),
}


# Runs argv[1:] and reports that one child's peak RSS: RUSAGE_CHILDREN of a fresh wrapper
# process covers exactly one child.
_RSS_WRAPPER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[1:])\n"
    "sys.stderr.write('PEAK_RSS_KIB %d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(code)\n"
)


def run_measured(
    command: list[str], cwd: Path, env: dict[str, str] | None = None
) -> tuple[str, float, float]:
    """Runs `command`; returns (stdout, wall seconds, peak RSS in MiB) of that process alone."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _RSS_WRAPPER, *command], cwd=cwd, env=env,
                          capture_output=True, text=True)  # fmt: skip
    wall = time.perf_counter() - began
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    peak = next(line for line in done.stderr.splitlines() if line.startswith("PEAK_RSS_KIB"))
    return done.stdout, wall, int(peak.split()[1]) / 1024


def training_flops(layout: str, steps: int, batch: int, units: int, layers: int, timesteps: int) -> float:
    """Matmul FLOPs of LSTM training: forward 2*B*T*(F+u)*4u per layer, backward twice that."""
    time_steps, features = (1, timesteps) if layout == "legacy" else (timesteps, 1)
    forward = 0.0
    for layer in range(layers):
        inputs = features if layer == 0 else units
        forward += 2 * batch * time_steps * (inputs + units) * 4 * units
    forward += 2 * batch * units  # the Dense head
    return 3 * forward * steps


_PEAK_PROGRAM = """
import os, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import tensorflow as tf
a = tf.random.normal([2048, 2048]); b = tf.random.normal([2048, 2048])
product = tf.function(lambda: tf.linalg.matmul(a, b))
product().numpy()
seconds = []
for _ in range(20):
    began = time.perf_counter()
    product().numpy()
    seconds.append(time.perf_counter() - began)
print(2 * 2048 ** 3 / min(seconds) / 1e9)
"""


def fma_peak_gflops(scratch: Path) -> float:
    """This machine's fp32 multiply-add ceiling, GFLOP/s: benchmarks/fma_peak.cc built for the
    native kernels' target (held by `--max-isa` as they are) and run on every core at once, all
    copies the same rounds, their medians summed."""
    from tf_sine import native

    program = scratch / "fma_peak"
    subprocess.run([*native.compiler(), "-O2", "-ffp-contract=fast", *native.target_flags(),
                    str(ROOT / "benchmarks" / "fma_peak.cc"), "-o", str(program)], check=True)  # fmt: skip
    rounds = subprocess.run([str(program)], capture_output=True, text=True, check=True).stdout.split()[2]
    copies = [subprocess.Popen([str(program), rounds], stdout=subprocess.PIPE, text=True)
              for _ in range(len(os.sched_getaffinity(0)))]  # fmt: skip
    return sum(float(copy.communicate()[0].split()[0]) for copy in copies)  # each copy's median


def measured_peak_gflops() -> float:
    """This machine's fp32 matmul throughput, GFLOP/s: the best of 20 TensorFlow 2048^3 products
    on all cores (what a library reaches on a large product; `fma_peak_gflops` is the ceiling)."""
    done = subprocess.run([sys.executable, "-c", _PEAK_PROGRAM], capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def case_flags(case: str) -> tuple[str, dict[str, int], list[str]]:
    """`(layout, shape, flags)` of a case: the shape (timesteps, units, steps) and its CLI flags."""
    layout, changes = CASES[case]
    shape = {**PRESET_SHAPE, **changes}
    flags = [item for name, value in changes.items() for item in (f"--{name}", str(value))]
    return layout, shape, flags


def tf_sine_run(
    engine: str, layout: str, scratch: Path, extra: list[str], tag: str, env: dict[str, str] | None = None
) -> dict:
    run_dir = scratch / tag
    command = [sys.executable, "-m", "tf_sine", "train", "--engine", engine, "--layout", layout,
               "--run-dir", str(run_dir), "--quiet", *extra]  # fmt: skip
    _, wall, rss = run_measured(command, ROOT, env)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    return {"train_seconds": metrics["train_seconds"], "rmse": metrics["rmse"], "wall_seconds": wall,
            "peak_rss_mib": rss, "kernel": metrics.get("kernel"), "config": config}  # fmt: skip


def peer_run(name: str, python: str, bench: Path, layout: str, flags: list[str]) -> dict:
    script, _ = PEERS[name]
    stdout, wall, rss = run_measured([python, str(bench / script), "--layout", layout, *flags], bench)
    result = json.loads(stdout.strip().splitlines()[-1])
    return {"train_seconds": result["train_seconds"], "rmse": result["rmse"], "wall_seconds": wall,
            "peak_rss_mib": rss}  # fmt: skip


def peers_available(python: str | None, bench: Path) -> list[str]:
    if not python or not bench.is_dir():
        return []
    found = []
    for name, (_, module) in PEERS.items():
        probe = subprocess.run([python, "-c", f"import {module}"], capture_output=True)
        if probe.returncode == 0:
            found.append(name)
    return found


def median_of(runs: list[dict]) -> dict:
    summary = dict(runs[0])
    for key in ("train_seconds", "rmse", "wall_seconds", "peak_rss_mib"):
        summary[key] = statistics.median(run[key] for run in runs)
    summary["train_seconds_all"] = [run["train_seconds"] for run in runs]
    return summary


def compare(args: argparse.Namespace, scratch: Path) -> list[dict]:
    """Each case's tf_sine rows and peers, interleaved repeats, medians and ratios."""
    peers = peers_available(args.peer_python, args.bench)
    peak, fma_peak = measured_peak_gflops(), fma_peak_gflops(scratch)
    print(json.dumps({"fp32_peak_gflops": peak, "fp32_fma_peak_gflops": fma_peak}), flush=True)
    rows = []
    for case in args.cases:
        layout, shape, flags = case_flags(case)
        tf_sine_flags = [*flags, "--checkpoint-every", str(shape["steps"])]
        # fit beyond the presets' own shape takes many minutes and says nothing new
        skip_fit = args.skip_fit or shape != PRESET_SHAPE
        # At 30000 steps only the strongest peer: PyTorch eager would take many minutes a run.
        case_peers = [p for p in peers if shape["steps"] <= 3000 or p == "jax scan"]
        results: dict[str, list[dict]] = {}
        for repeat in range(args.repeats):  # interleaved, so drifts in machine load hit all alike
            for row, (engine, env) in TF_SINE_ROWS.items():
                if row == "fit" and skip_fit:
                    continue
                run = tf_sine_run(engine, layout, scratch, tf_sine_flags, f"{case}-{row}-{repeat}", env)
                results.setdefault(f"tf_sine {row}", []).append(run)
            for name in case_peers:
                run = peer_run(name, args.peer_python, args.bench, layout, flags)
                results.setdefault(name, []).append(run)
        summaries = {name: median_of(runs) for name, runs in results.items()}
        fastest_peer = min((summaries[name]["train_seconds"] for name in case_peers), default=None)
        flops = training_flops(layout, shape["steps"], 32, shape["units"], 2, shape["timesteps"])
        for name, summary in summaries.items():
            rate = flops / summary["train_seconds"] / 1e9
            row = {"case": case, "engine": name, **summary, "gflops_per_second": rate,
                   "fraction_of_peak": rate / peak, "fraction_of_fma_peak": rate / fma_peak}  # fmt: skip
            if fastest_peer:
                row["ratio_to_fastest_peer"] = summary["train_seconds"] / fastest_peer
            row.pop("config", None)
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


SWEEP = [  # (timesteps, units, batch, steps): one factor at a time from the sequence preset;
    # 500 is near the longest window the source's 1000-point test series allows (998)
    (10, 30, 32, 1000), (100, 30, 32, 300), (500, 30, 32, 60),
    (10, 128, 32, 500), (10, 512, 32, 100),
    (10, 30, 256, 500), (100, 512, 256, 10),
]  # fmt: skip


def sweep(scratch: Path) -> list[dict]:
    peak = measured_peak_gflops()
    rows = []
    for timesteps, units, batch, steps in SWEEP:
        extra = ["--timesteps", str(timesteps), "--units", str(units), "--batch-size", str(batch),
                 "--steps", str(steps), "--checkpoint-every", str(steps)]  # fmt: skip
        tag = f"sweep-{timesteps}-{units}-{batch}"
        run = tf_sine_run("fast", "sequence", scratch, extra, tag)
        flops = training_flops("sequence", steps, batch, units, 2, timesteps)
        row = {"timesteps": timesteps, "units": units, "batch_size": batch, "steps": steps,
               "train_seconds": run["train_seconds"], "ms_per_step": 1000 * run["train_seconds"] / steps,
               "gflops_per_second": flops / run["train_seconds"] / 1e9,
               "fraction_of_peak": flops / run["train_seconds"] / 1e9 / peak, "peak_gflops": peak,
               "peak_rss_mib": run["peak_rss_mib"]}  # fmt: skip
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def plot_sweep(rows: list[dict], folder: Path) -> None:
    """Writes sweep_timesteps.png (cost against sequence length) and sweep_units.png (GFLOP/s)."""
    from tf_sine import plotting

    folder.mkdir(parents=True, exist_ok=True)
    by_length = [r for r in rows if r["units"] == 30 and r["batch_size"] == 32]
    ax = plotting.plot_scaling(by_length, "timesteps", "ms_per_step", "tf_sine fast, units 30, batch 32")
    ax.set_title("training cost per step grows linearly with sequence length")
    plotting.save_figure(ax, folder / "sweep_timesteps.png")
    by_units = [r for r in rows if r["timesteps"] == 10 and r["batch_size"] == 32]
    ax = plotting.plot_scaling(by_units, "units", "gflops_per_second", "tf_sine fast, timesteps 10, batch 32")
    peak = rows[0]["peak_gflops"]
    ax.axhline(peak, color="grey", linestyle=":", label=f"fp32 matmul peak {peak:.0f} GFLOP/s (measured)")
    ax.legend()
    ax.set_title("achieved matmul throughput")
    plotting.save_figure(ax, folder / "sweep_units.png")


def predict_throughput(scratch: Path) -> list[dict]:
    """Windows per second of `tf_sine.predict` on a trained legacy model, in this process."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    import tf_sine

    rows = []
    for layout in ("legacy", "sequence"):
        run_dir = scratch / f"predict-{layout}"
        tf_sine_run("fast", layout, scratch, ["--steps", "10"], run_dir.name)
        model, _ = tf_sine.load_model(run_dir)
        _, _, test_x, _ = tf_sine.sine_windows(layout=layout)
        big = np.resize(test_x, (1_000_000, *test_x.shape[1:]))
        for name, x in (("989 test windows", test_x), ("10^6 windows", big)):
            seconds = []
            for _ in range(2):  # the first call includes tracing for this input's shape
                began = time.perf_counter()
                tf_sine.predict(model, x)
                seconds.append(time.perf_counter() - began)
            row = {"layout": layout, "input": name, "first_call_seconds": seconds[0],
                   "seconds": seconds[1], "windows_per_second": len(x) / seconds[1]}  # fmt: skip
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


KERNEL_SHAPES = [(10, 16, 1, 30, 2000), (10, 16, 30, 30, 2000), (100, 32, 1, 30, 200), (10, 32, 128, 512, 20),
                 (10, 256, 512, 512, 5)]  # (time, batch, features, units, calls)  # fmt: skip


def _microseconds_per_call(run_cell, cell, x, calls: int) -> float:
    """Forward + gradient of `run_cell(x, cell)`, `calls` times in a graph loop, tracing excluded."""
    import tensorflow as tf

    def body(i: tf.Tensor, total: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(run_cell(x, cell))
        grads = tape.gradient(loss, cell.trainable_variables)
        return i + 1, total + tf.add_n([tf.reduce_sum(g) for g in grads])

    loop = tf.function(lambda: tf.while_loop(lambda i, _: i < calls, body, (0, 0.0)), autograph=False)
    loop()  # traced and warmed up
    began = time.perf_counter()
    loop()
    return (time.perf_counter() - began) / calls * 1e6


def kernel_calls() -> list[dict]:
    """Microseconds per forward + gradient call of one LSTM layer on each kernel, in this process.

    Thread pools come from the environment (`TF_NUM_INTRAOP_THREADS=1` for the README's
    one-thread figures).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np

    from tf_sine import kernels

    rows = []
    for time_steps, batch, features, units, calls in KERNEL_SHAPES:
        cell = keras.layers.LSTMCell(units)
        cell.build((None, features))
        x = np.random.default_rng(0).normal(size=(time_steps, batch, features)).astype(np.float32)
        row = {"time": time_steps, "batch": batch, "features": features, "units": units,
               "native_lstm_us": _microseconds_per_call(kernels.native_lstm, cell, x, calls),
               "fused_lstm_us": _microseconds_per_call(kernels.block_lstm, cell, x, calls)}  # fmt: skip
        flops = 3 * 2 * batch * time_steps * (features + units) * 4 * units
        row["native_gflops_per_second"] = flops / row["native_lstm_us"] / 1e3
        row["speedup"] = row["fused_lstm_us"] / row["native_lstm_us"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def markdown(rows: list[dict]) -> str:
    keys = [key for key in rows[0] if not key.endswith("_all")]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        cells = [f"{row[k]:.4g}" if isinstance(row.get(k), float) else str(row.get(k, "")) for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    from tf_sine import native

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-python", help="an interpreter that has torch and/or jax+keras")
    parser.add_argument("--bench", type=Path, default=DEFAULT_BENCH, help="folder of the reference trainers")
    parser.add_argument("--cases", nargs="+", default=["legacy", "sequence"], choices=tuple(CASES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-fit", action="store_true", help="leave out tf_sine's fit engine")
    parser.add_argument("--sweep", action="store_true", help="run the scaling sweep instead")
    parser.add_argument("--predict", action="store_true", help="measure prediction throughput instead")
    parser.add_argument("--kernels", action="store_true", help="time one LSTM layer on each kernel instead")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--plot-dir", type=Path, help="with --sweep: write the sweep's figures here")
    parser.add_argument("--max-isa", choices=tuple(MAX_ISA), help="hold every process to this ISA")
    args = parser.parse_args()
    if args.max_isa:
        os.environ.update(MAX_ISA[args.max_isa])  # inherited by every process the run starts
        print(json.dumps({"max_isa": MAX_ISA[args.max_isa]}), flush=True)
    # The kernels built (or found kept) before anything is timed, for the target asked for: the
    # native rows would otherwise time the fallback under the native kernels' name.
    built = subprocess.run([sys.executable, "-m", "tf_sine.native"], cwd=ROOT, stdout=subprocess.DEVNULL)
    if built.returncode and native.enabled():
        sys.exit("benchmarks/engines.py: the native kernels were not built (the reason is above)")
    with tempfile.TemporaryDirectory() as scratch:
        if args.sweep:
            rows = sweep(Path(scratch))
            if args.plot_dir:
                plot_sweep(rows, args.plot_dir)
        elif args.predict:
            rows = predict_throughput(Path(scratch))
        elif args.kernels:
            rows = kernel_calls()
        else:
            rows = compare(args, Path(scratch))

    held = f", held to {args.max_isa}" if args.max_isa else ""
    machine = f"{native.cpu_model()}, {platform.machine()}, {os.cpu_count()} cores{held}"
    print(f"\n{machine}, Python {platform.python_version()}\n")
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
