"""The compiled recurrent kernels (tf_sine.native): built, loaded, right, and a clean fallback without them."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import ROOT, run_cli
from tf_sine import native


def _ops():
    ops = native.load()
    assert ops is not None, "the native kernels should build on this machine (gcc is part of its set-up)"
    return ops


LAYERS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "simple_rnn": keras.layers.SimpleRNN}


@pytest.mark.parametrize("cell", LAYERS)
@pytest.mark.parametrize(
    ("time", "batch", "features", "units"),
    [(10, 16, 1, 30), (1, 5, 10, 7), (7, 1, 3, 33), (3, 4, 2, 1), (2, 3, 5, 128)],
    ids=["preset", "one-step", "batch-of-one", "one-unit", "wide"],
)
def test_ops_equal_keras_values_and_gradients(cell, time, batch, features, units):
    ops = _ops()
    layer = LAYERS[cell](units, return_sequences=True)
    rng = np.random.default_rng(units)
    x = tf.constant(rng.normal(size=(batch, time, features)).astype(np.float32))
    layer.build(x.shape)
    weights = layer.cell
    weights.bias.assign(rng.normal(0, 0.3, weights.bias.shape).astype(np.float32))  # every bias matters
    weight = tf.constant(rng.normal(size=(batch, time, units)).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(layer(x) * weight)
    expected = tape.gradient(loss, [x, weights.kernel, weights.recurrent_kernel, weights.bias])
    inputs = tf.transpose(x, [1, 0, 2])
    forward, gradient = getattr(ops, f"tf_sine_{cell}"), getattr(ops, f"tf_sine_{cell}_grad")
    outputs = forward(inputs, weights.kernel, weights.recurrent_kernel, weights.bias)
    states, *saved = [outputs] if isinstance(outputs, tf.Tensor) else outputs
    grads = gradient(
        inputs, weights.kernel, weights.recurrent_kernel, states, *saved, tf.transpose(weight, [1, 0, 2])
    )
    np.testing.assert_allclose(tf.transpose(states, [1, 0, 2]), layer(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tf.transpose(grads[0], [1, 0, 2]), expected[0], rtol=1e-4, atol=1e-5)
    for mine, theirs in zip(grads[1:], expected[1:], strict=True):
        np.testing.assert_allclose(mine, np.asarray(theirs), rtol=1e-4, atol=2e-5)


def test_ops_refuse_mismatched_shapes_naming_the_argument():
    ops = _ops()
    x = tf.zeros([4, 2, 3])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"kernel must be \(features, 4 \* units\)"):
        ops.tf_sine_lstm(x, tf.zeros([2, 8]), tf.zeros([2, 8]), tf.zeros([8]))
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=r"recurrent_kernel must be \(units, 4 \* units\)"
    ):
        ops.tf_sine_lstm(x, tf.zeros([3, 8]), tf.zeros([2, 6]), tf.zeros([8]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"bias must be \(4 \* units,\)"):
        ops.tf_sine_lstm(x, tf.zeros([3, 8]), tf.zeros([2, 8]), tf.zeros([5]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"bias must be \(2, 3 \* units\), got \[6\]"):
        ops.tf_sine_gru(x, tf.zeros([3, 6]), tf.zeros([2, 6]), tf.zeros([6]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"recurrent_kernel must be \(units, units\)"):
        ops.tf_sine_simple_rnn(x, tf.zeros([3, 2]), tf.zeros([2, 3]), tf.zeros([2]))


@pytest.mark.parametrize("column", range(8))
def test_a_nan_gate_spreads_as_in_keras(column):
    """The divergence check relies on NaN propagating through the kernels (no fast-math)."""
    ops = _ops()
    layer = keras.layers.LSTM(2, return_sequences=True)
    layer.build((None, 3, 1))
    kernel = np.ones([1, 8], np.float32)
    kernel[0, column] = np.nan
    layer.cell.kernel.assign(kernel)
    states, *_ = ops.tf_sine_lstm(tf.ones([3, 2, 1]), kernel, layer.cell.recurrent_kernel, layer.cell.bias)
    expected = np.isnan(layer(tf.ones([2, 3, 1])).numpy())
    np.testing.assert_array_equal(np.isnan(tf.transpose(states, [1, 0, 2]).numpy()), expected)
    assert expected[:, -1].all()


def _module(args, env, timeout=300):
    return subprocess.run([sys.executable, "-m", "tf_sine.native", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=timeout)  # fmt: skip


def test_the_first_training_run_builds_the_library_once_outside_the_clock(tmp_path, monkeypatch):
    monkeypatch.setenv("TF_SINE_CACHE", str(tmp_path / "cache"))
    done = run_cli("train", "--layout", "sequence", "--units", "4", "--steps", "20", "--quiet",
                   "--run-dir", str(tmp_path / "run"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "compiling the native recurrent kernels for this machine" in done.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["kernel"] == "native_lstm" and metrics["train_seconds"] < 5  # the build takes ~15 s
    (library,) = (tmp_path / "cache").glob("*.so")
    built = library.stat().st_mtime_ns
    found = _module([], dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert found.returncode == 0 and found.stdout.strip().endswith(library.name)
    assert library.stat().st_mtime_ns == built  # found, not rebuilt
    forced = _module(["--force"], dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert forced.returncode == 0 and library.stat().st_mtime_ns != built  # --force rebuilds
    assert not list((tmp_path / "cache").glob("*.tmp"))


@pytest.mark.parametrize(
    ("compiler", "reason"),
    [("/nonexistent/c++", "no C++ compiler (/nonexistent/c++)"), ("false", "false exited with status 1")],
)
def test_without_a_working_compiler_training_falls_back_to_block_lstm(
    tmp_path, monkeypatch, compiler, reason
):
    monkeypatch.setenv("TF_SINE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CXX", compiler)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    build = _module([], env)
    assert build.returncode == 1 and reason in build.stderr and "Traceback" not in build.stderr
    done = run_cli("train", "--layout", "sequence", "--units", "4", "--steps", "20", "--quiet",
                   "--run-dir", str(tmp_path / "run"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "native recurrent kernels unavailable" in done.stderr and reason in done.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["kernel"] == "fused_lstm" and np.isfinite(metrics["rmse"])


@pytest.mark.parametrize(("cell", "kernel"), [("lstm", "fused_lstm"), ("gru", "keras")])
def test_the_native_kernels_can_be_turned_off(tmp_path, monkeypatch, cell, kernel):
    monkeypatch.setenv("TF_SINE_NATIVE", "0")
    monkeypatch.setenv("TF_SINE_CACHE", str(tmp_path / "cache"))
    done = run_cli("train", "--layout", "sequence", "--cell", cell, "--units", "4", "--steps", "20", "--quiet",
                   "--run-dir", str(tmp_path / "run"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "native" not in done.stderr and not (tmp_path / "cache").exists()
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["kernel"] == kernel
