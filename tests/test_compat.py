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
