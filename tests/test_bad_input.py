"""Every bad input, through the CLI (in this process, and a few in a real one) and the Python API.

Each case gets one line naming the argument, what was expected and what was received: exit
status 2 and no traceback from the CLI, `ValueError` or `TypeError` from the library.
"""

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import ROOT, TINY, run_cli, write_seasonal_csv

import tf_sine
from tf_sine.backtest import backtest
from tf_sine.config import Config
from tf_sine.experiments import run_study
from tf_sine.runs import RunDirectory
from tf_sine.trained import load_model, untrained_run


@dataclass
class Case:
    name: str
    cli: list[str]  # {placeholders} are files made by the `paths` fixture
    cli_message: str
    api: Callable[[dict[str, Path]], Any]
    api_error: type
    api_message: str
    stdin: str | None = None


def _predict(paths, **changes):
    model, _ = load_model(paths["model"])
    return tf_sine.predict(model, np.zeros(changes.get("shape", (4, 10, 1)), np.float32))


CASES = [
    Case("cell", ["--cell", "cnn"], "argument --cell: invalid choice: 'cnn'",
         lambda p: tf_sine.build_model(cell="cnn"), ValueError, "cell: expected one of 'lstm', 'gru', 'simple_rnn', got 'cnn'"),
    Case("optimizer", ["--optimizer", "lion"], "argument --optimizer: invalid choice: 'lion'",
         lambda p: tf_sine.build_model(optimizer="lion"), ValueError, "optimizer: expected one of 'adagrad'"),
    Case("preset", ["--preset", "huge"], "argument --preset: invalid choice: 'huge'",
         lambda p: tf_sine.get_preset("huge"), ValueError, "preset: expected one of 'legacy', 'legacy-exact', 'sequence', 'tiny', got 'huge'"),
    Case("layout", ["--layout", "nchw"], "argument --layout: invalid choice: 'nchw'",
         lambda p: tf_sine.generate_data(np.arange(20.0), layout="nchw"), ValueError, "layout: expected one of 'legacy', 'sequence', got 'nchw'"),
    Case("steps", ["--steps", "0"], "argument --steps: expected a positive integer, got 0",
         lambda p: Config(steps=0), ValueError, "steps: expected a positive integer, got 0"),
    Case("units", ["--units", "-4"], "argument --units: expected a positive integer, got -4",
         lambda p: tf_sine.build_model(units=-4), ValueError, "units: expected a positive integer, got -4"),
    Case("layers", ["--layers", "0"], "argument --layers: expected a positive integer, got 0",
         lambda p: tf_sine.build_model(num_layers=0), ValueError, "num_layers: expected a positive integer, got 0"),
    Case("timesteps", ["--timesteps", "0"], "argument --timesteps: expected a positive integer, got 0",
         lambda p: tf_sine.generate_data(np.arange(20.0), timesteps=0), ValueError, "timesteps: expected a positive integer, got 0"),
    Case("batch size", ["--batch-size", "-1"], "argument --batch-size: expected a positive integer, got -1",
         lambda p: Config(batch_size=-1), ValueError, "batch_size: expected a positive integer, got -1"),
    Case("checkpoint interval", ["--checkpoint-every", "0"], "argument --checkpoint-every: expected a positive integer, got 0",
         lambda p: Config(checkpoint_every=0), ValueError, "checkpoint_every: expected a positive integer, got 0"),
    Case("non-integer", ["--steps", "2.5"], "argument --steps: invalid int value: '2.5'",
         lambda p: Config(steps=2.5), TypeError, "steps: expected a positive integer, got 2.5"),
    Case("dropout", ["--dropout", "1.0"], "argument --dropout: expected a rate in [0, 1), got 1.0",
         lambda p: tf_sine.build_model(dropout=1.0), ValueError, "dropout: expected a rate in [0, 1), got 1.0"),
    Case("recurrent dropout", ["--recurrent-dropout", "-0.5"], "argument --recurrent-dropout: expected a rate in [0, 1), got -0.5",
         lambda p: tf_sine.build_model(recurrent_dropout=-0.5), ValueError, "recurrent_dropout: expected a rate in [0, 1), got -0.5"),
    Case("two clips", ["--clipnorm", "1", "--global-clipnorm", "2"],
         "argument --clipnorm: expected at most one of clipnorm, clipvalue, global_clipnorm, got clipnorm=1.0, global_clipnorm=2.0",
         lambda p: tf_sine.build_model(clipnorm=1.0, global_clipnorm=2.0), ValueError,
         "expected at most one of clipnorm, clipvalue, global_clipnorm, got clipnorm=1.0, global_clipnorm=2.0"),
    Case("learning rate", ["--learning-rate", "inf"], "argument --learning-rate: expected a positive number, got inf",
         lambda p: tf_sine.build_model(learning_rate=float("inf")), ValueError, "learning_rate: expected a positive number, got inf"),
    Case("series not 1-D", ["predict", "--model", "{model}", "--input", "{matrix}"], "argument --input: expected a 1-D sequence, got shape (6, 2)",
         lambda p: tf_sine.generate_data(np.zeros((6, 2))), ValueError, "seq: expected a 1-D sequence, got shape (6, 2)"),
    Case("series not numeric", ["predict", "--model", "{model}"], "argument --input: expected numbers, got 'abc'",
         lambda p: tf_sine.generate_data(["abc"] * 20), TypeError, "seq: expected real numbers, got values of dtype <U3", stdin="1\n2\nabc\n"),
    Case("series empty", ["predict", "--model", "{model}", "--input", "{empty}"], "argument --input: expected a non-empty sequence, got 0 values",
         lambda p: tf_sine.generate_data([]), ValueError, "seq: expected a non-empty sequence, got 0 values"),
    Case("series with NaN", ["predict", "--model", "{model}", "--input", "{nan}"], "argument --input: expected finite values, got nan at index 3",
         lambda p: tf_sine.generate_data([0.0, 1, 2, np.nan] + [0.0] * 20), ValueError, "seq: expected finite values, got nan at index 3"),
    Case("series with infinity", ["predict", "--model", "{model}"], "argument --input: expected finite values, got inf at index 1",
         lambda p: tf_sine.generate_data([0.0, np.inf] + [0.0] * 20), ValueError, "seq: expected finite values, got inf at index 1", stdin="0\ninf\n" + "0\n" * 20),
    Case("series too short", ["predict", "--model", "{model}"], "argument --input: expected at least 10 values for one window, got 5",
         lambda p: tf_sine.generate_data(np.arange(11.0)), ValueError, "seq: expected at least timesteps + 2 = 12 values for one window, got 11", stdin="1 2 3 4 5"),
    Case("model missing", ["evaluate", "--model", "{dir}/none.keras"], "argument --model: expected an existing .keras file or run directory, got",
         lambda p: load_model(p["dir"] / "none.keras"), ValueError, "model: expected an existing .keras file or run directory, got"),
    Case("model empty", ["evaluate", "--model", ""], "argument --model: expected a .keras file or a run directory, got an empty string",
         lambda p: load_model(""), ValueError, "model: expected a .keras file or a run directory, got an empty string"),
    Case("model is a directory", ["evaluate", "--model", "{dir}"], "argument --model: expected a .keras file or a run directory holding model.keras",
         lambda p: load_model(p["dir"]), ValueError, "model: expected a .keras file or a run directory holding model.keras"),
    Case("model not a Keras file", ["predict", "--model", "{weights}", "--input", "{npy}"], "argument --model: expected a .keras file or a file of a run directory, got",
         lambda p: load_model(p["weights"]), ValueError, "model: expected a .keras file or a file of a run directory, got"),
    Case("model truncated", ["evaluate", "--model", "{truncated}"], "as a Keras model: it is not a zip archive (truncated or damaged)",
         lambda p: load_model(p["truncated"]), ValueError, "model: cannot load"),
    Case("model corrupt", ["evaluate", "--model", "{corrupt}"], "as a Keras model: it is not a zip archive (truncated or damaged)",
         lambda p: load_model(p["corrupt"]), ValueError, "model: cannot load"),
    Case("model does not fit the windows", ["predict", "--model", "{model}", "--input", "{npy}"], None,
         lambda p: _predict(p), ValueError, "model: expects windows of shape (N, 1, 10) (legacy layout, timesteps=10), got (4, 10, 1)"),
    Case("run directory is a file", ["--preset", "tiny", "--run-dir", "{file}"], "argument --run-dir: expected a directory, got the file",
         lambda p: RunDirectory.create(p["file"]), ValueError, "run_dir: expected a directory, got the file"),
    Case("run directory not writable", ["--preset", "tiny", "--run-dir", "{file}/below"], "argument --run-dir: cannot create",
         lambda p: tf_sine.run_experiment(TINY, p["file"] / "below"), ValueError, "run_dir: cannot create"),
    Case("run directory empty", ["--preset", "tiny", "--run-dir", ""], "argument --run-dir: expected a directory path, got an empty string",
         lambda p: tf_sine.run_experiment(TINY, ""), ValueError, "run_dir: expected a directory path, got an empty string"),
    Case("run directory of other files", ["--preset", "tiny", "--run-dir", "{dir}"], "argument --run-dir: expected an empty folder or one tf_sine wrote",
         lambda p: RunDirectory.create(p["dir"]), ValueError, "run_dir: expected an empty folder or one tf_sine wrote"),
    Case("seed negative", ["--seed", "-1"], "argument --seed: expected an integer from 0 to 2**32 - 1, got -1",
         lambda p: Config(seed=-1), ValueError, "seed: expected an integer from 0 to 2**32 - 1, got -1"),
    Case("seed too large", ["--seed", str(2**64)], f"argument --seed: expected an integer from 0 to 2**32 - 1, got {2**64}",
         lambda p: Config(seed=2**64), ValueError, f"seed: expected an integer from 0 to 2**32 - 1, got {2**64}"),
    Case("units beyond memory", ["--units", "1000000"], "argument --units: expected a model that fits in this machine's memory",
         lambda p: tf_sine.build_model(units=10**6), ValueError, "units: expected a model that fits in this machine's memory"),
    Case("split without data", ["--split", "0.5,0.3,0.2"], "argument --split: applies to a --data file only",
         lambda p: tf_sine.run_experiment(Config(split=(0.5, 0.3, 0.2)), p["dir"] / "split"), ValueError, "split: applies to a `data` file only"),
    Case("series of one row", ["--preset", "tiny", "--data", "{one}"], "argument --data: expected at least 16 values for one window",
         lambda p: tf_sine.run_experiment(TINY.replace(data=str(p["one"])), p["dir"] / "one"), ValueError, "data: expected at least 16 values"),
    Case("values beyond float64", ["--preset", "tiny", "--data", "{huge}"], "argument --data: expected values whose differences and spread a float64 can hold, got values up to 1e+308",
         lambda p: tf_sine.run_experiment(TINY.replace(data=str(p["huge"])), p["dir"] / "huge"), ValueError, "data: expected values whose differences and spread"),
    Case("forecast beyond the series", ["forecast", "--model", "{model}", "--horizon", "100000"], "argument --horizon: expected at most",
         lambda p: tf_sine.open_run(p["model"]).forecast(100000), ValueError, "horizon: expected at most"),
    Case("batch beyond memory", ["--batch-size", str(10**12)], "argument --batch-size: expected a batch that fits in this machine's memory",
         lambda p: Config(batch_size=10**12).check_batch_memory(), ValueError, "batch_size: expected a batch that fits in this machine's memory"),
    Case("output steps beyond the training part", ["--output-steps", "100000", "--run-dir", "{dir}/outputs"],
         "argument --output-steps: expected a training part with room for a window of 10 steps and the 100000 values",
         lambda p: tf_sine.run_experiment(TINY.replace(horizon=100000), p["dir"] / "outputs-api"), ValueError,
         "horizon: expected a training part with room for a window of 10 steps and the 100000 values"),
    Case("values beyond float32", ["predict", "--model", "{model}", "--input", "{float32}"],
         "argument --input: expected values within float32's range once scaled as the run scales its series (about ±3.4e38), got 1e+39 at index 0",
         lambda p: tf_sine.open_run(p["model"]).predict([1e39] * 12), ValueError, "values: expected values within float32's range"),
    Case("another series beyond float32", ["evaluate", "--model", "{model}", "--data", "{big32}"],
         "argument --data: expected values within float32's range once scaled as the run scales its series (about ±3.4e38), got 5.64642e+38 at index 2",
         lambda p: tf_sine.open_run(p["model"]).with_series(p["big32"]).evaluate(), ValueError, "data: expected values within float32's range"),
    Case("memory study lengths beyond memory", ["memory", "--lengths", "1000000000"],
         "argument --lengths: expected sequence lengths whose adding problems fit in this machine's memory",
         lambda p: run_study("memory", p["dir"] / "memory", lengths=[10**9]), ValueError, "lengths: expected sequence lengths whose"),
    Case("backtest folder empty", ["backtest", "--model", "{model}", "--folds", "1", "--horizon", "1", "--out", ""],
         "argument --out: expected a directory path, got an empty string",
         lambda p: backtest(untrained_run(TINY.replace(data=str(p["seasonal"]))), 1, 1, True, ""), ValueError,
         "work: expected a directory path, got an empty string"),
    Case("backtest folder is a file", ["backtest", "--model", "{model}", "--folds", "1", "--horizon", "1", "--out", "{file}"],
         "argument --out: expected a directory, got the file",
         lambda p: backtest(untrained_run(TINY.replace(data=str(p["seasonal"]))), 1, 1, True, p["file"]), ValueError,
         "work: expected a directory, got the file"),
    Case("calendar names empty", ["--calendar", ""], "argument --calendar: expected names such as 'weekday,yearday', got an empty name in ''",
         lambda p: Config(calendar=""), ValueError, "calendar: expected names such as 'weekday,yearday', got an empty name"),
    Case("window longer than the test series", ["--timesteps", "999", "--run-dir", "{dir}/long"], "argument --timesteps: expected at most 998",
         lambda p: tf_sine.sine_windows(timesteps=999), ValueError, "timesteps: expected at most 998"),
]  # fmt: skip


@pytest.fixture(scope="module")
def paths(tiny_run, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    model_bytes = (tiny_run.run.path / "model.keras").read_bytes()
    made = {"model": tiny_run.run.path / "model.keras", "dir": folder}
    for name, content in {
        "matrix.npy": None, "npy.npy": None, "empty.txt": b"", "nan.txt": b"0\n1\n2\nnan\n" + b"0\n" * 20,
        "weights.h5": b"\x89HDF", "float32.txt": b"1e39\n" * 12, "truncated.keras": model_bytes[: len(model_bytes) // 3],
        "corrupt.keras": b"this is not a zip archive", "file.txt": b"a file, not a directory",
        "one.csv": b"date,value\n2020-01-01,1.5\n",
        "big32.csv": ("value\n" + "".join(f"{float(np.sin(0.3 * i)) * 1e39!r}\n" for i in range(300))).encode(),
        "huge.csv": ("date,value\n" + "".join(f"2020-01-{d + 1:02d},{(-1) ** d * 1e308}\n" for d in range(28))).encode(),
    }.items():  # fmt: skip
        path = folder / name
        if name == "matrix.npy":
            np.save(path, np.zeros((6, 2)))
        elif name == "npy.npy":
            np.save(path, np.arange(30.0))
        else:
            path.write_bytes(content)
        made[name.split(".")[0]] = path
    made["seasonal"] = write_seasonal_csv(folder / "seasonal.csv")
    return made


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_api_raises_one_line(case, paths):
    with pytest.raises(case.api_error) as caught:
        case.api(paths)
    assert case.api_message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.cli_message], ids=[c.name for c in CASES if c.cli_message]
)
def test_cli_exits_2_with_one_line(case, paths, cli):
    args = [arg.format(**paths) for arg in case.cli]
    status, stdout, stderr = cli(*args, stdin=case.stdin)
    assert status == 2, stderr[-500:]
    assert stderr.count("\n") == 1 and stdout == "", stderr  # one line, nothing else
    assert stderr.startswith("tf-sine: error: ") and case.cli_message in stderr, stderr


BEFORE_TENSORFLOW = ["run directory empty", "run directory of other files", "run directory is a file",
                     "seed negative", "units beyond memory", "batch beyond memory", "split without data"]  # fmt: skip


def test_what_needs_no_tensorflow_is_refused_before_it_starts(paths, tmp_path):
    """A real process in which importing TensorFlow or Keras fails: these are refused first."""
    for package in ("tensorflow", "keras"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("raise ImportError('imported before the checks')")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    for name in BEFORE_TENSORFLOW:
        (case,) = [case for case in CASES if case.name == name]
        command = [sys.executable, "-m", "tf_sine", *[arg.format(**paths) for arg in case.cli]]
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, (name, done.stderr)
        assert case.cli_message in done.stderr, (name, done.stderr)


@pytest.mark.parametrize("name", ["steps", "series not numeric", "model corrupt"])
def test_a_real_process_exits_2_without_a_traceback(name, paths):
    """The same through a real process: the exit status and stderr a shell sees."""
    (case,) = [case for case in CASES if case.name == name]
    done = run_cli(*[arg.format(**paths) for arg in case.cli], stdin=case.stdin)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-500:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("tf-sine")]
    assert len(lines) == 1 and case.cli_message in lines[0], done.stderr


def test_a_head_longer_than_the_training_part_is_refused_before_the_run_is_written(paths, cli):
    """A run that cannot train (the head's output steps leave no training window) is refused
    before its folder exists: no configuration, scaling or checkpoint of it."""
    run_dir = paths["dir"] / "long-head"
    status, _, stderr = cli("--output-steps", "100000", "--run-dir", str(run_dir))
    assert status == 2 and "argument --output-steps: expected a training part" in stderr, stderr
    assert not run_dir.exists()


def test_a_refused_backtest_folder_trains_nothing(paths, tmp_path, monkeypatch, cli):
    """An empty --out is refused before any fold is trained, so nothing lands in the working
    directory (which an empty path would have meant)."""
    monkeypatch.chdir(tmp_path)
    status, _, stderr = cli("backtest", "--data", str(paths["seasonal"]), "--preset", "tiny", "--steps", "5",
                            "--folds", "1", "--horizon", "1", "--out", "")  # fmt: skip
    assert status == 2 and "argument --out: expected a directory path" in stderr, stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["-3", "abc"])
def test_a_thread_count_tensorflow_would_abort_on_or_ignore_is_refused(value, paths, monkeypatch, cli):
    """TensorFlow aborts the process on a negative pool size (a C++ check and a stack trace) and
    silently ignores a word: both are refused in one line naming the variable."""
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", value)
    status, stdout, stderr = cli(
        "--preset", "tiny", "--steps", "1", "--run-dir", str(paths["dir"] / "threads")
    )
    assert status == 2 and stdout == "" and stderr.count("\n") == 1, stderr
    assert "argument TF_NUM_INTRAOP_THREADS: expected a number of threads, 0 or more" in stderr, stderr
