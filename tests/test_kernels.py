"""The fused kernels compute the same function, and the same gradients, as Keras's layers."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import native_ops

import tf_sine
from tf_sine.kernels import KERNELS, default_kernel, fused_forward, kernel_name, training_device

FUSED = ("native", "tensorflow")  # the families with kernels of their own ("keras" has none)


def _values_and_gradients(model, x, forward):
    with tf.GradientTape() as tape:
        tape.watch(x)
        output = forward(x)
        loss = tf.reduce_sum(tf.sin(3.0 * output))  # a non-linear loss exercises every gradient
    variables = [x, *model.trainable_variables]
    grads = tape.gradient(loss, variables)
    # The recurrent kernel of a one-step layer is unconnected: Keras's gradient is zero there.
    grads = [np.zeros(v.shape, np.float32) if g is None else g for g, v in zip(grads, variables, strict=True)]
    return output.numpy(), [np.asarray(g) for g in grads]


LSTM_MODELS = [
    {"layout": "legacy", "timesteps": 10},
    {"layout": "sequence", "timesteps": 10},
    {"layout": "sequence", "timesteps": 37, "num_layers": 3},
    {"layout": "sequence", "timesteps": 6, "bidirectional": True},
    {"layout": "legacy", "timesteps": 4, "bidirectional": True, "num_layers": 1},
]
LSTM_IDS = ["legacy", "sequence", "deep-long", "bidirectional", "bidirectional-legacy"]
OTHER_CELLS = [
    {"cell": cell, **options}
    for cell in ("gru", "simple_rnn")
    for options in ({"layout": "legacy", "timesteps": 10}, {"layout": "sequence", "timesteps": 23, "num_layers": 3},
                    {"layout": "sequence", "timesteps": 6, "bidirectional": True})
]  # fmt: skip


def _assert_same_as_keras(options, kernel):
    if kernel == "native":
        native_ops()  # skips, saying why, where this machine is not expected to build them
    keras.utils.set_random_seed(1)
    model = tf_sine.build_model(units=7, **options)
    # Non-zero biases, so every gate's bias gradient is checked too.
    for variable in model.trainable_variables:
        variable.assign(variable + np.random.default_rng(2).normal(0, 0.1, variable.shape).astype(np.float32))
    window = model.input_shape[1:]
    x = tf.constant(np.random.default_rng(3).normal(size=(5, *window)).astype(np.float32))
    fused = fused_forward(model, kernel=kernel)
    assert fused is not None
    keras_out, keras_grads = _values_and_gradients(model, x, lambda v: model(v, training=True))
    fused_out, fused_grads = _values_and_gradients(model, x, fused)
    np.testing.assert_allclose(fused_out, keras_out, rtol=1e-5, atol=1e-6)
    for mine, theirs in zip(fused_grads, keras_grads, strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("options", LSTM_MODELS, ids=LSTM_IDS)
@pytest.mark.parametrize("kernel", FUSED)
def test_fused_lstm_equals_keras_lstm(options, kernel):
    _assert_same_as_keras(options, kernel)


@pytest.mark.parametrize("options", OTHER_CELLS, ids=lambda o: "-".join(str(v) for v in o.values()))
def test_native_gru_and_simple_rnn_equal_keras(options):
    _assert_same_as_keras(options, "native")
    assert kernel_name(tf_sine.build_model(units=3, **options), "native") == f"native_{options['cell']}"


def test_tensorflow_registers_a_wrong_gradient_for_block_lstm_v2():
    """Why kernels.py attaches its own gradient: TF's own one for BlockLSTMV2 is the V1 layout's."""
    from tensorflow.python.framework import ops

    registered = ops.gradient_registry.lookup("BlockLSTMV2")
    assert registered is ops.gradient_registry.lookup("BlockLSTM")


@pytest.mark.parametrize(
    "options", [{"dropout": 0.1}, {"recurrent_dropout": 0.2}, {"cell": "gru", "dropout": 0.1}]
)
@pytest.mark.parametrize("kernel", KERNELS)
def test_models_no_kernel_covers_fall_back_to_keras(options, kernel):
    model = tf_sine.build_model(units=3, **options)
    assert fused_forward(model, kernel=kernel) is None and kernel_name(model, kernel) == "keras"


@pytest.mark.parametrize("cell", ["gru", "simple_rnn"])
def test_tensorflow_kernels_cover_lstm_only(cell):
    model = tf_sine.build_model(units=3, cell=cell)
    assert fused_forward(model, kernel="tensorflow") is None and kernel_name(model, "tensorflow") == "keras"
    assert kernel_name(tf_sine.build_model(units=3), "tensorflow") == "fused_lstm"


def test_a_lora_head_is_left_to_keras():
    model = tf_sine.build_model(units=3)
    model.layers[-1].enable_lora(1)
    assert fused_forward(model, kernel="native") is None


def test_a_gru_without_reset_after_is_left_to_keras():
    model = keras.Sequential(
        [keras.Input((5, 1)), keras.layers.GRU(3, reset_after=False), keras.layers.Dense(1)]
    )
    assert fused_forward(model, kernel="native") is None


def test_an_unknown_kernel_is_refused_by_name():
    with pytest.raises(ValueError, match="kernel: expected one of native, tensorflow, keras, got 'cudnn'"):
        fused_forward(tf_sine.build_model(units=3), kernel="cudnn")


@pytest.mark.parametrize(
    ("devices", "expected"), [(["CPU"], "CPU"), (["CPU", "GPU"], "GPU"), (["CPU", "GPU", "GPU"], "GPU")]
)
def test_a_gpu_trains_on_kerass_layers_and_a_cpu_on_the_fastest_kernels(devices, expected):
    """The native ops are CPU-only: where TensorFlow sees a GPU (the device list injected here),
    the model's variables live there, and Keras's cuDNN-backed layers run instead."""
    assert training_device(devices) == expected
    model = tf_sine.build_model(units=3, layout="sequence")
    chosen = default_kernel(training_device(devices))
    if expected == "GPU":
        assert chosen == "keras" and fused_forward(model, kernel=chosen) is None
        assert kernel_name(model, chosen) == "keras"
    else:
        assert chosen in FUSED and fused_forward(model, kernel=chosen) is not None
        assert kernel_name(model, chosen) in ("native_lstm", "fused_lstm")
    assert training_device() == "CPU"  # this machine, as TensorFlow sees it (no GPU in the suite)


def test_fast_engine_uses_the_kernel_and_matches_fit():
    from tf_sine.engines import FastEngine

    x, y = tf_sine.generate_data(np.sin(np.linspace(0, 20, 300)), 6, "sequence")
    predictions = {}
    for engine in ("fast", "fit"):
        keras.utils.set_random_seed(0)
        model = tf_sine.build_model(units=5, timesteps=6, layout="sequence")
        if engine == "fast":
            assert FastEngine(model, x, y, 16).fused
        tf_sine.train(model, x, y, steps=40, batch_size=16, engine=engine, progress=False)
        predictions[engine] = tf_sine.predict(model, x)
    np.testing.assert_allclose(predictions["fast"], predictions["fit"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kernel", FUSED)
def test_a_batch_in_two_shards_computes_the_same_values_and_gradients(kernel):
    if kernel == "native":
        native_ops()
    keras.utils.set_random_seed(4)
    model = tf_sine.build_model(units=6, timesteps=8, layout="sequence")
    x = tf.constant(np.random.default_rng(5).normal(size=(6, 8, 1)).astype(np.float32))
    whole_out, whole_grads = _values_and_gradients(model, x, fused_forward(model, kernel=kernel))
    split_out, split_grads = _values_and_gradients(model, x, fused_forward(model, shards=2, kernel=kernel))
    np.testing.assert_allclose(split_out, whole_out, rtol=1e-6, atol=1e-7)
    for mine, theirs in zip(split_grads, whole_grads, strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("inter", "intra", "layout", "batch", "expected"),
    [("2", "1", "sequence", 32, 2), ("2", "1", "legacy", 32, 1), ("2", "1", "sequence", 31, 1),
     ("1", "0", "sequence", 32, 1), ("2", "2", "sequence", 32, 1)],
)  # fmt: skip
def test_batches_are_split_only_where_two_single_threaded_halves_pay(monkeypatch, inter, intra, layout,
                                                                      batch, expected):  # fmt: skip
    from tf_sine.engines import _shards

    monkeypatch.setenv("TF_NUM_INTEROP_THREADS", inter)
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", intra)
    model = tf_sine.build_model(units=4, timesteps=5, layout=layout)
    assert _shards(model, batch, strategy=None) == expected
