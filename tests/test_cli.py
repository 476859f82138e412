"""The command line as a user runs it: real subprocesses, real files."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import expected_kernel, run_cli

from tf_sine.runs import read_json

TINY_FLAGS = ["--preset", "tiny", "--steps", "30", "--units", "3", "--quiet"]


def test_train_writes_a_run_and_prints_the_rmse(tmp_path):
    run = tmp_path / "run"
    done = run_cli(
        "train",
        *TINY_FLAGS,
        "--cell",
        "gru",
        "--layout",
        "sequence",
        "--clipnorm",
        "1.0",
        "--run-dir",
        str(run),
    )
    assert done.returncode == 0, done.stderr
    metrics = read_json(run / "metrics.json")
    assert f"test RMSE {metrics['rmse']:.6f}" in done.stdout
    assert "run directory:" in done.stdout
    config = read_json(run / "config.json")
    assert (config["cell"], config["layout"], config["clipnorm"], config["steps"]) == (
        "gru",
        "sequence",
        1.0,
        30,
    )
    assert config["units"] == 3 and config["checkpoint_every"] == 25  # from the tiny preset


def test_no_subcommand_means_train_and_default_run_dir(tmp_path):
    done = run_cli(*TINY_FLAGS, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith("tiny-") and (run / "model.keras").is_file()


def test_evaluate_and_predict_a_saved_run(tiny_run, tmp_path):
    done = run_cli("evaluate", "--model", str(tiny_run.run.path), "--json")
    assert done.returncode == 0, done.stderr
    scored = json.loads(done.stdout.strip().splitlines()[-1])
    assert scored["rmse"] == pytest.approx(tiny_run.metrics["rmse"], rel=1e-5)

    series = np.sin(np.linspace(0, 3, 25))
    done = run_cli(
        "predict", "--model", str(tiny_run.run.path / "model.keras"), stdin="\n".join(map(str, series))
    )
    assert done.returncode == 0, done.stderr
    predicted = np.array(done.stdout.split(), dtype=float)
    windows = np.array([series[i : i + 10] for i in range(16)], dtype=np.float32)[:, None, :]
    expected = tiny_run.model.predict(windows, verbose=0).ravel()
    np.testing.assert_allclose(predicted, expected, rtol=1e-5, atol=1e-6)

    np.save(tmp_path / "series.npy", series)
    out = tmp_path / "predictions.txt"
    done = run_cli(
        "predict",
        "--model",
        str(tiny_run.run.path),
        "--input",
        str(tmp_path / "series.npy"),
        "--output",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(np.loadtxt(out), predicted, rtol=1e-6)


def test_console_script_is_installed():
    script = Path(sys.executable).with_name("tf-sine")  # installed beside the interpreter
    assert script.is_file()
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "train" in done.stdout and "predict" in done.stdout


@pytest.mark.parametrize(
    ("flags", "cell", "shards"),
    [
        (["--layout", "sequence"], "lstm", 2),
        (["--layout", "sequence", "--units", "128"], "lstm", 2),
        (["--layout", "sequence", "--cell", "gru"], "gru", 2),
        (["--layout", "sequence", "--dropout", "0.1"], None, 1),
        (["--layout", "legacy"], "lstm", 1),
    ],
)
def test_sequence_models_train_in_two_halves_side_by_side(tmp_path, flags, cell, shards):
    done = run_cli("train", *flags, "--steps", "20", "--quiet", "--run-dir", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    kernel = expected_kernel(cell) if cell else "keras"
    shards = shards if kernel != "keras" else 1  # Keras's layers run whole batches
    assert (metrics["kernel"], metrics["batch_shards"], metrics["device"]) == (kernel, shards, "CPU")
