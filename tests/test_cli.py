"""The command line: `main(argv)` in this process, and real processes where the process matters
(the console script, the thread pools chosen before TensorFlow starts)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import expected_kernel, run_cli

from tf_sine.config import Config
from tf_sine.files import read_json
from tf_sine.threads import ThreadPlan, plan_for

TINY_FLAGS = ["--preset", "tiny", "--steps", "30", "--units", "3", "--quiet"]


def test_train_writes_a_run_and_prints_the_rmse(tmp_path, cli):
    run = tmp_path / "run"
    status, stdout, stderr = cli("train", *TINY_FLAGS, "--cell", "gru", "--layout", "sequence",
                                 "--clipnorm", "1.0", "--run-dir", str(run))  # fmt: skip
    assert status == 0, stderr
    metrics = read_json(run / "metrics.json")
    assert f"test RMSE {metrics['rmse']:.6f}" in stdout and f"run directory: {run}" in stdout
    config = read_json(run / "config.json")
    assert (config["cell"], config["layout"], config["clipnorm"], config["steps"]) == (
        "gru",
        "sequence",
        1.0,
        30,
    )
    assert config["units"] == 3 and config["checkpoint_every"] == 25  # from the tiny preset


def test_no_subcommand_means_train_and_default_run_dir(tmp_path, cli):
    status, _, stderr = cli(*TINY_FLAGS, cwd=tmp_path)
    assert status == 0, stderr
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith("tiny-") and (run / "model.keras").is_file()


def test_evaluate_and_predict_a_saved_run(tiny_run, tmp_path, cli):
    status, stdout, stderr = cli("evaluate", "--model", str(tiny_run.run.path), "--json")
    assert status == 0, stderr
    assert json.loads(stdout)["rmse"] == pytest.approx(tiny_run.metrics["rmse"], rel=1e-5)

    series = np.sin(np.linspace(0, 3, 25))
    status, stdout, stderr = cli("predict", "--model", str(tiny_run.run.path / "model.keras"),
                                 stdin="\n".join(map(str, series)))  # fmt: skip
    assert status == 0, stderr
    predicted = np.array(stdout.split(), dtype=float)
    windows = np.array([series[i : i + 10] for i in range(16)], dtype=np.float32)[:, None, :]
    expected = tiny_run.model.predict(windows, verbose=0).ravel()
    np.testing.assert_allclose(predicted, expected, rtol=1e-5, atol=1e-6)

    np.save(tmp_path / "series.npy", series)
    out = tmp_path / "predictions.txt"
    status, stdout, _ = cli("predict", "--model", str(tiny_run.run.path), "--input", str(tmp_path / "series.npy"),
                            "--output", str(out))  # fmt: skip
    assert status == 0 and stdout == ""
    np.testing.assert_allclose(np.loadtxt(out), predicted, rtol=1e-6)


def test_console_script_is_installed():
    script = Path(sys.executable).with_name("tf-sine")  # installed beside the interpreter
    assert script.is_file()
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "train" in done.stdout and "predict" in done.stdout


@pytest.mark.parametrize(
    ("changes", "plan"),
    [
        ({"layout": "sequence"}, ThreadPlan(2, 1)),
        ({"layout": "sequence", "units": 128, "cell": "gru"}, ThreadPlan(2, 1)),
        ({"layout": "sequence", "dropout": 0.1}, ThreadPlan(1)),
        ({"layout": "sequence", "engine": "fit"}, ThreadPlan(1)),
        ({"layout": "legacy"}, ThreadPlan(1)),
    ],
)
def test_the_thread_plan_runs_halves_only_where_the_kernels_can(changes, plan):
    assert plan_for(Config(**changes)) == plan and plan.halves == (plan.inter_op == 2)
    assert plan_for(None) == ThreadPlan(1)  # predicting, exporting, studies


@pytest.mark.parametrize(
    ("flags", "cell", "shards"),
    [
        (["--layout", "sequence", "--cell", "gru"], "gru", 2),
        (["--layout", "sequence", "--dropout", "0.1"], None, 1),
    ],
)
def test_sequence_models_train_in_two_halves_side_by_side(tmp_path, flags, cell, shards):
    """The plan takes effect: applied in a fresh process before TensorFlow runs an op."""
    done = run_cli("train", *flags, "--steps", "20", "--quiet", "--run-dir", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    kernel = expected_kernel(cell) if cell else "keras"
    shards = shards if kernel != "keras" else 1  # Keras's layers run whole batches
    assert (metrics["kernel"], metrics["batch_shards"], metrics["device"]) == (kernel, shards, "CPU")
