"""The model factory: stacked recurrent layers and a linear head, compiled with a clipping optimizer.

Only built-in Keras layers, losses, metrics and optimizers are used, so a saved model loads with
plain `keras.models.load_model`, without tf_sine installed.

>>> model = build_model(units=4)
>>> model.input_shape, model.output_shape
((None, 1, 10), (None, 1))
>>> [layer.__class__.__name__ for layer in model.layers]
['LSTM', 'LSTM', 'Dense']
"""

from __future__ import annotations

import math

import keras

from tf_sine.config import CELLS, OPTIMIZERS, Config, validate_model_options
from tf_sine.data import window_shape


def build_model(
    *,
    cell: str = "lstm",
    units: int = 30,
    num_layers: int = 2,
    bidirectional: bool = False,
    dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    optimizer: str = "adagrad",
    learning_rate: float = 0.1,
    clipnorm: float | None = None,
    clipvalue: float | None = None,
    global_clipnorm: float | None = None,
    timesteps: int = 10,
    layout: str = "legacy",
    features: int = 1,
    initializer: str = "keras",
    horizon: int = 1,
) -> keras.Model:
    """Builds and compiles the source's network, or any stacked variant of it.

    The source stacked `NUM_LAYERS` `BasicLSTMCell`s with `MultiRNNCell`, kept the last
    output and regressed it with `fully_connected(output, 1, None)` (no activation), trained
    on the mean squared error with Adagrad. Here: `num_layers` Keras recurrent layers (all but
    the last return sequences), each optionally wrapped in `keras.layers.Bidirectional`, then
    a linear `Dense(1)`.

    Args:
        cell: ``"lstm"``, ``"gru"`` or ``"simple_rnn"``.
        units: hidden units per layer (per direction when bidirectional).
        num_layers: stacked recurrent layers.
        bidirectional: wrap each recurrent layer in `keras.layers.Bidirectional` (outputs of
            both directions concatenated).
        dropout: fraction of each layer's inputs dropped in training (the port of
            `DropoutWrapper`; between stacked layers it drops the lower layer's outputs).
        recurrent_dropout: fraction of the recurrent state dropped in training.
        optimizer: a name in `tf_sine.config.OPTIMIZERS`.
        learning_rate: the optimizer's learning rate.
        clipnorm: clip each gradient tensor to this L2 norm.
        clipvalue: clip each gradient element to `[-clipvalue, clipvalue]`.
        global_clipnorm: scale all gradients together so their joint L2 norm is at most this
            (what contrib's `optimize_loss(clip_gradients=...)` did). At most one clip option.
        timesteps: values per input window.
        layout: ``"legacy"`` takes inputs `(batch, 1, timesteps)`; ``"sequence"`` takes
            `(batch, timesteps, features)`.
        features: values per time step (sequence layout only).
        initializer: how the recurrent weights start, a name in
            `tf_sine.config.INITIALIZERS`: ``"keras"`` (Keras's defaults) or
            ``"uniform_unit_scaling"`` (TF 0.12's for the source's cells).
        horizon: values the head predicts at once: output `k` is the value `k + 1` steps after
            the window (direct multi-step forecasting, trained on the next `horizon` values);
            1 is the source's next value.

    Returns:
        A compiled `keras.Sequential` mapping `(batch, *window_shape)` to `(batch, horizon)`,
        with MSE loss (the mean over the `horizon` outputs) and an RMSE metric named ``"rmse"``.

    Raises:
        ValueError: an argument outside its allowed values; the message names it, lists
            what is allowed and shows what was received.
        TypeError: an argument of the wrong type.
    """
    validate_model_options(
        cell=cell,
        units=units,
        num_layers=num_layers,
        bidirectional=bidirectional,
        dropout=dropout,
        recurrent_dropout=recurrent_dropout,
        optimizer=optimizer,
        learning_rate=learning_rate,
        clipnorm=clipnorm,
        clipvalue=clipvalue,
        global_clipnorm=global_clipnorm,
        timesteps=timesteps,
        layout=layout,
        features=features,
        initializer=initializer,
        horizon=horizon,
    )
    # Layers.
    layer_class = getattr(keras.layers, CELLS[cell])
    model = keras.Sequential(name=f"{cell}_{num_layers}x{units}")
    model.add(keras.Input(shape=window_shape(timesteps, layout, features), name="window"))
    directions = 2 if bidirectional else 1
    for index in range(num_layers):
        inputs = (timesteps if layout == "legacy" else features) if index == 0 else units * directions
        recurrent = layer_class(
            units,
            return_sequences=index < num_layers - 1,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            name=f"{cell}_{index}",
            **_initializers(initializer, inputs, units),
        )
        if bidirectional:
            recurrent = keras.layers.Bidirectional(recurrent, name=f"bidirectional_{index}")
        model.add(recurrent)
    # A linear head: contrib's fully_connected defaulted to ReLU, the source passed None.
    model.add(keras.layers.Dense(horizon, activation=None, name="prediction"))
    # Optimizer, loss and metric.
    optimizer_class = getattr(keras.optimizers, OPTIMIZERS[optimizer])
    model.compile(
        optimizer=optimizer_class(
            learning_rate=float(learning_rate),  # Keras refuses an int or a NumPy scalar
            clipnorm=clipnorm,
            clipvalue=clipvalue,
            global_clipnorm=global_clipnorm,
        ),
        loss=keras.losses.MeanSquaredError(name="mse"),
        metrics=[keras.metrics.RootMeanSquaredError(name="rmse")],
    )
    return model


def _initializers(name: str, inputs: int, units: int) -> dict[str, keras.initializers.Initializer]:
    """The kernel initialisers of one recurrent layer (none given: Keras's defaults)."""
    if name == "keras":
        return {}
    # TF 0.12's variable_scope gave get_variable without an initializer
    # uniform_unit_scaling_initializer(): uniform within sqrt(3 / fan_in), where fan_in is the
    # joint matrix's first dimension, inputs + units (the cell concatenated [x, h]). Both kernels
    # are slices of that one matrix, so both draw from the same range.
    limit = math.sqrt(3.0 / (inputs + units))
    return {
        "kernel_initializer": keras.initializers.RandomUniform(-limit, limit),
        "recurrent_initializer": keras.initializers.RandomUniform(-limit, limit),
    }


def build_model_from_config(config: Config) -> keras.Model:
    """`build_model` with the model options of `config`."""
    return build_model(**config.model_options())
