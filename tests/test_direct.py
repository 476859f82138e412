"""Direct multi-step forecasting: a Dense(H) head trained on the next H values, scored, forecast,
predicted and served beside the recursive rollout."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import native_ops, write_seasonal_csv

from tf_sine.data import sine_windows
from tf_sine.dataset import Transform, split_series
from tf_sine.engines import FastEngine
from tf_sine.models import build_model
from tf_sine.training import batch_order


def test_the_head_predicts_h_values_and_the_labels_are_the_next_h():
    model = build_model(units=3, horizon=4, layout="sequence")
    assert model.output_shape == (None, 4) and model.layers[-1].units == 4
    with pytest.raises(ValueError, match=r"^horizon: expected a positive integer, got 0"):
        build_model(horizon=0)
    levels = np.arange(40.0) ** 1.5
    data = split_series(levels, (0.5, 0.25, 0.25), 5, difference=True)
    transform = Transform.fit(data, "standard", difference=True)
    x, y = data.windows(transform, data.train_targets, 5, "sequence", horizon=4)
    encoded = transform.encode(levels)
    kept = data.train_targets[data.train_targets + 3 < data.train_end]  # no label in the next part
    assert len(x) == len(y) == len(kept)
    np.testing.assert_array_equal(
        y, np.stack([encoded[kept + k] for k in range(4)], axis=1).astype(np.float32)
    )
    # Decoding sums the differences from the last known value: the labels give the levels back.
    np.testing.assert_allclose(transform.decode_ahead(y.astype(np.float64), levels[kept - 1]),
                               np.stack([levels[kept + k] for k in range(4)], axis=1), rtol=1e-6)  # fmt: skip


def test_the_training_op_updates_a_direct_head_as_keras_does():
    native_ops()
    train_x, train_y, _, _ = sine_windows(layout="sequence")
    x = train_x[:-2]
    y = np.concatenate([train_y[k : len(train_y) - 2 + k] for k in range(3)], axis=1)
    batches = batch_order(len(x), 8, 0, 0, 6)
    results = []
    for route in ("graph", "op"):
        keras.utils.set_random_seed(0)
        model = build_model(layout="sequence", units=5, horizon=3)
        engine = FastEngine(model, x, y, 8)
        if route == "graph":
            engine.whole_steps = None
        assert (engine.whole_steps is not None) == (route == "op")
        results.append((engine(batches), [v.numpy() for v in model.trainable_variables]))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-5, atol=1e-7)
    for ours, keras_own in zip(results[1][1], results[0][1], strict=True):
        np.testing.assert_allclose(ours, keras_own, rtol=2e-5, atol=2e-7)


@pytest.fixture(scope="module")
def direct_run(tmp_path_factory):
    from conftest import call_main

    folder = tmp_path_factory.mktemp("direct")
    path = write_seasonal_csv(folder / "sales.csv", n=200)
    status, _, stderr = call_main("train", "--data", str(path), "--preset", "tiny", "--layout", "sequence",
                                  "--output-steps", "3", "--steps", "200", "--run-dir", str(folder / "run"), "--quiet")  # fmt: skip
    assert status == 0, stderr
    import tf_sine

    return tf_sine.open_run(folder / "run")


def test_evaluate_scores_the_direct_forecasts_beside_the_rollout(direct_run):
    scores = direct_run.evaluate(horizon=4)
    direct = scores["direct_rmse_by_horizon"]
    assert len(direct) == 3 and direct[0] == pytest.approx(scores["rmse_by_horizon"][0], rel=1e-9)
    # By hand: the window ending h steps before each test target, output h, decoded.
    data, model, transform = direct_run.dataset, direct_run.model, direct_run.transform
    test = data.test_targets
    for h in (2, 3):
        x = data.inputs(transform, test - h + 1, 10, "sequence")
        outputs = model.predict(x, verbose=0).astype(np.float64)
        levels = transform.decode_ahead(outputs, data.levels[test - h])
        expected = np.sqrt(np.mean((levels[:, h - 1] - data.levels[test]) ** 2))
        assert direct[h - 1] == pytest.approx(expected, rel=1e-5)


def test_forecast_predict_and_the_export_answer_h_values(direct_run, tmp_path, cli):
    forecast = direct_run.forecast(3)
    assert forecast.method == "direct" and direct_run.forecast(5).method == "recursive"
    series = direct_run.dataset.levels
    predicted = direct_run.predict(series)
    assert predicted.shape == (len(series) - direct_run.config.timesteps, 3)
    np.testing.assert_allclose(predicted[-1], forecast.values, rtol=1e-6)
    status, stdout, _ = cli("predict", "--model", str(direct_run.directory.path), "--input", "-",
                            stdin="\n".join(map(str, series[-20:])))  # fmt: skip
    assert status == 0 and len(stdout.splitlines()[-1].split(",")) == 3
    manifest = direct_run.export(tmp_path / "served")
    assert manifest["signatures"]["next_value"]["outputs"] == {"next_value": [None], "next_values": [None, 3]}
    served = tf.saved_model.load(str(tmp_path / "served" / "saved_model"))
    width = manifest["signatures"]["next_value"]["inputs"]["values"][1]
    answer = served.signatures["next_value"](values=tf.constant(series[None, -width:], tf.float32))
    np.testing.assert_allclose(answer["next_values"].numpy()[0], forecast.values, rtol=1e-5)
    assert json.loads((direct_run.directory.path / "config.json").read_text())["horizon"] == 3
