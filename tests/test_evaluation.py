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
