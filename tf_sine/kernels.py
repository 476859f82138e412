"""Fused training kernels: the same function as the model's Keras layers, with fewer, larger ops.

The fast engine (`tf_sine.training`) spends most of its time dispatching small TensorFlow ops.
For a model of stacked `keras.layers.LSTM` layers (optionally `Bidirectional`) and a `Dense`
head, `fused_forward(model)` returns a function that computes `model(x, training=True)` with one
op per layer over all time steps, and one op back-propagating through it:

* ``"native_lstm"``: tf_sine's own compiled ops (`tf_sine.native`, C++ built on this machine):
  the input projection of all steps and the weight gradients are one product each, and the
  elementwise math is one fused pass per step. 1.6-2x faster than BlockLSTM on the source's model.
* ``"fused_lstm"``: TensorFlow's `BlockLSTMV2`, when the native library is not available.
  TensorFlow registers the V1 gradient (`BlockLSTMGrad`, gate order i, c, f, o) for it (gate
  order i, f, c, o, as Keras), which gives wrong gradients; we attach `BlockLSTMGradV2`
  through `tf.custom_gradient` instead.

Both read the layers' own variables, so the optimizer updates the Keras model itself and the
saved model stays plain Keras. The tests check forward values and gradients of both against
`keras.layers.LSTM`.

Models the kernel does not cover (GRU, SimpleRNN, dropout, other activations, masking,
stateful layers) get `None`, and the engine calls the Keras layers.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf

from tf_sine import native

Forward = Callable[[tf.Tensor], tf.Tensor]
CellRunner = Callable[[tf.Tensor, keras.layers.LSTMCell], tf.Tensor]
KERNELS = ("native_lstm", "fused_lstm")


def kernel_name() -> str:
    """Which kernel `fused_forward` runs LSTM layers on in this process (see module docstring)."""
    return "native_lstm" if native.load() is not None else "fused_lstm"


def fused_forward(model: keras.Model, shards: int = 1, kernel: str | None = None) -> Forward | None:
    """Returns `x -> model(x, training=True)` built on fused LSTM kernels, or None.

    Args:
        model: a `keras.Sequential` of LSTM / Bidirectional(LSTM) layers and Dense layers, as
            `tf_sine.build_model(cell="lstm")` makes.
        shards: run the batch as this many independent equal slices (it must divide the
            batch), which TensorFlow's inter-op threads can compute side by side: for small
            models the fused kernels' matmuls are too small to use several cores each.
        kernel: one of `KERNELS`; by default `kernel_name()`, the fastest one available.

    Returns:
        A function mapping windows `(batch, time, features)` to the model's output, or None
        when some layer is not covered (the caller then uses the Keras layers).
    """
    if not isinstance(model, keras.Sequential):
        return None
    layers = list(model.layers)
    if not layers or not all(_fusable(layer) for layer in layers):
        return None

    kernel = kernel or kernel_name()
    if kernel not in KERNELS:
        raise ValueError(f"kernel: expected one of {', '.join(KERNELS)}, got {kernel!r}")
    run_cell = native_lstm if kernel == "native_lstm" else tf_lstm

    def forward(x: tf.Tensor) -> tf.Tensor:
        # Time-major (T, B, F), what BlockLSTM takes; for one time step a reshape does it.
        one_step = x.shape[1] == 1
        sequence = tf.reshape(x, [1, -1, x.shape[2]]) if one_step else tf.transpose(x, [1, 0, 2])
        output = None
        for layer in layers:
            if isinstance(layer, keras.layers.Dense):
                output = _dense(sequence if output is None else output, layer)
            elif isinstance(layer, keras.layers.Bidirectional):
                sequence, output = _bidirectional(sequence, layer, run_cell)
            else:
                sequence, output = _lstm_layer(sequence, layer, run_cell)
        return output

    if shards == 1:
        return forward
    return lambda x: tf.concat([forward(part) for part in tf.split(x, shards, axis=0)], axis=0)


def _dense(inputs: tf.Tensor, layer: keras.layers.Dense) -> tf.Tensor:
    """`layer(inputs)` for a 2-D input, as two ops."""
    outputs = tf.matmul(inputs, layer.kernel)
    if layer.use_bias:
        outputs = outputs + layer.bias
    return layer.activation(outputs)


def _fusable(layer: keras.layers.Layer) -> bool:
    if isinstance(layer, keras.layers.Dense):
        return getattr(layer, "lora_rank", None) is None  # _dense computes the plain kernel only
    if isinstance(layer, keras.layers.Bidirectional):
        return layer.merge_mode == "concat" and all(
            _fusable_lstm(inner) for inner in (layer.forward_layer, layer.backward_layer)
        )
    return _fusable_lstm(layer) and not layer.go_backwards


def _fusable_lstm(layer: keras.layers.Layer) -> bool:
    if type(layer) is not keras.layers.LSTM:
        return False
    cell = layer.cell
    return (
        cell.activation is keras.activations.tanh
        and cell.recurrent_activation is keras.activations.sigmoid
        and cell.use_bias
        and cell.dropout == 0
        and cell.recurrent_dropout == 0
        and not layer.stateful
        and not layer.return_state
    )


def _lstm_layer(
    sequence: tf.Tensor, layer: keras.layers.LSTM, run_cell: CellRunner
) -> tuple[tf.Tensor, tf.Tensor]:
    """Runs one LSTM layer over time-major `sequence` (T, B, F).

    Returns:
        `(next_sequence, output)`: the hidden states (T, B, units) for the next layer and the
        layer's Keras output (the states in batch-major order, or the last state).
    """
    states = run_cell(sequence, layer.cell)
    if layer.return_sequences:
        return states, tf.transpose(states, [1, 0, 2])
    return states, states[-1]


def _bidirectional(
    sequence: tf.Tensor, layer: keras.layers.Bidirectional, run_cell: CellRunner
) -> tuple[tf.Tensor, tf.Tensor]:
    """A `Bidirectional(LSTM)` layer, merge mode concat, as Keras computes it."""
    forward_states = run_cell(sequence, layer.forward_layer.cell)
    # The backward layer (go_backwards=True) reads the sequence from its end.
    backward_states = run_cell(tf.reverse(sequence, [0]), layer.backward_layer.cell)
    if layer.return_sequences:
        # Keras flips the backward outputs back into time order before concatenating.
        states = tf.concat([forward_states, tf.reverse(backward_states, [0])], axis=-1)
        return states, tf.transpose(states, [1, 0, 2])
    last = tf.concat([forward_states[-1], backward_states[-1]], axis=-1)
    return last[tf.newaxis], last


def tf_lstm(sequence: tf.Tensor, cell: keras.layers.LSTMCell) -> tf.Tensor:
    """Hidden states `(T, B, u)` of `cell` over time-major `sequence`, zero initial state, on
    TensorFlow's own ops (the ``"fused_lstm"`` kernel).

    A single time step (the source's legacy layout) needs no recurrence: with a zero initial
    state the recurrent kernel and the forget gate drop out, and six plain ops beat BlockLSTM's
    set-up. Longer sequences run on `block_lstm`.
    """
    if sequence.shape[0] == 1:
        gates = tf.matmul(sequence[0], cell.kernel) + cell.bias
        i, _, g, o = tf.split(gates, 4, axis=-1)  # gate order i, f, c, o
        return (tf.sigmoid(o) * tf.tanh(tf.sigmoid(i) * tf.tanh(g)))[tf.newaxis]
    return block_lstm(sequence, cell)


def block_lstm(sequence: tf.Tensor, cell: keras.layers.LSTMCell) -> tf.Tensor:
    """The hidden states of a Keras `LSTMCell` run over `sequence`, zero initial state.

    Args:
        sequence: time-major inputs, shape `(T, B, F)`.
        cell: the Keras LSTM cell whose `kernel` (F, 4u), `recurrent_kernel` (u, 4u) and
            `bias` (4u,) are used (gate order i, f, c, o).

    Returns:
        Hidden states, shape `(T, B, u)`, equal to `keras.layers.LSTM(return_sequences=True)`.
    """
    units = cell.units
    weights = tf.concat([cell.kernel, cell.recurrent_kernel], axis=0)  # (F + u, 4u), as BlockLSTM takes
    bias = tf.convert_to_tensor(cell.bias)

    @tf.custom_gradient
    def run(inputs: tf.Tensor, weights: tf.Tensor, bias: tf.Tensor):
        steps = tf.shape(inputs, out_type=tf.int64)[0]
        zero_state = tf.zeros([tf.shape(inputs)[1], units], inputs.dtype)
        no_peephole = tf.zeros([units], inputs.dtype)
        common = dict(
            seq_len_max=steps, x=inputs, cs_prev=zero_state, h_prev=zero_state, w=weights,
            wci=no_peephole, wcf=no_peephole, wco=no_peephole, b=bias, use_peephole=False,
        )  # fmt: skip
        i, cs, f, o, ci, co, h = tf.raw_ops.BlockLSTMV2(cell_clip=0.0, **common)

        def gradient(h_grad: tf.Tensor):
            grads = tf.raw_ops.BlockLSTMGradV2(
                i=i, cs=cs, f=f, o=o, ci=ci, co=co, h=h, cs_grad=tf.zeros_like(cs), h_grad=h_grad, **common
            )
            return grads[0], grads[3], grads[7]  # inputs, weights, bias

        return h, gradient

    return run(sequence, weights, bias)


def native_lstm(sequence: tf.Tensor, cell: keras.layers.LSTMCell) -> tf.Tensor:
    """`tf_lstm` on tf_sine's compiled ops (`tf_sine.native`), the ``"native_lstm"`` kernel.

    The forward op also returns the cell states, their tanh and the activated gates, which only
    its gradient op reads. All time steps, a single one included, take the same two ops.
    """
    ops = native.load()
    if ops is None:
        raise RuntimeError("the native LSTM kernels are not available (see tf_sine.native)")

    @tf.custom_gradient
    def run(inputs: tf.Tensor, kernel: tf.Tensor, recurrent_kernel: tf.Tensor, bias: tf.Tensor):
        states, *saved = ops.tf_sine_lstm(inputs, kernel, recurrent_kernel, bias)

        def gradient(states_grad: tf.Tensor):
            return ops.tf_sine_lstm_grad(inputs, kernel, recurrent_kernel, states, *saved, states_grad)

        return states, gradient

    weights = (cell.kernel, cell.recurrent_kernel, cell.bias)
    return run(sequence, *(tf.convert_to_tensor(weight) for weight in weights))
