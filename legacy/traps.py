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
    """Keras: Glorot-uniform input kernel and ORTHOGONAL recurrent kernel; TF1: one Glorot matrix."""
    keras.utils.set_random_seed(0)
    layer = keras.layers.LSTM(30)
    layer(np.zeros((1, 1, 10), np.float32))
    recurrent = layer.cell.recurrent_kernel.numpy()  # (30, 120): orthonormal rows
    return {
        "recurrent_rows_orthonormal_error": float(np.abs(recurrent @ recurrent.T - np.eye(30)).max()),
        "keras_kernel_limit": float(np.sqrt(6 / (10 + 120))),
        "tf1_joint_matrix_limit": float(np.sqrt(6 / (10 + 30 + 120))),
    }


def relu_head() -> dict:
    """contrib's fully_connected defaulted to ReLU; a ReLU head cannot output the negative half."""
    _, test_y = tf_sine.generate_data(tf_sine.sine_series()[1])
    clipped = np.maximum(test_y, 0.0)  # the best a ReLU output can do
    return {"best_possible_rmse_with_relu": float(np.sqrt(np.mean((clipped - test_y) ** 2)))}


def squeeze_broadcast() -> dict:
    """A squeezed (N,) prediction minus (N, 1) labels broadcasts to an (N, N) matrix."""
    _, test_y = tf_sine.generate_data(tf_sine.sine_series()[1])
    perfect = tf.squeeze(tf.constant(test_y), axis=1)  # (N,) and exactly right
    naive = tf.reduce_mean(tf.square(perfect - test_y))
    return {
        "broadcast_shape": tuple((perfect - test_y).shape),
        "naive_mse_of_a_perfect_prediction": float(naive),
        "keras_mse_of_a_perfect_prediction": float(keras.losses.MeanSquaredError()(test_y, perfect)),
    }


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


def rmse_label(printed: float = 0.009076) -> dict:
    """The source printed sqrt(mean(err^2)) as "Mean Square Error"."""
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


TRAPS = [one_time_step, shared_cell, forget_bias, initializers, relu_head, squeeze_broadcast, clipping,
         adagrad_defaults, model_dir_resume, rmse_label, headless_show]  # fmt: skip


if __name__ == "__main__":
    for trap in TRAPS:
        print(f"{trap.__name__}: {trap()}")
