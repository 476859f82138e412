"""An Estimator-style bridge for code written against `SKCompat(learn.Estimator(...))`.

The source script trained with::

    regressor = SKCompat(learn.Estimator(model_fn=lstm_model, model_dir="Models/model_2"))
    regressor.fit(train_X, train_y, batch_size=BATCH_SIZE, steps=TRAINING_STEPS)
    predicted = [[pred] for pred in regressor.predict(test_X)]

`LegacyRegressor` keeps that shape of code working on TF2: `fit` trains `steps` MORE optimizer
steps (the Estimator's `steps`, not `max_steps`), checkpoints into `model_dir`, and a new
regressor on the same `model_dir` continues from the last checkpoint, as the Estimator did (and
as the source's published 0.12 log shows: a second run trained 3000 + 3000 steps).

It is a thin layer over `tf_sine.build_model` and `tf_sine.train`: same factory, same engine.

>>> regressor = LegacyRegressor("Models/model_2", units=30)          # doctest: +SKIP
>>> regressor.fit(train_x, train_y, batch_size=32, steps=3000)      # doctest: +SKIP
>>> regressor.global_step                                           # doctest: +SKIP
3000

`load_tf1_checkpoint` brings the weights such an Estimator saved (TF 0.12 or 1.x variable names)
into the same Keras model, and `convert_tf1_checkpoint` writes it as a plain ``.keras`` file:

>>> model = load_tf1_checkpoint("Models/model_2")                   # doctest: +SKIP
>>> model.input_shape, [layer.name for layer in model.layers]       # doctest: +SKIP
((None, 1, 10), ['lstm_0', 'lstm_1', 'prediction'])
"""

from __future__ import annotations

import inspect
import math
import numbers
import os
import re
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tf_sine.config import MODEL_FIELDS, Config, ConfigError, ConfigTypeError, check_positive_int
from tf_sine.data import layout_of
from tf_sine.errors import ModelError, RunError
from tf_sine.evaluation import predict
from tf_sine.files import atomic_write, load_keras
from tf_sine.models import build_model, build_model_from_config
from tf_sine.runs import RunDirectory
from tf_sine.training import train


class LegacyRegressor:
    """`SKCompat(learn.Estimator(model_dir=...))` for the source's model, on Keras 3.

    Args:
        model_dir: where checkpoints live; an existing one is resumed from its last checkpoint.
        seed: seeds the initial weights and the data order.
        batches: the data order, a name in `tf_sine.config.BATCH_ORDERS`; ``"datafeeder"``
            replays the Estimator's: TF 0.12's `DataFeeder` order, restarted at every `fit`.
        **factory_options: any argument of `tf_sine.build_model` except `timesteps` and
            `layout`, which are read from the first `fit`'s windows (as the Estimator built
            its graph from the first batch).

    Raises:
        ValueError: an unknown or bad factory option, or options that differ from those of
            the model already in `model_dir`.
    """

    def __init__(
        self, model_dir: str | os.PathLike, seed: int = 0, batches: str = "passes", **factory_options: Any
    ):
        inferred = ("timesteps", "layout", "features")  # read from the windows, as the Estimator did
        unknown = sorted(name for name in factory_options if name not in MODEL_FIELDS or name in inferred)
        if unknown:
            allowed = ", ".join(name for name in MODEL_FIELDS if name not in inferred)
            raise ConfigError(
                unknown[0], f"not a factory option of LegacyRegressor; expected one of {allowed}"
            )
        self.run = RunDirectory.create(model_dir)
        self.run.release()  # taken again by each fit, as the Estimator's each train call
        self.options = dict(factory_options)
        self.seed = seed
        self.batches = batches
        self.config: Config | None = None
        self.model: keras.Model | None = None
        Config(seed=seed, batches=batches, **self.options)  # refuse bad options now, not at the first fit
        if self.run.checkpoints.saved():
            self._restore()

    @property
    def global_step(self) -> int:
        """Optimizer steps taken so far, across every `fit` and every regressor on `model_dir`."""
        return 0 if self.model is None else int(self.model.optimizer.iterations.numpy())

    def fit(self, x: np.ndarray, y: np.ndarray, batch_size: int = 32, steps: int = 3000) -> LegacyRegressor:
        """Trains `steps` more optimizer steps on windows `x` and labels `y`; returns self.

        Args:
            x: windows `(N, 1, T)` (the source's layout) or `(N, T, 1)`.
            y: labels `(N, 1)` or `(N,)`.
            batch_size: windows per step.
            steps: how many steps to add to `global_step`.
        """
        steps = check_positive_int("steps", steps)
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y, dtype=np.float32).reshape(-1, 1)
        if x.ndim != 3:
            raise ConfigError("x", f"expected windows of shape (N, 1, T) or (N, T, 1), got {x.shape}")
        timesteps, layout = layout_of((None, *x.shape[1:]))
        self.run.files.claim()
        try:
            if self.model is None:
                self.config = Config(seed=self.seed, timesteps=timesteps, layout=layout,
                                     batch_size=batch_size, batches=self.batches, **self.options)  # fmt: skip
                keras.utils.set_random_seed(self.seed)
                self.model = build_model_from_config(self.config)
                self.run.save_config(self.config)
            train(
                self.model, x, y, steps=self.global_step + steps, batch_size=batch_size, seed=self.seed,
                checkpoint_every=self.config.checkpoint_every, on_checkpoint=self._checkpoint, progress=False,
                batches=self.batches, feed_start=self.global_step,  # each fit made a new DataFeeder
            )  # fmt: skip
        finally:
            self.run.release()
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predictions for windows `x`, shape `(N,)`: squeezed, as the source's model_fn returned them."""
        if self.model is None:
            raise RunError("model_dir", f"holds no trained model yet ({self.run.path}); call fit first")
        return predict(self.model, np.asarray(x, dtype=np.float32)).reshape(-1)

    def _checkpoint(self, model: keras.Model, step: int) -> None:
        self.run.checkpoints.save(model, step)

    def _restore(self) -> None:
        _, path = self.run.checkpoints.saved()[-1]
        self.model = load_keras(path)
        self.config = self.run.load_config()
        saved = {name: getattr(self.config, name) for name in self.options}
        if saved != self.options or (self.config.seed, self.config.batches) != (self.seed, self.batches):
            raise RunError(
                "model_dir",
                f"holds a model built with {saved}, seed {self.config.seed} and batches "
                f"{self.config.batches!r}; got {self.options}, seed {self.seed} and batches {self.batches!r}",
            )


# The names TF1 gave the source's cell variables, by the version that wrote them: the scope of
# cell `i` of the MultiRNNCell, then the joint matrix's and the bias's names in it. 0.12:
# rnn.py's "RNN", rnn_cell.py's "MultiRNNCell" / "Cell%d" / "BasicLSTMCell", `_linear`'s
# "Linear" with "Matrix" and "Bias". 1.0 and 1.1 lower-cased the scopes, dropped "Linear" and
# said "weights" / "biases"; 1.2 renamed those "kernel" / "bias" (rnn_cell_impl.py).
TF1_NAMES: dict[str, tuple[str, str, str]] = {
    "0.12": ("RNN/MultiRNNCell/Cell{}/BasicLSTMCell/Linear/", "Matrix", "Bias"),
    "1.0": ("rnn/multi_rnn_cell/cell_{}/basic_lstm_cell/", "weights", "biases"),
    "1.2": ("rnn/multi_rnn_cell/cell_{}/basic_lstm_cell/", "kernel", "bias"),
}
# contrib.layers.fully_connected(output, 1, None): the same names in every version (1.x's
# variable getter renamed the Dense layer's kernel and bias back to these).
TF1_HEAD = ("fully_connected/weights", "fully_connected/biases")

_NOT_A_CHECKPOINT = "(a folder with a 'checkpoint' file, or a prefix such as model.ckpt-3000)"


def load_tf1_checkpoint(
    path: str | os.PathLike, *, forget_bias: float = 1.0, **model_options: Any
) -> keras.Model:
    """The source's network with the weights of a TF1 checkpoint, as a compiled Keras model.

    Reads `MultiRNNCell([BasicLSTMCell(units)] * num_layers)` as run by `tf.nn.rnn` (0.12) or
    `static_rnn` (1.x), and the `fully_connected(output, 1, None)` head, under the names of
    TF 0.12 (``RNN/MultiRNNCell/Cell0/BasicLSTMCell/Linear/Matrix``), 1.0-1.1
    (``rnn/multi_rnn_cell/cell_0/basic_lstm_cell/weights``) or 1.2+ (``.../kernel``); other
    variables (``global_step``, optimizer slots) are ignored. Each cell's joint matrix of shape
    `(inputs + units, 4 * units)` multiplied `[x, h]`: its first `inputs` rows become the Keras
    kernel, the rest the recurrent kernel. The gate columns (i, j, f, o), j the candidate, are
    reordered to Keras's (i, f, c, o), and `forget_bias`, which BasicLSTMCell added to the
    forget gate at every step, is folded into that gate's bias.

    >>> model = load_tf1_checkpoint("Models/model_2")       # doctest: +SKIP
    >>> model.input_shape, model.output_shape               # doctest: +SKIP
    ((None, 1, 10), (None, 1))

    Args:
        path: a checkpoint folder (its ``checkpoint`` file names the latest) or a checkpoint
            prefix such as ``Models/model_2/model.ckpt-3000`` (its ``.index`` or ``.meta``
            file is taken as the prefix).
        forget_bias: the cells' `forget_bias` (BasicLSTMCell's default, 1.0).
        **model_options: arguments of `tf_sine.build_model`. `units`, `num_layers` and the
            input width are read from the checkpoint, and given ones must agree. The width is
            `timesteps` in the legacy layout (windows `(N, 1, timesteps)`, the source's; the
            default for a width above 1) and `features` in the sequence layout (windows
            `(N, timesteps, features)`; the default for width 1, with `timesteps` 10 unless given).

    Returns:
        A compiled `keras.Sequential` of `tf_sine.build_model` mapping windows to `(N, 1)`, the
        TF1 graph's predictions.

    Raises:
        ModelError: no checkpoint at `path`, or a cell or head variable missing or of another
            shape (named, with the shape expected and the shape found).
        ConfigError: an option `build_model` does not take, one the checkpoint contradicts, or
            a cell other than ``"lstm"``.
    """
    options = _tf1_model_options(model_options)
    shift = _check_forget_bias(forget_bias)
    reader, prefix = _open_tf1_checkpoint(path)
    shapes = {name: tuple(shape) for name, shape in reader.get_variable_to_shape_map().items()}
    cells = _tf1_cell_names(shapes, prefix)
    units, width = _tf1_sizes(shapes, cells[0][0], prefix)
    options = _agreed_options(options, units=units, num_layers=len(cells), width=width)
    _check_tf1_shapes(shapes, cells, units, width, prefix)

    def read(name: str) -> np.ndarray:
        return np.asarray(reader.get_tensor(name), dtype=np.float64)

    model = build_model(**options)
    for index, (layer, (matrix, bias)) in enumerate(zip(model.layers[:-1], cells, strict=True)):
        joint, gates = _keras_gate_order(read(matrix)), _keras_gate_order(read(bias))
        gates[units : 2 * units] += shift  # Keras's f block; TF1 added forget_bias at every step
        inputs = width if index == 0 else units
        layer.set_weights([w.astype(np.float32) for w in (joint[:inputs], joint[inputs:], gates)])
    model.layers[-1].set_weights([read(name).astype(np.float32) for name in TF1_HEAD])
    return model


def convert_tf1_checkpoint(
    path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    forget_bias: float = 1.0,
    **model_options: Any,
) -> keras.Model:
    """`load_tf1_checkpoint`, written to `out` as a plain ``.keras`` file; returns the model.

    The file holds only built-in Keras layers: `keras.models.load_model(out)` loads it without
    tf_sine. It is written atomically (a reader sees the old file or the new one).

    >>> model = convert_tf1_checkpoint("Models/model_2", "model.keras")    # doctest: +SKIP

    Args:
        path: a checkpoint folder or prefix, as for `load_tf1_checkpoint`.
        out: the file to write; its name ends in ``.keras``. Missing folders are made.
        overwrite: replace an existing file at `out`.
        forget_bias: the cells' `forget_bias`, as for `load_tf1_checkpoint`.
        **model_options: arguments of `tf_sine.build_model`, as for `load_tf1_checkpoint`.

    Raises:
        ConfigError: `out` does not end in ``.keras``, is a folder, or exists and `overwrite`
            is not set; or as `load_tf1_checkpoint`.
        ModelError: as `load_tf1_checkpoint`.
    """
    target = Path(out)
    if target.suffix != ".keras":
        raise ConfigError("out", f"expected a file name ending in .keras, got {str(out)!r}")
    if target.is_dir():
        raise ConfigError("out", f"expected a .keras file, got the folder {str(out)!r}")
    if target.exists() and not overwrite:
        raise ConfigError("out", f"{str(out)!r} already exists; pass `overwrite` to replace it")
    model = load_tf1_checkpoint(path, forget_bias=forget_bias, **model_options)
    # The optimizer's fresh state is saved too: `load_model` then finds the variables it expects
    # (without them it warns that it skipped loading the optimizer).
    model.optimizer.build(model.trainable_variables)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, lambda temporary: model.save(temporary))
    return model


def _tf1_model_options(options: dict[str, Any]) -> dict[str, Any]:
    """`options` if `build_model` takes them all and they describe BasicLSTMCells, else raises."""
    allowed = tuple(inspect.signature(build_model).parameters)
    for name in options:
        if name not in allowed:
            raise ConfigError(name, f"not an argument of build_model; expected one of {', '.join(allowed)}")
    if options.get("cell", "lstm") != "lstm":
        raise ConfigError(
            "cell", f"expected 'lstm' (the checkpoint holds BasicLSTMCells), got {options['cell']!r}"
        )
    if options.get("bidirectional", False) is not False:
        raise ConfigError(
            "bidirectional",
            f"expected False (MultiRNNCell ran one direction), got {options['bidirectional']!r}",
        )
    return dict(options)


def _check_forget_bias(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigTypeError("forget_bias", f"expected a number, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError("forget_bias", f"expected a finite number, got {value!r}")
    return float(value)


def _open_tf1_checkpoint(path: str | os.PathLike) -> tuple[Any, str]:
    """A reader of the checkpoint `path` names, and its prefix."""
    text = os.fspath(path)
    # A prefix may be given as one of its files.
    prefix = _latest_in(text) if os.path.isdir(text) else re.sub(r"\.(index|meta|data-\d+-of-\d+)$", "", text)
    try:
        return tf.train.load_checkpoint(prefix), prefix
    except (tf.errors.OpError, ValueError):
        raise ModelError(
            "tf1_checkpoint", f"expected a TF checkpoint {_NOT_A_CHECKPOINT}, got {text!r}"
        ) from None


def _latest_in(folder: str) -> str:
    """The prefix a folder's ``checkpoint`` file names as the latest."""
    try:
        state = tf.train.get_checkpoint_state(folder)
    except Exception:  # a garbled `checkpoint` file: protobuf's text parser raises its own kinds
        state = None
    if state is None or not state.model_checkpoint_path:
        raise ModelError(
            "tf1_checkpoint", f"expected a checkpoint in {folder!r} {_NOT_A_CHECKPOINT}, found none"
        )
    named = state.model_checkpoint_path  # joined to `folder` when relative
    if tf.io.gfile.exists(named + ".index") or tf.io.gfile.exists(named):  # V2, or V1's one file
        return named
    # TF1 wrote absolute paths: a folder copied from another machine holds its checkpoint
    # beside the `checkpoint` file, not where that file says.
    return os.path.join(folder, os.path.basename(named))


def _tf1_cell_names(shapes: dict[str, tuple[int, ...]], prefix: str) -> list[tuple[str, str]]:
    """The (matrix, bias) names of cells 0, 1, ... under the naming the checkpoint uses."""
    for scope, matrix, bias in TF1_NAMES.values():
        pattern = re.compile(re.escape(scope).replace(r"\{\}", r"(\d+)") + f"(?:{matrix}|{bias})$")
        found = [int(match.group(1)) for match in map(pattern.match, shapes) if match]
        if found:
            return [(scope.format(i) + matrix, scope.format(i) + bias) for i in range(max(found) + 1)]
    firsts = " or ".join(scope.format(0) + matrix for scope, matrix, _ in TF1_NAMES.values())
    held = ", ".join(sorted(shapes)[:6]) + (", ..." if len(shapes) > 6 else "")
    raise ModelError(
        "tf1_checkpoint",
        f"expected the variables of a MultiRNNCell of BasicLSTMCells ({firsts}), found none in {prefix!r}, "
        f"which holds {len(shapes)}: {held or 'nothing'}",
    )


def _tf1_sizes(shapes: dict[str, tuple[int, ...]], matrix: str, prefix: str) -> tuple[int, int]:
    """`(units, input width)` read from the first cell's joint matrix `(width + units, 4 * units)`."""
    if matrix not in shapes:
        raise ModelError(
            "tf1_checkpoint",
            f"expected {matrix} of shape (inputs + units, 4 * units), found no such variable in {prefix!r}",
        )
    shape = shapes[matrix]
    if len(shape) != 2 or shape[1] % 4 or shape[1] == 0 or shape[0] <= shape[1] // 4:
        raise ModelError(
            "tf1_checkpoint", f"expected {matrix} of shape (inputs + units, 4 * units), got {shape}"
        )
    units = shape[1] // 4
    return units, shape[0] - units


def _agreed_options(options: dict[str, Any], *, units: int, num_layers: int, width: int) -> dict[str, Any]:
    """`options` completed with what the checkpoint says; a given option that differs is refused."""
    layout = options.setdefault("layout", "legacy" if width > 1 else "sequence")
    width_option = {"legacy": "timesteps", "sequence": "features"}.get(layout)
    read = {"units": (units, "the units of its cells"), "num_layers": (num_layers, "its cells")}
    if width_option is not None:  # an unknown layout is refused by build_model, naming the allowed
        read[width_option] = (width, "the input width of its first cell")
    for name, (value, what) in read.items():
        given = options.setdefault(name, value)
        if given != value:
            raise ConfigError(
                name, f"expected {value}, {what} in the checkpoint ({layout} layout), got {given!r}"
            )
    return options


def _check_tf1_shapes(
    shapes: dict[str, tuple[int, ...]], cells: list[tuple[str, str]], units: int, width: int, prefix: str
) -> None:
    """Raises `ModelError` naming the first cell or head variable missing or of another shape."""
    expected = {TF1_HEAD[0]: (units, 1), TF1_HEAD[1]: (1,)}
    for index, (matrix, bias) in enumerate(cells):
        expected[matrix] = ((width if index == 0 else units) + units, 4 * units)  # rows: [x, h]
        expected[bias] = (4 * units,)
    for name, shape in expected.items():
        if name not in shapes:
            raise ModelError(
                "tf1_checkpoint", f"expected {name} of shape {shape}, found no such variable in {prefix!r}"
            )
        if shapes[name] != shape:
            raise ModelError("tf1_checkpoint", f"expected {name} of shape {shape}, got {shapes[name]}")


def _keras_gate_order(columns: np.ndarray) -> np.ndarray:
    """TF1's gate blocks (i, j, f, o) along the last axis, as Keras's (i, f, c, o): j is c."""
    i, j, f, o = np.split(columns, 4, axis=-1)
    return np.concatenate([i, f, j, o], axis=-1)
