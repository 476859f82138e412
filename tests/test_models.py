"""The model factory: every option shows in the built model; bad options are refused."""

import subprocess
import sys

import keras
import numpy as np
import pytest

import tf_sine
from tf_sine.config import CELLS


def _recurrent_layers(model):
    return [layer for layer in model.layers if not isinstance(layer, keras.layers.Dense)]


@pytest.mark.parametrize(
    ("cell", "layer_class"), [(name, getattr(keras.layers, cls)) for name, cls in CELLS.items()]
)
def test_cell_layer_class_and_stacking(cell, layer_class):
    model = tf_sine.build_model(cell=cell, units=5, num_layers=3)
    layers = _recurrent_layers(model)
    assert [type(layer) for layer in layers] == [layer_class] * 3
    assert [layer.return_sequences for layer in layers] == [True, True, False]
    assert [layer.units for layer in layers] == [5, 5, 5]
    head = model.layers[-1]
    assert isinstance(head, keras.layers.Dense) and head.units == 1
    assert head.activation is keras.activations.linear  # the source passed activation None
    assert model.output_shape == (None, 1)


def test_source_model_has_the_source_parameter_count():
    model = tf_sine.build_model()
    # BasicLSTMCell(30) on 10 inputs, then on 30 inputs, then a 30 -> 1 linear layer.
    lstm = lambda inputs: 4 * (30 * (inputs + 30) + 30)  # noqa: E731
    assert model.count_params() == lstm(10) + lstm(30) + 31
    assert model.input_shape == (None, 1, 10)
    assert tf_sine.build_model(layout="sequence", timesteps=7).input_shape == (None, 7, 1)


def test_bidirectional_dropout_and_optimizer_options_show():
    model = tf_sine.build_model(
        cell="gru",
        units=3,
        num_layers=2,
        bidirectional=True,
        dropout=0.25,
        recurrent_dropout=0.125,
        optimizer="adam",
        learning_rate=0.003,
        clipvalue=0.5,
    )
    wrappers = _recurrent_layers(model)
    assert all(isinstance(w, keras.layers.Bidirectional) for w in wrappers)
    assert [w.forward_layer.return_sequences for w in wrappers] == [True, False]
    assert all(w.merge_mode == "concat" for w in wrappers)
    assert all(isinstance(w.forward_layer, keras.layers.GRU) for w in wrappers)
    assert all(
        w.forward_layer.dropout == 0.25 and w.backward_layer.recurrent_dropout == 0.125 for w in wrappers
    )
    assert model.layers[-1].input.shape == (None, 6)  # both directions concatenated
    optimizer = model.optimizer
    assert isinstance(optimizer, keras.optimizers.Adam)
    assert float(optimizer.learning_rate) == pytest.approx(0.003)
    assert (optimizer.clipvalue, optimizer.clipnorm, optimizer.global_clipnorm) == (0.5, None, None)


@pytest.mark.parametrize("clip", ["clipnorm", "clipvalue", "global_clipnorm"])
def test_each_clipping_option_reaches_the_optimizer(clip):
    model = tf_sine.build_model(units=2, **{clip: 1.5})
    optimizer = model.optimizer
    assert isinstance(optimizer, keras.optimizers.Adagrad)
    assert getattr(optimizer, clip) == 1.5
    others = {"clipnorm", "clipvalue", "global_clipnorm"} - {clip}
    assert all(getattr(optimizer, name) is None for name in others)


def test_compiled_with_mse_and_rmse():
    model = tf_sine.build_model(units=2)
    assert isinstance(model.loss, keras.losses.MeanSquaredError)
    x = np.zeros((4, 1, 10), np.float32)
    results = model.evaluate(x, np.ones((4, 1), np.float32), verbose=0, return_dict=True)
    assert set(results) == {"loss", "rmse"}
    assert results["rmse"] == pytest.approx(np.sqrt(results["loss"]), rel=1e-5)


def test_bad_cell_lists_the_allowed_names():
    with pytest.raises(ValueError, match="cell: expected one of 'lstm', 'gru', 'simple_rnn', got 'lstm2'"):
        tf_sine.build_model(cell="lstm2")
    with pytest.raises(ValueError, match="expected at most one of clipnorm, clipvalue, global_clipnorm"):
        tf_sine.build_model(clipnorm=1.0, clipvalue=1.0)
    with pytest.raises(TypeError, match="units: expected a positive integer, got '30'"):
        tf_sine.build_model(units="30")


def test_seeded_builds_are_identical():
    keras.utils.set_random_seed(3)
    first = tf_sine.build_model(units=4).get_weights()
    keras.utils.set_random_seed(3)
    second = tf_sine.build_model(units=4).get_weights()
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_saved_model_loads_with_plain_keras_in_a_fresh_process(tmp_path):
    model = tf_sine.build_model(cell="gru", units=3, bidirectional=True, layout="sequence", timesteps=6)
    x = np.random.default_rng(0).normal(size=(5, 6, 1)).astype(np.float32)
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "m.keras")
    np.save(tmp_path / "x.npy", x)
    code = (
        "import sys, numpy as np, keras\n"
        "m = keras.models.load_model(sys.argv[1] + '/m.keras')\n"
        "np.save(sys.argv[1] + '/y.npy', m.predict(np.load(sys.argv[1] + '/x.npy'), verbose=0))\n"
        "assert 'tf_sine' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, cwd=tmp_path, timeout=300)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, rtol=1e-6, atol=1e-7)


def test_a_learning_rate_given_as_an_int_or_numpy_scalar_is_taken():
    """Keras's optimizers refuse `learning_rate=1` and `np.float32(0.1)`; the factory does not."""
    for rate in (1, np.float32(0.1)):
        model = tf_sine.build_model(units=4, learning_rate=rate)
        assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(float(rate))
