"""The experiments: compare and the input-gradient study, checked against independent math."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_sine
from tf_sine.config import Config
from tf_sine.data import adding_problem
from tf_sine.experiments import COMPARE_SET, compare, gradient_study, input_gradients
from tf_sine.training import train


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


def test_compare_and_gradients_commands(tmp_path, cli):
    status, stdout, stderr = cli("compare", "--steps", "5", "--seeds", "0", "--out", str(tmp_path / "cmp"))
    assert status == 0, stderr
    rows = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert [row["name"] for row in rows] == list(COMPARE_SET)
    for row in rows:  # the table printed is the one saved
        assert f"{row['name']:<20} {row['parameters']:>10,}" in stdout and f"{row['rmse']:>10.6f}" in stdout
    assert (tmp_path / "cmp" / "compare.png").read_bytes()[:4] == b"\x89PNG"
    status, stdout, stderr = cli(
        "gradients", "--steps", "3", "--timesteps", "20", "--out", str(tmp_path / "grad")
    )
    assert status == 0, stderr
    assert "0.99^20 = 0.818" in stdout and "simple_rnn" in stdout
    assert (tmp_path / "grad" / "gradients.png").read_bytes()[:4] == b"\x89PNG"
    status, _, stderr = cli("compare", "--steps", "0", "--out", str(tmp_path / "never"))
    assert status == 2 and "argument --steps: expected a positive integer, got 0" in stderr
    assert not (tmp_path / "never").exists()  # checked before the folder is made


def test_adding_problem_data():
    x, y = adding_problem(500, 20, seed=3)
    assert x.shape == (500, 20, 2) and y.shape == (500, 1) and x.dtype == y.dtype == np.float32
    markers = x[:, :, 1]
    assert (markers.sum(axis=1) == 2).all()
    assert (markers[:, :10].sum(axis=1) == 1).all()  # one mark in each half
    np.testing.assert_allclose(y[:, 0], (x[:, :, 0] * markers).sum(axis=1), rtol=1e-6)
    # The trivial baseline: always 1.0 scores the variance of a sum of two U(0, 1), 1/6.
    big_y = adding_problem(200_000, 4, seed=0)[1]
    assert np.mean((big_y - 1.0) ** 2) == pytest.approx(1 / 6, rel=0.02)
    with pytest.raises(ValueError, match="timesteps: expected at least 2 for two marked steps, got 1"):
        adding_problem(10, 1)


def test_models_take_several_features_in_the_sequence_layout():
    model = tf_sine.build_model(units=3, timesteps=7, layout="sequence", features=2)
    assert model.input_shape == (None, 7, 2)
    with pytest.raises(ValueError, match="features: expected 1 with the legacy layout"):
        tf_sine.build_model(features=2)
    from tf_sine.kernels import fused_forward

    x = tf.constant(np.random.default_rng(0).normal(size=(3, 7, 2)), tf.float32)
    np.testing.assert_allclose(fused_forward(model)(x), model(x, training=True), rtol=1e-5, atol=1e-6)


def test_memory_study_and_command(tmp_path, cli):
    from tf_sine.experiments import ADDING_BASELINE_MSE, memory_study

    rows = memory_study(cells=("gru",), lengths=(6,), units=4, steps=30)
    assert rows[0]["cell"] == "gru" and rows[0]["timesteps"] == 6
    # What the docstring promises, done by hand: one GRU(4), Adam 1e-3, global clip 1, 30 steps of
    # 64 on 10,000 sequences (seed 0), scored on 1,000 fresh ones (seed 1).
    keras.utils.set_random_seed(0)
    model = tf_sine.build_model(cell="gru", units=4, num_layers=1, timesteps=6, features=2, layout="sequence",
                                optimizer="adam", learning_rate=1e-3, global_clipnorm=1.0)  # fmt: skip
    train(model, *adding_problem(10_000, 6, seed=0), steps=30, batch_size=64, seed=0, progress=False)
    test_x, test_y = adding_problem(1_000, 6, seed=1)
    mse = float(np.mean((model.predict(test_x, verbose=0) - test_y) ** 2))
    assert rows[0]["mse"] == pytest.approx(mse, rel=1e-4) and rows[0][
        "ratio"
    ] * ADDING_BASELINE_MSE == pytest.approx(mse, rel=1e-4)
    status, stdout, stderr = cli(
        "memory", "--steps", "5", "--lengths", "4", "6", "--out", str(tmp_path / "mem")
    )
    assert status == 0, stderr
    assert "simple_rnn" in stdout and "lstm" in stdout and "gru" in stdout
    assert len(json.loads((tmp_path / "mem" / "memory.json").read_text())) == 6
    status, _, stderr = cli("memory", "--lengths", "1")
    assert status == 2 and "argument --lengths: expected sequence lengths of at least 2, got 1" in stderr


@pytest.mark.parametrize("clip", [{}, {"clipvalue": 0.5}, {"clipnorm": 1.0}, {"global_clipnorm": 1.0}])
def test_clip_gradients_is_what_the_keras_optimizer_applies(clip):
    from tf_sine.experiments import clip_gradients

    gradients = [tf.constant([3.0, -4.0]), tf.constant([[12.0, 0.2]])]
    variables = [keras.Variable(tf.zeros_like(g)) for g in gradients]
    keras.optimizers.SGD(learning_rate=1.0, **clip).apply(gradients, variables)
    for variable, mine in zip(variables, clip_gradients(gradients, **clip), strict=True):
        np.testing.assert_allclose(-variable.numpy(), mine.numpy(), rtol=1e-6)


def test_clipping_study_records_losses_norms_and_divergence(tmp_path):
    from tf_sine.experiments import clipping_study

    study = clipping_study({"none": {}, "global_clipnorm": {"global_clipnorm": 1.0}}, steps=10, timesteps=12,
                           learning_rate=0.1, probe_every=5)  # fmt: skip
    clipped = study["global_clipnorm"]
    assert clipped["steps"] == list(range(1, 11)) and clipped["probe_steps"] == [0, 5]
    assert all(
        after <= min(before, 1.0) + 1e-5
        for before, after in zip(clipped["norm_before"], clipped["norm_after"], strict=True)
    )
    assert study["none"]["norm_before"] == study["none"]["norm_after"]
    assert clipped["diverged_at"] is None and clipped["test_rmse"] > 0
    wild = clipping_study({"none": {}}, steps=40, timesteps=12, learning_rate=1e6, probe_every=20)["none"]
    assert wild["diverged_at"] is not None and wild["test_rmse"] is None


def test_clipping_command_and_a_study_result_saved_from_python(tmp_path, cli):
    from tf_sine.experiments import StudyResult

    status, stdout, stderr = cli("clipping", "--steps", "10", "--out", str(tmp_path / "clip"))
    assert status == 0, stderr
    for name in ("none", "clipvalue", "clipnorm", "global_clipnorm"):
        assert name in stdout
    for figure in ("clipping_loss.png", "clipping_norms.png"):
        assert (tmp_path / "clip" / figure).read_bytes()[:4] == b"\x89PNG"
    study = json.loads((tmp_path / "clip" / "clipping.json").read_text())
    written = StudyResult("clipping", study).save(tmp_path / "again")
    assert [path.name for path in written] == ["clipping.json", "clipping_loss.png", "clipping_norms.png"]
    assert json.loads(written[0].read_text()) == study
