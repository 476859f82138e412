"""The experiments: compare and the input-gradient study, checked against independent math."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import run_cli

import tf_sine
from tf_sine.config import Config
from tf_sine.experiments import COMPARE_SET, compare, gradient_study, input_gradients


def test_compare_trains_every_configuration():
    rows = compare(Config(layout="sequence", units=4), seeds=(0, 1), steps=20)
    assert [row["name"] for row in rows] == list(COMPARE_SET)
    by_name = {row["name"]: row for row in rows}
    assert (
        by_name["bidirectional_lstm"]["parameters"]
        > by_name["lstm"]["parameters"]
        > by_name["gru"]["parameters"]
    )
    assert by_name["gru"]["parameters"] > by_name["simple_rnn"]["parameters"]
    for row in rows:
        assert len(row["rmse_by_seed"]) == 2 and row["rmse"] == pytest.approx(np.median(row["rmse_by_seed"]))
        assert row["train_seconds"] > 0
    with pytest.raises(ValueError, match="names: expected entries of 'simple_rnn'"):
        compare(names=["transformer"])


def test_input_gradients_match_a_finite_difference():
    keras.utils.set_random_seed(0)
    model = tf_sine.build_model(cell="simple_rnn", units=3, num_layers=1, timesteps=5, layout="sequence")
    x = np.random.default_rng(0).normal(size=(1, 5, 1)).astype(np.float32)
    y = np.array([[0.3]], np.float32)
    norms = input_gradients(model, x, y)

    def loss(window):
        return float(tf.reduce_sum(tf.square(model(window[None].astype(np.float32)) - y)))

    eps = 1e-3
    for t in range(5):  # one feature: the norm is |derivative|
        up, down = x[0].astype(np.float64).copy(), x[0].astype(np.float64).copy()
        up[t, 0] += eps
        down[t, 0] -= eps
        assert norms[t] == pytest.approx(abs(loss(up) - loss(down)) / (2 * eps), rel=2e-2, abs=1e-6)


def test_simple_rnn_input_gradient_is_a_product_of_jacobians():
    """For h_t = tanh(W x_t + U h_{t-1} + b), d h_T / d x_t = prod of diag(1 - h^2) U terms times W."""
    keras.utils.set_random_seed(1)
    model = tf_sine.build_model(cell="simple_rnn", units=4, num_layers=1, timesteps=6, layout="sequence")
    layer, head = model.layers[0], model.layers[-1]
    w, u, b = (
        v.numpy().astype(np.float64)
        for v in (layer.cell.kernel, layer.cell.recurrent_kernel, layer.cell.bias)
    )
    v, c = head.kernel.numpy().astype(np.float64), head.bias.numpy().astype(np.float64)
    x = np.random.default_rng(2).normal(size=(6, 1))
    y = 0.5
    h, states = np.zeros(4), []
    for t in range(6):
        h = np.tanh(x[t] @ w + h @ u + b)
        states.append(h)
    out = float(h @ v[:, 0] + c[0])
    d_h = 2 * (out - y) * v[:, 0]  # d loss / d h_T
    expected = np.zeros(6)
    for t in reversed(range(6)):
        d_pre = d_h * (1 - states[t] ** 2)
        expected[t] = abs(float(d_pre @ w[0]))
        d_h = d_pre @ u.T
    got = input_gradients(model, x[None].astype(np.float32), np.array([[y]], np.float32))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-8)


def test_gradient_study_shapes_and_the_vanishing_gradient():
    study = gradient_study(cells=("simple_rnn", "lstm"), timesteps=40, units=8, steps=5, windows=16)
    for result in study.values():
        assert len(result["initial"]) == len(result["trained"]) == 40
        assert result["initial"][0] < result["initial"][-1]  # farther from the output, smaller


def test_compare_and_gradients_commands(tmp_path):
    done = run_cli("compare", "--steps", "5", "--seeds", "0", "--out", str(tmp_path / "cmp"))
    assert done.returncode == 0, done.stderr
    for name in COMPARE_SET:
        assert name in done.stdout
    assert len(json.loads((tmp_path / "cmp" / "compare.json").read_text())) == len(COMPARE_SET)
    assert (tmp_path / "cmp" / "compare.png").read_bytes()[:4] == b"\x89PNG"
    done = run_cli("gradients", "--steps", "3", "--timesteps", "20", "--out", str(tmp_path / "grad"))
    assert done.returncode == 0, done.stderr
    assert "0.99^20 = 0.818" in done.stdout and "simple_rnn" in done.stdout
    assert (tmp_path / "grad" / "gradients.png").read_bytes()[:4] == b"\x89PNG"
    done = run_cli("compare", "--steps", "0")
    assert done.returncode == 2 and "argument --steps: expected a positive integer, got 0" in done.stderr
