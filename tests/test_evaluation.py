"""Metrics under their right names, and shape checks instead of silent broadcasting."""

import numpy as np
import pytest
from conftest import native_expected

import tf_sine
from tf_sine.evaluation import regression_metrics


def test_metrics_match_numpy():
    rng = np.random.default_rng(0)
    y, p = rng.normal(size=(50, 1)), rng.normal(size=(50, 1))
    metrics = regression_metrics(y, p)
    assert metrics["mse"] == pytest.approx(np.mean((p - y) ** 2))
    assert metrics["rmse"] == pytest.approx(np.sqrt(np.mean((p - y) ** 2)))
    assert metrics["mae"] == pytest.approx(np.mean(np.abs(p - y)))


def test_source_formula_is_the_rmse():
    # The source: rmse = np.sqrt(((predicted - test_y) ** 2).mean(axis=0)), printed as "Mean Square Error".
    rng = np.random.default_rng(1)
    test_y, predicted = rng.normal(size=(30, 1)), rng.normal(size=(30, 1))
    source_value = np.sqrt(((predicted - test_y) ** 2).mean(axis=0))[0]
    assert regression_metrics(test_y, predicted)["rmse"] == pytest.approx(source_value)


def test_squeezed_predictions_are_refused_not_broadcast():
    y = np.zeros((5, 1))
    with pytest.raises(ValueError, match=r"y_pred: expected shape \(5, 1\) like the labels, got \(5,\)"):
        regression_metrics(y, np.zeros(5))


def test_predict_refuses_windows_of_the_wrong_layout():
    model = tf_sine.build_model(units=2)
    x, _ = tf_sine.generate_data(np.arange(30.0), layout="sequence")
    with pytest.raises(ValueError, match=r"model: expects windows of shape \(N, 1, 10\) \(legacy layout"):
        tf_sine.predict(model, x)


@pytest.mark.parametrize(
    ("options", "native"),
    [({"layout": "sequence"}, True), ({"layout": "legacy", "cell": "gru", "bidirectional": True}, True),
     ({"layout": "sequence", "dropout": 0.2}, False)],
)  # fmt: skip
def test_predict_runs_covered_models_on_the_native_kernels_with_kerass_answers(options, native):
    from tf_sine.kernels import native_inference

    model = tf_sine.build_model(units=5, **options)
    x, _ = tf_sine.generate_data(np.sin(np.arange(5000) / 7.0), layout=options["layout"])
    assert (native_inference(model) is not None) == (native and native_expected())
    predicted = tf_sine.predict(model, x, batch_size=1000)  # several batches and a partial one
    assert predicted.shape == (len(x), 1) and predicted.dtype == np.float32
    np.testing.assert_allclose(predicted, model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    model.layers[-1].bias.assign([1.0])  # the traced function reads the current weights
    np.testing.assert_allclose(
        tf_sine.predict(model, x[:3]), model.predict(x[:3], verbose=0), rtol=1e-5, atol=1e-6
    )


def test_scale_free_metrics_by_hand():
    from tf_sine.evaluation import scale_free_metrics

    truth, forecast = np.array([2.0, -4.0, 5.0]), np.array([1.0, -5.0, 5.0])
    metrics = scale_free_metrics(truth, forecast, scale=0.5)
    assert metrics["mase"] == pytest.approx((1 + 1 + 0) / 3 / 0.5)
    assert metrics["smape"] == pytest.approx(100 * (2 / 3 + 2 / 9 + 0) / 3)
    assert metrics["mape"] == pytest.approx(100 * (1 / 2 + 1 / 4 + 0) / 3)
    with_zero = scale_free_metrics(np.array([0.0, 1.0]), np.array([0.0, 2.0]), scale=None)
    assert with_zero["mase"] is None and "mape" not in with_zero
    assert with_zero["mape_omitted"] == "1 of the 2 true values are 0, which MAPE divides by"
    assert with_zero["smape"] == pytest.approx(100 * (0 + 2 / 3) / 2)  # a pair of zeros counts 0


def test_the_seasonal_naive_forecast_of_the_training_part_has_mase_one():
    from tf_sine.dataset import split_series
    from tf_sine.evaluation import mase_scale, scale_free_metrics

    levels = np.random.default_rng(3).normal(size=120).cumsum()
    data = split_series(levels, (0.7, 0.15, 0.15), 5)
    train = levels[: data.train_end]
    for period in (None, 12):
        lag = period or 1
        scale = mase_scale(data, period)
        assert scale_free_metrics(train[lag:], train[:-lag], scale)["mase"] == pytest.approx(1.0)
    assert mase_scale(split_series(np.ones(50), (0.7, 0.15, 0.15), 3), None) is None  # constant: no scale
