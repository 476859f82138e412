"""Interrupted training resumes to the same model; finished runs are never overwritten."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import ROOT, call_main, default_sigint, write_seasonal_csv

# Long enough to be killed in the middle (about 2 s of training on the native kernels, 3 with
# checkpoints), small enough for CI.
FLAGS = ["--layout", "sequence", "--units", "48", "--steps", "2500", "--checkpoint-every", "250", "--quiet"]


def _start(run_dir: Path, flags: list[str] = FLAGS) -> subprocess.Popen:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.Popen([sys.executable, "-m", "tf_sine", "train", *flags, "--run-dir", str(run_dir)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)  # fmt: skip


def _wait_for_checkpoints(run_dir: Path, count: int, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(list((run_dir / "checkpoints").glob("step-*.keras"))) >= count:
            return
        if process.poll() is not None:
            pytest.fail(f"training ended before {count} checkpoints: {process.stderr.read()[-1000:]}")
        time.sleep(0.02)
    pytest.fail("no checkpoint appeared in time")


def _interrupted(
    run_dir: Path, flags: list[str], signum: int, checkpoints: int
) -> tuple[subprocess.Popen, str]:
    """A training sent `signum` once `checkpoints` checkpoints exist; tried again (a fresh run) if
    it finished first, as on a loaded machine it may: three finishes fail the test."""
    for _ in range(3):
        shutil.rmtree(run_dir, ignore_errors=True)
        process = _start(run_dir, flags)
        _wait_for_checkpoints(run_dir, checkpoints, process)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=120)
        if process.returncode != 0:
            return process, stderr
    pytest.fail("training finished before the signal arrived, three times")


def _train(*argv: str) -> subprocess.CompletedProcess:
    """Training in this process (`main(argv)`): only the interrupted runs need a process of their own."""
    status, out, err = call_main(*argv)
    return subprocess.CompletedProcess(argv, status, out, err)


def _predictions(run_dir: Path) -> np.ndarray:
    import tf_sine

    model = keras.models.load_model(run_dir / "model.keras")
    return model.predict(tf_sine.sine_windows(layout="sequence")[2], verbose=0)


def _outcome(run_dir: Path) -> tuple[np.ndarray, dict]:
    """A finished run's test predictions and its loss history (`history.json`)."""
    return _predictions(run_dir), json.loads((run_dir / "history.json").read_text())


def _assert_same_run(run_dir: Path, expected: tuple[np.ndarray, dict]) -> None:
    """Bit for bit on this CPU: the predictions, and the loss of every step, resumed or not."""
    predictions, history = _outcome(run_dir)
    np.testing.assert_array_equal(predictions, expected[0])
    assert history == expected[1]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[np.ndarray, dict]:
    run_dir = tmp_path_factory.mktemp("whole") / "run"
    done = _train("train", *FLAGS, "--run-dir", str(run_dir))
    assert done.returncode == 0, done.stderr
    return _outcome(run_dir)


def test_sigkill_at_random_moments_then_resume_gives_the_same_model(tmp_path, uninterrupted):
    run_dir = tmp_path / "run"
    rng = np.random.default_rng(7)
    for kill in range(3):
        process = _start(run_dir)
        _wait_for_checkpoints(run_dir, 1 + kill, process)
        time.sleep(float(rng.uniform(0.0, 0.3)))  # somewhere in a chunk or a checkpoint write
        process.send_signal(signal.SIGKILL)
        process.wait()
        if (run_dir / "metrics.json").exists():
            break
        # Whatever is on disk at any moment is loadable: every checkpoint with its state.
        for checkpoint in (run_dir / "checkpoints").glob("step-*.keras"):
            keras.models.load_model(checkpoint)
            assert checkpoint.with_name(checkpoint.name.replace(".keras", ".state.json")).is_file()
    done = _train("train", *FLAGS, "--run-dir", str(run_dir))
    assert done.returncode == 0, done.stderr
    if "resuming" not in done.stderr:
        assert (run_dir / "metrics.json").exists()  # finished before a kill landed: nothing to resume
    _assert_same_run(run_dir, uninterrupted)
    assert json.loads((run_dir / "metrics.json").read_text())["steps"] == 2500


@pytest.mark.parametrize(
    ("signum", "status", "word"), [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")]
)
def test_sigterm_and_ctrl_c_write_a_final_checkpoint_and_resume(
    tmp_path, uninterrupted, signum, status, word
):
    run_dir = tmp_path / "run"
    process, stderr = _interrupted(run_dir, FLAGS, signum, checkpoints=1)
    assert process.returncode == status
    assert f"tf-sine: {word}; run the same command to resume" in stderr
    assert "Traceback" not in stderr
    steps = sorted(int(p.stem.split("-")[1]) for p in (run_dir / "checkpoints").glob("step-*.keras"))
    done = _train("train", *FLAGS, "--run-dir", str(run_dir))
    assert done.returncode == 0, done.stderr
    assert f"resuming {run_dir} from step {steps[-1]} of 2500" in done.stderr
    _assert_same_run(run_dir, uninterrupted)


def test_a_series_run_with_validation_resumes_to_the_same_best_model(tmp_path):
    """The best weights so far travel with each checkpoint, so the kept model is the same."""
    csv_path = write_seasonal_csv(tmp_path / "sales.csv")
    flags = ["--data", str(csv_path), *FLAGS, "--validate-every", "50"]
    whole = tmp_path / "whole"
    assert _train("train", *flags, "--run-dir", str(whole)).returncode == 0
    run_dir = tmp_path / "run"
    _interrupted(run_dir, flags, signal.SIGTERM, checkpoints=2)
    assert list((run_dir / "checkpoints").glob("step-*.best.npz"))
    done = _train("train", *flags, "--run-dir", str(run_dir))
    assert done.returncode == 0 and "resuming" in done.stderr, done.stderr
    for got, expected in zip(keras.models.load_model(run_dir / "model.keras").get_weights(),
                             keras.models.load_model(whole / "model.keras").get_weights(), strict=True):  # fmt: skip
        np.testing.assert_array_equal(got, expected)
    metrics = [json.loads((path / "metrics.json").read_text()) for path in (run_dir, whole)]
    assert metrics[0]["best_step"] == metrics[1]["best_step"] and metrics[0]["rmse"] == metrics[1]["rmse"]
    assert _outcome(run_dir)[1] == _outcome(whole)[1]  # losses and validation losses, step for step


def test_half_written_and_corrupt_checkpoints_are_reported_and_skipped(tmp_path, uninterrupted):
    run_dir = tmp_path / "run"
    process = _start(run_dir)
    _wait_for_checkpoints(run_dir, 2, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    checkpoints = run_dir / "checkpoints"
    newest = max(checkpoints.glob("step-*.keras"))
    # What a kill in the middle of a write leaves: a temporary file. And a damaged newest file.
    (checkpoints / ".step-009999.tf_sine-tmp-12345.keras").write_bytes(b"PK\x03\x04 half a zip")
    users = run_dir / ".notes.tmp-12345.txt"  # hidden, named like a temporary, not tf_sine's
    users.write_text("the user's")
    newest.write_bytes(newest.read_bytes()[:500])
    done = _train("train", *FLAGS, "--run-dir", str(run_dir))
    assert done.returncode == 0, done.stderr
    assert f"checkpoint {newest} is unreadable" in done.stderr and "using the one before it" in done.stderr
    assert "half-written" in done.stderr and str(users) not in done.stderr
    assert not list(checkpoints.glob(".*.tf_sine-tmp-*")) and users.read_text() == "the user's"
    _assert_same_run(run_dir, uninterrupted)


def test_a_finished_run_is_not_overwritten_without_the_flag(tiny_run):
    run_dir = tiny_run.run.path
    before = (run_dir / "model.keras").read_bytes()
    args = [
        "train",
        "--preset",
        "tiny",
        "--steps",
        "40",
        "--units",
        "4",
        "--checkpoint-every",
        "20",
        "--quiet",
    ]
    done = _train(*args, "--run-dir", str(run_dir))
    assert done.returncode == 2
    assert "argument --run-dir:" in done.stderr and "holds a finished run; pass --overwrite" in done.stderr
    assert (run_dir / "model.keras").read_bytes() == before


def test_overwrite_and_another_configuration(tmp_path):
    run_dir = tmp_path / "run"
    args = [
        "train",
        "--preset",
        "tiny",
        "--steps",
        "20",
        "--checkpoint-every",
        "10",
        "--quiet",
        "--run-dir",
        str(run_dir),
    ]
    assert _train(*args).returncode == 0
    assert _train(*args, "--overwrite").returncode == 0
    (run_dir / "metrics.json").unlink()  # now an unfinished run with checkpoints
    done = _train(*args[:-2], "--units", "5", "--run-dir", str(run_dir))
    assert done.returncode == 2
    assert "holds an unfinished run of another configuration (units=5 (saved 4))" in done.stderr


def test_divergence_stops_with_the_step_and_writes_no_nan_model(tmp_path):
    run_dir = tmp_path / "run"
    done = _train("train", "--preset", "tiny", "--optimizer", "sgd", "--learning-rate", "1e30", "--quiet",
                   "--run-dir", str(run_dir))  # fmt: skip
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.startswith("tf-sine")]
    assert len(lines) == 1 and "training diverged: the loss is" in lines[0] and "at step" in lines[0]
    assert "--learning-rate" in lines[0] and "Traceback" not in done.stderr
    assert not (run_dir / "model.keras").exists() and not (run_dir / "metrics.json").exists()
