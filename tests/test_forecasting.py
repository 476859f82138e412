"""Scores in the series' units, naive baselines, rolled-out forecasts, and validation in training."""

import keras
import numpy as np
import pytest
from conftest import seasonal_series

import tf_sine
from tf_sine.dataset import Transform, split_series
from tf_sine.evaluation import baseline_forecasts, horizon_scores, predict_levels, rollout, score
from tf_sine.training import train


def _setup(layout="legacy", difference=True, timesteps=8):
    keras.utils.set_random_seed(0)
    data = split_series(seasonal_series(200), (0.7, 0.15, 0.15), timesteps, difference=difference)
    transform = Transform.fit(data, "standard", difference)
    model = tf_sine.build_model(units=4, timesteps=timesteps, layout=layout)
    return model, data, transform


@pytest.mark.parametrize("layout", ["legacy", "sequence"])
@pytest.mark.parametrize("difference", [False, True])
def test_one_step_rollout_is_the_one_step_prediction(layout, difference):
    model, data, transform = _setup(layout, difference)
    targets = data.test_targets
    np.testing.assert_allclose(
        rollout(model, data, transform, targets - 1, 1)[:, 0],
        predict_levels(model, data, transform, targets),
        rtol=1e-6,
    )


def test_rollout_feeds_each_prediction_back_into_the_window():
    model, data, transform = _setup()
    origin = int(data.test_targets[3]) - 1
    forecast = rollout(model, data, transform, np.array([origin]), 3)[0]
    # By hand: extend the series with each forecast and predict the value after it.
    levels = data.levels[: origin + 1].copy()
    for h in range(3):
        extended = split_series(np.append(levels, 0.0), (0.7, 0.15, 0.15), 8, difference=True)
        step = predict_levels(model, extended, transform, np.array([len(levels)]))[0]
        assert forecast[h] == pytest.approx(step, rel=1e-6)
        levels = np.append(levels, step)


def test_baselines_by_hand():
    levels = np.arange(40.0) ** 1.5
    data = split_series(levels, (0.5, 0.25, 0.25), timesteps=3)
    origins = np.array([29, 33])
    forecasts = baseline_forecasts(data, origins, horizon=6, period=4)
    np.testing.assert_array_equal(forecasts["persistence"], [[levels[29]] * 6, [levels[33]] * 6])
    np.testing.assert_array_equal(forecasts["mean"][0], [levels[:20].mean()] * 6)
    # h = 1..6 with period 4: one season back for h <= 4, two for h = 5, 6.
    np.testing.assert_array_equal(forecasts["seasonal_naive"][0], levels[[26, 27, 28, 29, 26, 27]])
    assert "seasonal_naive" not in baseline_forecasts(data, origins, 6, period=None)
    assert "seasonal_naive" not in baseline_forecasts(data, np.array([2]), 1, period=4)  # no season before


def test_score_and_horizon_scores_are_in_the_series_units():
    model, data, transform = _setup()
    metrics, predictions = score(model, data, transform, period=12)
    truth = data.levels[data.test_targets]
    assert metrics["rmse"] == pytest.approx(np.sqrt(np.mean((predictions[:, 0] - truth) ** 2)))
    persistence = data.levels[data.test_targets - 1]
    assert metrics["baselines"]["persistence"] == pytest.approx(np.sqrt(np.mean((persistence - truth) ** 2)))
    assert metrics["period"] == 12
    scores = horizon_scores(model, data, transform, 4, period=12)
    assert scores["targets"] == len(data.test_targets)
    assert len(scores["rmse_by_horizon"]) == 4 and set(scores["baselines_by_horizon"]) == set(
        metrics["baselines"]
    )
    # Horizon 1 is the one-step score; horizon 3 forecasts each target from 3 steps before it.
    assert scores["rmse_by_horizon"][0] == pytest.approx(metrics["rmse"], rel=1e-6)
    three = rollout(model, data, transform, data.test_targets - 3, 3)[:, 2]
    assert scores["rmse_by_horizon"][2] == pytest.approx(np.sqrt(np.mean((three - truth) ** 2)), rel=1e-9)
    persistence_3 = data.levels[data.test_targets - 3]
    assert scores["baselines_by_horizon"]["persistence"][2] == pytest.approx(
        np.sqrt(np.mean((persistence_3 - truth) ** 2))
    )
    with pytest.raises(ValueError, match=r"^horizon: expected at most 162 \(the steps between"):
        horizon_scores(model, data, transform, 163)
    horizon_scores(model, data, transform, 162)  # the longest allowed works


def test_validation_keeps_the_best_model_and_patience_stops_early():
    model, data, transform = _setup(difference=False)
    x, y = data.windows(transform, data.train_targets, 8, "legacy")
    val = data.windows(transform, data.val_targets, 8, "legacy")
    result = train(model, x, y, steps=2000, batch_size=16, progress=False, validation=val, validate_every=20,
                   patience=1)  # fmt: skip
    assert result.stopped_early and result.final_step < 2000
    assert result.val_steps == list(range(20, result.final_step + 1, 20))
    assert result.state.validations_since_best() == 1 and result.val_losses[-1] >= result.best_loss
    assert result.best_loss == min(result.val_losses)
    kept = float(np.mean((model.predict(val[0], verbose=0) - val[1]) ** 2))
    assert kept == pytest.approx(result.best_loss, rel=1e-5)  # the model holds the best weights


def test_validation_without_patience_runs_every_step_and_scores_at_the_end():
    model, data, transform = _setup(difference=False)
    x, y = data.windows(transform, data.train_targets, 8, "legacy")
    val = data.windows(transform, data.val_targets, 8, "legacy")
    result = train(model, x, y, steps=130, batch_size=16, progress=False, validation=val, validate_every=50)
    assert result.final_step == 130 and not result.stopped_early
    assert result.val_steps == [50, 100, 130]
