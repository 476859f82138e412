"""The semantic traps of porting the source script, each measured on TensorFlow 2 / Keras 3.

    python legacy/traps.py

prints the numbers MIGRATION.md quotes; `tests/test_legacy.py` checks them. Each function returns
a dict of plain numbers so a test can assert what the guide claims.
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

import tf_sine


def one_time_step() -> dict:
    """(N, 1, 10) is ONE time step of 10 values: the recurrent kernel gets no gradient at all."""
    x, y = tf_sine.generate_data(np.sin(np.linspace(0, 10, 200)))
    unstacked = tf.unstack(x, axis=1)  # what `tf.unpack(X, axis=1)` fed to `tf.nn.rnn`
    norms = {}
    for layout in ("legacy", "sequence"):
        keras.utils.set_random_seed(0)
        model = tf_sine.build_model(units=8, num_layers=1, layout=layout)
        windows = x if layout == "legacy" else np.ascontiguousarray(x.transpose(0, 2, 1))
        with tf.GradientTape() as tape:
            loss = model.loss(y, model(windows, training=True))
        gradient = tape.gradient(loss, model.layers[0].cell.recurrent_kernel)
        norms[layout] = float(tf.norm(gradient)) if gradient is not None else 0.0
    return {
        "rnn_inputs": len(unstacked),
        "rnn_input_shape": tuple(unstacked[0].shape),
        "recurrent_kernel_gradient_norm_legacy": norms["legacy"],
        "recurrent_kernel_gradient_norm_sequence": norms["sequence"],
    }


def shared_cell() -> dict:
    """`[lstm_cell] * NUM_LAYERS` is one object twice; Keras cannot stack it (inputs 10 vs 30)."""
    cell = keras.layers.LSTMCell(30)
    cells = [cell] * 2
    try:
        keras.layers.RNN(cells)(np.zeros((2, 1, 10), np.float32))
        error = ""
    except Exception as caught:  # TF raises InvalidArgumentError from the MatMul
        error = type(caught).__name__
    return {"same_object": cells[0] is cells[1], "error": error}


def forget_bias() -> dict:
    """BasicLSTMCell's constant forget_bias=1.0 against Keras's unit_forget_bias (bias init 1)."""
    keras.utils.set_random_seed(0)
    layer = keras.layers.LSTM(4)
    x = tf.constant(np.random.default_rng(0).normal(size=(3, 5, 2)), tf.float32)
    layer(x)
    cell = layer.cell
    forget_slice = cell.bias.numpy()[4:8]

    def tf1_style(bias_offset: float, inputs: tf.Tensor, bias: tf.Tensor) -> tf.Tensor:
        # BasicLSTMCell: f = sigmoid(z_f + forget_bias) with its bias variable initialised to 0.
        h = c = tf.zeros([3, 4])
        for t in range(inputs.shape[1]):
            z = tf.matmul(inputs[:, t], cell.kernel) + tf.matmul(h, cell.recurrent_kernel) + bias
            i, f, g, o = tf.split(z, 4, axis=1)
            c = tf.sigmoid(f + bias_offset) * c + tf.sigmoid(i) * tf.tanh(g)
            h = tf.sigmoid(o) * tf.tanh(c)
        return h

    tf1_bias = tf.Variable(cell.bias.numpy() - np.r_[np.zeros(4), np.ones(4), np.zeros(8)].astype(np.float32))
    with tf.GradientTape(persistent=True) as tape:
        keras_out = layer(x)
        tf1_out = tf1_style(1.0, x, tf1_bias)
        keras_loss, tf1_loss = tf.reduce_sum(keras_out**2), tf.reduce_sum(tf1_out**2)
    keras_grad = tape.gradient(keras_loss, cell.bias)
    tf1_grad = tape.gradient(tf1_loss, tf1_bias)
    return {
        "keras_forget_bias_init": float(forget_slice.mean()),
        "output_max_difference": float(tf.reduce_max(tf.abs(keras_out - tf1_out))),
        "bias_gradient_max_difference": float(tf.reduce_max(tf.abs(keras_grad - tf1_grad))),
    }


def initializers() -> dict:
    """TF 0.12 drew the cell's joint [x, h] matrix from uniform_unit_scaling (limit sqrt(3 / fan_in),
    fan_in = inputs + units), TF 1.0 from Glorot; Keras draws the input kernel Glorot-uniform and the
    recurrent kernel orthogonal. With one time step (h0 = 0) only the input rows are ever used."""
    keras.utils.set_random_seed(0)
    first, second = keras.layers.LSTM(30, return_sequences=True), keras.layers.LSTM(30)
    second(first(np.zeros((1, 1, 10), np.float32)))
    recurrent = first.cell.recurrent_kernel.numpy()  # (30, 120): orthonormal rows
    inputs = (10, 30)  # the input width of layer 1 and of layer 2
    return {
        "recurrent_rows_orthonormal_error": float(np.abs(recurrent @ recurrent.T - np.eye(30)).max()),
        "keras_kernel_max_abs": [float(np.abs(layer.cell.kernel.numpy()).max()) for layer in (first, second)],
        "keras_kernel_limit": [float(np.sqrt(6 / (n + 120))) for n in inputs],
        "tf012_limit": [float(np.sqrt(3 / (n + 30))) for n in inputs],  # uniform_unit_scaling
        "tf10_glorot_limit": [float(np.sqrt(6 / (n + 30 + 120))) for n in inputs],
    }


def relu_head() -> dict:
    """contrib's fully_connected defaulted to ReLU; a ReLU head cannot output the negative half."""
    _, test_y = tf_sine.generate_data(tf_sine.sine_series()[1])
    clipped = np.maximum(test_y, 0.0)  # the best a ReLU output can do
    return {"best_possible_rmse_with_relu": float(np.sqrt(np.mean((clipped - test_y) ** 2)))}


def squeeze_broadcast() -> dict:
    """A squeezed (N,) prediction minus (N, 1) labels broadcasts to an (N, N) matrix. contrib's loss
    did not reshape: it asserted compatible shapes, the check TensorFlow 2 still has."""
    _, test_y = tf_sine.generate_data(tf_sine.sine_series()[1])
    perfect = tf.squeeze(tf.constant(test_y), axis=1)  # (N,) and exactly right
    naive = tf.reduce_mean(tf.square(perfect - test_y))
    try:  # loss_ops.mean_squared_error: predictions.get_shape().assert_is_compatible_with(labels...)
        tf.TensorShape([32, 1]).assert_is_compatible_with(tf.TensorShape([32]))
        contrib_check = ""
    except ValueError as caught:
        contrib_check = type(caught).__name__
    return {
        "broadcast_shape": tuple((perfect - test_y).shape),
        "naive_mse_of_a_perfect_prediction": float(naive),
        "keras_mse_of_a_perfect_prediction": float(keras.losses.MeanSquaredError()(test_y, perfect)),
        "contrib_shape_check_of_32x1_against_32": contrib_check,
    }


def squeeze_dims() -> dict:
    """The script's `array_ops.squeeze(x, squeeze_dims=[1])` is `tf.compat.v1.squeeze`: it still runs."""
    import warnings

    from tensorflow.python.ops import array_ops  # the script's own import

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        squeezed = array_ops.squeeze(tf.zeros([3, 1]), squeeze_dims=[1])
    return {"is_compat_v1_squeeze": array_ops.squeeze is tf.compat.v1.squeeze, "shape": tuple(squeezed.shape)}


def clipping() -> dict:
    """The three Keras clipping options on gradients [3, 4] (norm 5) and [12] (norm 12), clip 1."""
    results = {}
    for option in ("global_clipnorm", "clipnorm", "clipvalue"):
        first, second = keras.Variable([0.0, 0.0]), keras.Variable([0.0])
        optimizer = keras.optimizers.SGD(learning_rate=1.0, **{option: 1.0})
        optimizer.apply([tf.constant([3.0, 4.0]), tf.constant([12.0])], [first, second])
        results[option] = [round(-float(v), 4) for v in [*first.numpy(), *second.numpy()]]  # the step
    return results


def adagrad_defaults() -> dict:
    """tf.train.AdagradOptimizer(0.1) then; keras.optimizers.Adagrad() now."""
    optimizer = keras.optimizers.Adagrad()
    variable = keras.Variable([0.0])
    keras.optimizers.Adagrad(learning_rate=0.1).apply([tf.constant([1.0])], [variable])
    return {
        "keras_default_learning_rate": float(optimizer.learning_rate),
        "keras_initial_accumulator_value": optimizer.initial_accumulator_value,
        "keras_epsilon": optimizer.epsilon,
        "first_step_keras": float(-variable.numpy()[0]),
        "first_step_tf1": float(0.1 * 1.0 / np.sqrt(0.1 + 1.0)),  # var -= lr * g / sqrt(acc), acc = 0.1 + g^2
    }


def model_dir_resume() -> dict:
    """Running the script twice on one model_dir trained 3000 + 3000 steps; the bridge does too."""
    x, y = tf_sine.generate_data(tf_sine.sine_series()[0][:1000])
    with tempfile.TemporaryDirectory() as model_dir:
        tf_sine.LegacyRegressor(model_dir, units=4).fit(x, y, steps=30)
        second_run = tf_sine.LegacyRegressor(model_dir, units=4).fit(x, y, steps=30)
        return {"global_step_after_two_runs_of_30": second_run.global_step}


def rmse_label(printed: float = 0.002470) -> dict:
    """The source printed sqrt(mean(err^2)) as "Mean Square Error" (0.002470: its published run)."""
    return {"printed": printed, "actual_mse": printed**2}


def headless_show() -> dict:
    """`plt.show()` on a machine without a display: matplotlib falls back to Agg, shows nothing."""
    import subprocess
    import sys

    code = (
        "import warnings; warnings.simplefilter('always')\n"
        "import matplotlib, matplotlib.pyplot as plt\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    plt.plot([0, 1]); plt.show()\n"
        "print(matplotlib.get_backend(), len(caught))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")}
    with tempfile.TemporaryDirectory() as folder:
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, cwd=folder, capture_output=True, text=True
        )
        backend, warning_count = out.stdout.split()
        return {"backend": backend, "warnings": int(warning_count), "files_written": len(os.listdir(folder))}


def forget_bias_weight_decay(learning_rate: float = 0.1) -> dict:
    """The two forget-bias forms part under decoupled weight decay (Keras AdamW, weight_decay=0.004):
    Keras decays the bias that holds the 1.0, TF1's constant forget_bias was never decayed."""
    gradient = [tf.constant([0.3])]
    result = {}
    for name in ("AdamW", "Adam"):
        keras_bias, tf1_bias = keras.Variable([1.0]), keras.Variable([0.0])  # forget offset 1 + 0
        for bias in (keras_bias, tf1_bias):
            getattr(keras.optimizers, name)(learning_rate=learning_rate).apply(gradient, [bias])
        result[f"{name}_offset_difference"] = float(tf1_bias.numpy()[0] + 1.0 - keras_bias.numpy()[0])
    result["weight_decay"] = float(keras.optimizers.AdamW().weight_decay)
    return result


def dropout_masks(rate: float = 0.5, units: int = 64, steps: int = 10) -> dict:
    """Keras's `dropout=` draws ONE input mask per sequence and applies it at every time step;
    0.12's DropoutWrapper called `nn_ops.dropout` at every step (a new mask each step)."""
    keras.utils.set_random_seed(0)
    layer = keras.layers.LSTM(units, dropout=rate, return_sequences=True)
    layer.build((1, steps, units))
    # A cell that shows its input: candidate g = x (identity), gates i = o = 1, f = 0, no recurrence.
    kernel = np.zeros((units, 4 * units), np.float32)
    kernel[:, 2 * units : 3 * units] = np.eye(units)  # Keras's gate order: i, f, c (g), o
    bias = np.concatenate(
        [np.full(units, 30.0), np.full(units, -30.0), np.zeros(units), np.full(units, 30.0)]
    )
    layer.cell.kernel.assign(kernel)
    layer.cell.recurrent_kernel.assign(np.zeros((units, 4 * units), np.float32))
    layer.cell.bias.assign(bias.astype(np.float32))
    kept = np.abs(layer(np.ones((1, steps, units), np.float32), training=True).numpy()[0]) > 1e-6
    per_step = np.stack(
        [tf.nn.dropout(tf.ones([units]), rate=rate).numpy() != 0 for _ in range(steps)]
    )  # what a fresh mask per step (DropoutWrapper) keeps
    return {
        "kept_fraction": float(kept.mean()),
        "keras_steps_with_step0_mask": int(sum((row == kept[0]).all() for row in kept)),
        "per_step_masks_with_step0_mask": int(sum((row == per_step[0]).all() for row in per_step)),
        "steps": steps,
    }


class _DataFeeder:
    """TF 0.12 contrib.learn's DataFeeder, as `SKCompat.fit(x, y, batch_size)` built it (shuffle=True,
    epochs=None), transcribed from learn_io/data_feeder.py:273-276 and 379-394."""

    def __init__(self, n: int, batch_size: int):
        self.n, self.batch_size = n, batch_size
        self.random_state = np.random.RandomState(42)  # random_state=None: always 42
        self.indices = self.random_state.permutation(n)
        self.offset = 0

    def next_batch(self) -> np.ndarray:
        end = min(self.n, self.offset + self.batch_size)
        batch = self.indices[self.offset : end]
        self.offset += self.batch_size
        if self.offset >= self.n:
            self.indices = self.random_state.permutation(self.n)
            self.offset = 0
        return batch


def datafeeder_batches(n: int, batch_size: int, steps: int) -> list[np.ndarray]:
    """The window indices of the batches one `fit` call fed, step by step."""
    feeder = _DataFeeder(n, batch_size)
    return [feeder.next_batch() for _ in range(steps)]


def datafeeder_order(steps: int = 3000, batch_size: int = 32) -> dict:
    """SKCompat.fit's order: RandomState(42) permutations in sequential slices, a short batch at the
    end of every pass, and the same order again on the next fit call (the 3000 + 3000 run)."""
    n = len(tf_sine.generate_data(tf_sine.sine_series()[0])[0])
    first_fit, second_fit = datafeeder_batches(n, batch_size, steps), datafeeder_batches(n, batch_size, steps)
    short = [step for step, batch in enumerate(first_fit, 1) if len(batch) < batch_size]
    return {
        "windows": n,
        "short_batch_steps": short,
        "short_batch_size": len(first_fit[short[0] - 1]),
        "second_fit_replays_first": all(
            np.array_equal(a, b) for a, b in zip(first_fit, second_fit, strict=True)
        ),
    }


def state_order() -> dict:
    """TF1's LSTMStateTuple is (c, h); Keras returns [output, h, c] and takes initial_state=[h, c]."""
    keras.utils.set_random_seed(0)
    layer = keras.layers.LSTM(4, return_state=True)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 1, 2)).astype(np.float32)
    output, first, second = (t.numpy() for t in layer(x))
    # One step by hand from zero state (Keras's gate order i, f, c, o): c = i * g, h = o * tanh(c).
    z = x[:, 0] @ layer.cell.kernel.numpy() + layer.cell.bias.numpy()
    i, _, g, o = np.split(z, 4, axis=1)
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    c = sigmoid(i) * np.tanh(g)
    h = sigmoid(o) * np.tanh(c)
    state_h, state_c = (rng.normal(size=(3, 4)).astype(np.float32) for _ in range(2))
    keras_order = layer(x, initial_state=[state_h, state_c])[0]
    tf1_order = layer(x, initial_state=[state_c, state_h])[0]  # an LSTMStateTuple (c, h) passed as is
    return {
        "second_is_h_error": float(np.abs(first - h).max()),
        "third_is_c_error": float(np.abs(second - c).max()),
        "output_equals_second": bool(np.array_equal(output, first)),
        "swapped_initial_state_output_difference": float(np.abs(keras_order - tf1_order).max()),
    }


def loss_argument_order() -> dict:
    """contrib's losses took (predictions, labels); Keras's and tf.losses' take (y_true, y_pred).
    Swapping them is harmless for MSE and MAE, not for MAPE: here predictions 10% too large."""
    _, test_y = tf_sine.generate_data(tf_sine.sine_series()[1])
    predictions = 1.1 * test_y
    result = {}
    for name in ("MeanSquaredError", "MeanAbsoluteError", "MeanAbsolutePercentageError"):
        loss = getattr(keras.losses, name)()
        result[name] = [float(loss(test_y, predictions)), float(loss(predictions, test_y))]  # right, swapped
    return result


def int_hyperparameters() -> dict:
    """optimize_loss refused `learning_rate=1` (an int) and `clip_gradients=5`. Keras 3 still refuses
    a learning rate that is not a Python float (an int, a NumPy float32), but takes int clip values."""
    learning_rates = {}
    for name, value in (("int 1", 1), ("np.float32 0.1", np.float32(0.1)), ("float 0.1", 0.1)):
        try:
            keras.optimizers.Adagrad(learning_rate=value)
            learning_rates[name] = "accepted"
        except ValueError as caught:
            learning_rates[name] = type(caught).__name__
    steps = []
    for clipnorm in (5, 5.0):
        variable = keras.Variable([0.0])
        keras.optimizers.SGD(learning_rate=1.0, clipnorm=clipnorm).apply([tf.constant([20.0])], [variable])
        steps.append(float(-variable.numpy()[0]))
    return {
        "learning_rate": learning_rates,
        "step_clipnorm_int_5": steps[0],
        "step_clipnorm_float_5": steps[1],
    }


def legacy_layout_inert(units: int = 8) -> dict:
    """In the (N, 1, 10) layout h0 = c0 = 0: the recurrent kernels and the forget-gate biases of both
    layers have no effect on any output. Redraw them: the outputs do not move (the sequence layout
    as control)."""
    x, _ = tf_sine.generate_data(np.sin(np.linspace(0, 10, 200)))
    rng = np.random.default_rng(1)
    changes = {}
    for layout, windows in (("legacy", x), ("sequence", np.ascontiguousarray(x.transpose(0, 2, 1)))):
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [keras.Input(windows.shape[1:]), keras.layers.LSTM(units, return_sequences=True),
             keras.layers.LSTM(units), keras.layers.Dense(1)]
        )  # fmt: skip
        before = model(windows).numpy()
        for layer in model.layers[:2]:
            cell = layer.cell
            cell.recurrent_kernel.assign(rng.normal(size=cell.recurrent_kernel.shape).astype(np.float32))
            bias = cell.bias.numpy()
            bias[units : 2 * units] = rng.normal(scale=3.0, size=units)  # the forget gate's
            cell.bias.assign(bias)
        changes[layout] = float(np.abs(model(windows).numpy() - before).max())
    return {"output_change_legacy": changes["legacy"], "output_change_sequence": changes["sequence"]}


TRAPS = [one_time_step, shared_cell, forget_bias, forget_bias_weight_decay, initializers, relu_head,
         squeeze_broadcast, squeeze_dims, clipping, adagrad_defaults, model_dir_resume, rmse_label,
         headless_show, dropout_masks, datafeeder_order, state_order, loss_argument_order,
         int_hyperparameters, legacy_layout_inert]  # fmt: skip


if __name__ == "__main__":
    for trap in TRAPS:
        print(f"{trap.__name__}: {trap()}")
