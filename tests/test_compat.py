"""The Estimator-style bridge: fit adds steps, model_dir resumes, predictions squeeze."""

import numpy as np
import pytest

import tf_sine
from tf_sine.compat import LegacyRegressor


@pytest.fixture(scope="module")
def windows():
    train_seq, test_seq = tf_sine.sine_series()
    train_x, train_y = tf_sine.generate_data(train_seq[:2000])
    test_x, _ = tf_sine.generate_data(test_seq)
    return train_x, train_y, test_x


def test_fit_twice_and_resume_on_the_same_model_dir(tmp_path, windows):
    train_x, train_y, test_x = windows
    regressor = LegacyRegressor(tmp_path / "model_2", units=4)
    assert regressor.global_step == 0
    regressor.fit(train_x, train_y, batch_size=32, steps=100)
    assert regressor.global_step == 100
    assert regressor.fit(train_x, train_y, batch_size=32, steps=100) is regressor
    assert regressor.global_step == 200
    predictions = regressor.predict(test_x)
    assert predictions.shape == (len(test_x),)

    resumed = LegacyRegressor(tmp_path / "model_2", units=4)  # like a second run of the script
    assert resumed.global_step == 200
    np.testing.assert_array_equal(resumed.predict(test_x), predictions)
    resumed.fit(train_x, train_y, steps=50)
    assert resumed.global_step == 250


def test_resuming_continues_exactly_where_one_long_fit_would_be(tmp_path, windows):
    train_x, train_y, test_x = windows
    LegacyRegressor(tmp_path / "split", units=3).fit(train_x, train_y, steps=60)
    split = LegacyRegressor(tmp_path / "split", units=3).fit(train_x, train_y, steps=60)
    whole = LegacyRegressor(tmp_path / "whole", units=3).fit(train_x, train_y, steps=120)
    np.testing.assert_allclose(split.predict(test_x), whole.predict(test_x), rtol=1e-6, atol=1e-7)


def test_bad_options_and_mismatched_model_dir(tmp_path, windows):
    train_x, train_y, _ = windows
    with pytest.raises(ValueError, match="timesteps: not a factory option of LegacyRegressor"):
        LegacyRegressor(tmp_path / "a", timesteps=10)
    with pytest.raises(ValueError, match="cell: expected one of"):
        LegacyRegressor(tmp_path / "a", cell="lstmm")
    with pytest.raises(ValueError, match="model_dir: holds no trained model yet"):
        LegacyRegressor(tmp_path / "a").predict(train_x)
    LegacyRegressor(tmp_path / "b", units=3).fit(train_x, train_y, steps=5)
    with pytest.raises(ValueError, match=r"model_dir: holds a model built with \{'units': 3\}"):
        LegacyRegressor(tmp_path / "b", units=5)


def test_each_fit_restarts_the_datafeeder_order_as_the_estimator_did(tmp_path, windows):
    import keras

    from tf_sine.config import Config
    from tf_sine.evaluation import predict
    from tf_sine.models import build_model_from_config
    from tf_sine.training import train

    train_x, train_y, test_x = windows
    options = {"units": 3, "initializer": "uniform_unit_scaling"}
    regressor = LegacyRegressor(tmp_path / "feeder", seed=1, batches="datafeeder", **options)
    regressor.fit(train_x, train_y, steps=70).fit(train_x, train_y, steps=70)  # a short batch at 63
    # The same two feeders by hand: the second starts its order again at step 70.
    keras.utils.set_random_seed(1)
    model = build_model_from_config(Config(seed=1, batches="datafeeder", **options))
    for start in (0, 70):
        train(model, train_x, train_y, steps=start + 70, seed=1, batches="datafeeder", feed_start=start,
              progress=False)  # fmt: skip
    np.testing.assert_array_equal(regressor.predict(test_x), predict(model, test_x).reshape(-1))
    one_feeder = LegacyRegressor(tmp_path / "one", seed=1, batches="datafeeder", **options)
    one_feeder.fit(train_x, train_y, steps=140)
    assert np.abs(one_feeder.predict(test_x) - regressor.predict(test_x)).max() > 1e-4
    with pytest.raises(ValueError, match=r"batches 'datafeeder'; got .* batches 'passes'"):
        LegacyRegressor(tmp_path / "feeder", seed=1, **options)
