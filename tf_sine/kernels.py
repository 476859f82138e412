"""Fused training kernels: the same function as the model's Keras layers, with fewer, larger ops.

The fast engine (`tf_sine.training`) spends most of its time dispatching small TensorFlow ops.
For a model of stacked recurrent layers (optionally `Bidirectional`) and a `Dense` head,
`fused_forward(model)` returns a function that computes `model(x, training=True)` with one op
per layer over all time steps, and one op back-propagating through it. Two families of kernels
(`KERNELS`):

* ``"native"``: tf_sine's own compiled ops (`tf_sine.native`, C++ built on this machine) for
  LSTM, GRU and SimpleRNN layers: the input projection of all steps and the weight gradients
  are one product each, and the elementwise math is one fused pass per step (README, "Training
  engines and performance", compares them with BlockLSTM).
* ``"tensorflow"``: TensorFlow's `BlockLSTMV2`, for LSTM layers only, when the native library
  is not available. TensorFlow registers the V1 gradient (`BlockLSTMGrad`, gate order i, c, f,
  o) for it (gate order i, f, c, o, as Keras), which gives wrong gradients; we attach
  `BlockLSTMGradV2` through `tf.custom_gradient` instead.
* ``"keras"``: none; Keras's own layers run. The choice on a GPU (`default_kernel`): the native
  ops are registered for the CPU only, and placed between GPU-resident variables they would
  copy every weight and activation across at every step, while Keras's LSTM and GRU layers
  run on cuDNN there.

Both read the layers' own variables, so the optimizer updates the Keras model itself and the
saved model stays plain Keras. The tests check forward values and gradients against the Keras
layers. Layers no kernel covers (dropout, other activations, GRU with `reset_after=False`,
masking, stateful layers) make `fused_forward` return None, and the engine calls the Keras
layers. `kernel_name(model)` says which kernel a model trains on (`metrics.json`'s "kernel").
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from tf_sine import native
from tf_sine.errors import ConfigError

Forward = Callable[[tf.Tensor], tf.Tensor]
CellRunner = Callable[[tf.Tensor, keras.layers.Layer], tf.Tensor]
KERNELS = ("native", "tensorflow", "keras")
RECURRENT = {keras.layers.LSTM: "lstm", keras.layers.GRU: "gru", keras.layers.SimpleRNN: "simple_rnn"}


def training_device(devices: Sequence[str] | None = None) -> str:
    """``"GPU"`` where TensorFlow sees a GPU (Keras then places the model's variables on it),
    else ``"CPU"``.

    Args:
        devices: the device types to decide from, such as ``["CPU", "GPU"]``; by default
            TensorFlow's logical devices in this process.
    """
    if devices is None:
        devices = [device.device_type for device in tf.config.list_logical_devices()]
    return "GPU" if "GPU" in devices else "CPU"


def default_kernel(device: str | None = None) -> str:
    """The fastest kernel family on `device` (default `training_device()`): on a CPU
    ``"native"`` if the library loads, else ``"tensorflow"``; on a GPU ``"keras"``."""
    if (device or training_device()) == "GPU":
        return "keras"
    return "native" if native.load() is not None else "tensorflow"


def kernel_name(model: keras.Model, kernel: str | None = None) -> str:
    """What `fused_forward(model, kernel=kernel)` runs the recurrent layers on, for reports:
    ``"native_lstm"`` (``"native_gru"``, ...), ``"fused_lstm"`` (BlockLSTM) or ``"keras"``."""
    runners = _runners(model, kernel)
    if runners is None:
        return "keras"
    if (kernel or default_kernel()) == "tensorflow":
        return "fused_lstm"
    kinds = sorted({cell_kind(layer) for layer in _recurrent_layers(model)})
    return "native_" + "+".join(kinds)


def fused_forward(model: keras.Model, shards: int = 1, kernel: str | None = None) -> Forward | None:
    """Returns `x -> model(x, training=True)` built on fused recurrent kernels, or None.

    Args:
        model: a `keras.Sequential` of recurrent (optionally Bidirectional) and Dense layers, as
            `tf_sine.build_model` makes.
        shards: run the batch as this many independent equal slices (it must divide the
            batch), which TensorFlow's inter-op threads can compute side by side: each kernel
            op runs on one thread.
        kernel: one of `KERNELS`; by default `default_kernel()`, the fastest one available.

    Returns:
        A function mapping windows `(batch, time, features)` to the model's output, or None
        when some layer is not covered (the caller then uses the Keras layers).
    """
    runners = _runners(model, kernel)
    if runners is None:
        return None
    layers = list(model.layers)

    def forward(x: tf.Tensor) -> tf.Tensor:
        # Time-major (T, B, F), what the kernels take; for one time step a reshape does it.
        one_step = x.shape[1] == 1
        sequence = tf.reshape(x, [1, -1, x.shape[2]]) if one_step else tf.transpose(x, [1, 0, 2])
        output = None
        for layer in layers:
            if isinstance(layer, keras.layers.Dense):
                output = _dense(sequence if output is None else output, layer)
            elif isinstance(layer, keras.layers.Bidirectional):
                sequence, output = _bidirectional(sequence, layer, runners[cell_kind(layer.forward_layer)])
            else:
                sequence, output = _recurrent_layer(sequence, layer, runners[cell_kind(layer)])
        return output

    if shards == 1:
        return forward
    return lambda x: tf.concat([forward(part) for part in tf.split(x, shards, axis=0)], axis=0)


_INFERENCE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def native_inference(model: keras.Model) -> Callable[[np.ndarray], tf.Tensor] | None:
    """A traced `model(x)` on the native kernels, for prediction, or None where they do not
    cover the model or are not available (the caller then runs the Keras layers).

    The models covered have no dropout, so training and inference compute the same function.
    Traced once per model for any number of windows; it reads the model's variables at each
    call, so it follows further training.
    """
    if model not in _INFERENCE:
        usable = default_kernel() == "native"
        forward = fused_forward(model, kernel="native") if usable else None
        spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)
        _INFERENCE[model] = forward and tf.function(forward, input_signature=[spec], autograph=False)
    return _INFERENCE[model]


def _runners(model: keras.Model, kernel: str | None) -> dict[str, CellRunner] | None:
    """The kernel family's cell runners, if they cover every layer of `model`; else None."""
    if kernel is not None and kernel not in KERNELS:
        raise ConfigError("kernel", f"expected one of {', '.join(KERNELS)}, got {kernel!r}")
    if not isinstance(model, keras.Sequential) or not _recurrent_layers(model):
        return None
    if not all(_fusable(layer) for layer in model.layers):
        return None
    family = kernel or default_kernel()
    if family == "keras":
        return None
    runners = _NATIVE if family == "native" else _TENSORFLOW
    if not all(cell_kind(layer) in runners for layer in _recurrent_layers(model)):
        return None
    return runners


def _recurrent_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The recurrent layers of `model`, a Bidirectional's forward and backward layers included."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Bidirectional):
            found += [layer.forward_layer, layer.backward_layer]
        elif not isinstance(layer, keras.layers.Dense):
            found.append(layer)
    return found


def _dense(inputs: tf.Tensor, layer: keras.layers.Dense) -> tf.Tensor:
    """`layer(inputs)` for a 2-D input, as two ops."""
    outputs = tf.matmul(inputs, layer.kernel)
    if layer.use_bias:
        outputs = outputs + layer.bias
    return layer.activation(outputs)


def _fusable(layer: keras.layers.Layer) -> bool:
    """A plain Dense layer, or a recurrent layer some kernel may compute (see `cell_kind`) not
    reading backwards; none with an activity regularizer (it is added by the layer's own call)."""
    if getattr(layer, "activity_regularizer", None) is not None:
        return False
    if isinstance(layer, keras.layers.Dense):
        return getattr(layer, "lora_rank", None) is None  # _dense computes the plain kernel only
    if isinstance(layer, keras.layers.Bidirectional):
        return layer.merge_mode == "concat" and all(
            cell_kind(inner) is not None for inner in (layer.forward_layer, layer.backward_layer)
        )
    return cell_kind(layer) is not None and not layer.go_backwards


def regularized(layer: keras.layers.Layer) -> bool:
    """True when `layer` (or its recurrent cell) adds a regularization loss to `model.losses`."""
    owners = [layer, getattr(layer, "cell", None)]
    names = ("kernel_regularizer", "recurrent_regularizer", "bias_regularizer", "activity_regularizer")
    return any(
        getattr(owner, name, None) is not None for owner in owners if owner is not None for name in names
    )


def cell_kind(layer: keras.layers.Layer) -> str | None:
    """``"lstm"``, ``"gru"`` or ``"simple_rnn"`` for a layer computing exactly what the kernels
    compute (Keras's default activations, biases, GRU's `reset_after`), else None."""
    kind = RECURRENT.get(type(layer))
    if kind is None:
        return None
    cell = layer.cell
    gated = kind == "simple_rnn" or cell.recurrent_activation is keras.activations.sigmoid
    plain = (
        cell.activation is keras.activations.tanh and gated and cell.use_bias
        and cell.dropout == 0 and cell.recurrent_dropout == 0
        and not layer.stateful and not layer.return_state
        and (kind != "gru" or cell.reset_after)
    )  # fmt: skip
    return kind if plain else None


def _recurrent_layer(
    sequence: tf.Tensor, layer: keras.layers.Layer, run_cell: CellRunner
) -> tuple[tf.Tensor, tf.Tensor]:
    """Runs one recurrent layer over time-major `sequence` (T, B, F).

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
    """A `Bidirectional` recurrent layer, merge mode concat, as Keras computes it."""
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
    TensorFlow's own ops (the ``"tensorflow"`` kernel family).

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
    """`tf_lstm` on tf_sine's compiled ops (`tf_sine.native`). The forward op also returns the
    cell states, their tanh and the activated gates, which only its gradient op reads."""
    return _native_cell("tf_sine_lstm", sequence, cell)


def native_gru(sequence: tf.Tensor, cell: keras.layers.GRUCell) -> tf.Tensor:
    """Hidden states `(T, B, u)` of a Keras `GRUCell` (`reset_after=True`; `bias` (2, 3u)) over
    time-major `sequence`, zero initial state, on tf_sine's compiled ops."""
    return _native_cell("tf_sine_gru", sequence, cell)


def native_simple_rnn(sequence: tf.Tensor, cell: keras.layers.SimpleRNNCell) -> tf.Tensor:
    """Hidden states `(T, B, u)` of a Keras `SimpleRNNCell` (tanh) over time-major `sequence`,
    zero initial state, on tf_sine's compiled ops."""
    return _native_cell("tf_sine_simple_rnn", sequence, cell)


def _native_cell(op: str, sequence: tf.Tensor, cell: keras.layers.Layer) -> tf.Tensor:
    """Runs the compiled op `op` and attaches `op + "_grad"` as its gradient.

    Every op takes (inputs, kernel, recurrent_kernel, bias) and returns the states first, then
    what its gradient op needs besides them; all time steps, a single one included, take the
    same two ops.
    """
    ops = native.load()
    if ops is None:
        raise RuntimeError("the native recurrent kernels are not available (see tf_sine.native)")
    forward_op, gradient_op = getattr(ops, op), getattr(ops, op + "_grad")

    @tf.custom_gradient
    def run(inputs: tf.Tensor, kernel: tf.Tensor, recurrent_kernel: tf.Tensor, bias: tf.Tensor):
        outputs = forward_op(inputs, kernel, recurrent_kernel, bias)
        states, *saved = outputs if isinstance(outputs, (list, tuple)) else [outputs]

        def gradient(states_grad: tf.Tensor):
            return gradient_op(inputs, kernel, recurrent_kernel, states, *saved, states_grad)

        return states, gradient

    weights = (cell.kernel, cell.recurrent_kernel, cell.bias)
    return run(sequence, *(tf.convert_to_tensor(weight) for weight in weights))


_NATIVE: dict[str, CellRunner] = {"lstm": native_lstm, "gru": native_gru, "simple_rnn": native_simple_rnn}
_TENSORFLOW: dict[str, CellRunner] = {"lstm": tf_lstm}
