"""Exporting a trained model for serving: a TensorFlow SavedModel and a TFLite flatbuffer.

The SavedModel has two signatures, both with a free batch dimension:

* ``serving_default``: input ``window`` (float32, the model's window shape, e.g.
  `(batch, 1, 10)`), output ``prediction`` (`(batch, K)`, K = 1 but for a direct model): exactly
  what ``model.keras`` computes.
* ``next_value``: input ``values`` (float32 `(batch, T)`, or `(batch, T + 1)` for a
  differenced model: the last values of the series in its own units) and, for a model with
  covariates or calendar features, ``features`` (float32 `(batch, T, E)`, in their own units,
  each step's those of the time after its value; named in order by the manifest's
  ``features``), output ``next_value``
  (`(batch,)`, in the series' units), and a direct model's ``next_values`` (`(batch, K)`): the
  run's scaling and differencing are in the graph, so a server needs nothing but TensorFlow.

TensorFlow Serving, `tf.saved_model.load` and ``saved_model_cli`` read it. The TFLite file
computes ``serving_default``. TFLite's builtin ops cannot run Keras's recurrent layers as they
are (their `while` loop reads variables and keeps tensor lists with a free batch dimension), so
the converter is given a copy of the model with the recurrence unrolled (`unroll=True`): the
same weights and the same function, as straight-line ops.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tf_sine.data import layout_of
from tf_sine.dataset import Transform, first_target
from tf_sine.owned import OwnedFolder, write_together

SAVED_MODEL_DIR = "saved_model"
TFLITE_FILE = "model.tflite"
MANIFEST_FILE = "export.json"


def export_model(
    model: keras.Model,
    out: str | os.PathLike,
    transform: Transform | None = None,
    overwrite: bool = False,
    feature_names: tuple[str, ...] = (),
    series_id: str | None = None,
) -> dict[str, Any]:
    """Writes ``out/saved_model/``, ``out/model.tflite`` and ``out/export.json``.

    Args:
        model: a trained Keras model from `tf_sine.build_model`.
        out: the folder to write.
        transform: the run's scaling and differencing, for the ``next_value`` signature
            (default the identity).
        overwrite: replace an earlier export in `out`.
        feature_names: the extra inputs' names, in order (``features`` in the manifest).
        series_id: for a model of several series, the one whose scaling `transform` is
            (``series`` in the manifest): the export serves that series only.

    Returns:
        The manifest written to ``export.json``: signatures with their input and output
        names and shapes, and the TFLite file (or why there is none).

    The three are written beside `out` and moved in together once all are complete (see
    `tf_sine.owned.write_together`): an export that fails or is interrupted leaves `out` as
    it was.

    Raises:
        RunError: `out` holds an export and `overwrite` is not set, holds such files that
            tf_sine did not write, or cannot be written.
    """
    transform = transform or Transform()
    timesteps, layout = layout_of(model.input_shape)
    window = tuple(model.input_shape[1:])
    width = first_target(timesteps, transform.difference)  # values the next_value signature takes

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serving_default",
        fn=lambda w: {"prediction": model(w, training=False)},
        input_signature=[tf.TensorSpec((None, *window), tf.float32, name="window")],
    )
    extras = len(transform.extra_offsets)  # inputs beside the values at each step (covariates)
    next_inputs: dict[str, list] = {"values": [None, width]}
    specs = [tf.TensorSpec((None, width), tf.float32, name="values")]
    if extras:
        next_inputs["features"] = [None, timesteps, extras]
        specs.append(tf.TensorSpec((None, timesteps, extras), tf.float32, name="features"))
    archive.add_endpoint(
        name="next_value",
        fn=lambda *inputs: _next_values(model, transform, *inputs, timesteps=timesteps, layout=layout),
        input_signature=specs,
    )
    ahead = int(model.output_shape[-1])
    next_outputs: dict[str, list] = {"next_value": [None]}
    if ahead > 1:
        next_outputs["next_values"] = [None, ahead]
    manifest: dict[str, Any] = {
        "saved_model": SAVED_MODEL_DIR,
        "signatures": {
            "serving_default": {
                "inputs": {"window": [None, *window]},
                "outputs": {"prediction": [None, ahead]},
            },
            "next_value": {"inputs": next_inputs, "outputs": next_outputs},
        },
        "transform": transform.to_dict(),
    }
    if feature_names:
        manifest["features"] = list(feature_names)
    if series_id is not None:
        manifest["series"] = series_id

    def build(staging: OwnedFolder) -> None:
        archive.write_out(str(staging.path / SAVED_MODEL_DIR), verbose=False)
        staging.adopt(SAVED_MODEL_DIR)
        manifest["tflite"] = _write_tflite(model, staging)
        staging.write_json(MANIFEST_FILE, manifest)

    names = [SAVED_MODEL_DIR, TFLITE_FILE, MANIFEST_FILE]
    write_together(out, names, build, overwrite=overwrite)
    return manifest


def _next_values(
    model: keras.Model,
    transform: Transform,
    values: tf.Tensor,
    features: tf.Tensor | None = None,
    *,
    timesteps: int,
    layout: str,
) -> dict[str, tf.Tensor]:
    """The model's next value after each row of raw `values`, in the series' units:
    ``next_value`` `(batch,)`; a direct model's K values ahead too, ``next_values`` `(batch, K)`
    (differences summed from the last value, like `Transform.decode_ahead`). `features`: the
    extra inputs `(batch, T, E)` in their own units, step `j` those of the time after value `j`
    (`tf_sine.covariates`)."""
    levels = tf.cast(values, tf.float64)
    encoded = levels[:, 1:] - levels[:, :-1] if transform.difference else levels
    if transform.scale != "none":
        encoded = (encoded - transform.offset) / transform.factor
    shape = (-1, 1, timesteps) if layout == "legacy" else (-1, timesteps, 1)
    window = tf.reshape(tf.cast(encoded, tf.float32), shape)
    if features is not None:
        extras = tf.cast(features, tf.float64)
        if transform.scale != "none":
            extras = (extras - transform.extra_offsets) / transform.extra_factors
        window = tf.concat([window, tf.cast(extras, tf.float32)], axis=2)
    output = tf.cast(model(window, training=False), tf.float64)
    if transform.scale != "none":
        output = output * transform.factor + transform.offset
    if transform.difference:
        output = tf.cumsum(output, axis=1) + levels[:, -1:]
    output = tf.cast(output, tf.float32)
    result = {"next_value": output[:, 0]}
    if model.output_shape[-1] > 1:
        result["next_values"] = output
    return result


def _write_tflite(model: keras.Model, folder: OwnedFolder) -> dict[str, Any]:
    try:
        # The converter saves the model to a temporary SavedModel and lists it on stdout.
        with contextlib.redirect_stdout(io.StringIO()), _native_stderr_aside():
            flatbuffer = tf.lite.TFLiteConverter.from_keras_model(unrolled_copy(model)).convert()
    except Exception as error:  # the converter raises many kinds; the SavedModel stands alone
        text = str(error).strip().splitlines()
        return {"file": None, "reason": text[-1] if text else type(error).__name__}
    folder.write(TFLITE_FILE, lambda path: path.write_bytes(flatbuffer))
    return {"file": TFLITE_FILE, "ops": "TFLite builtins", "recurrence": "unrolled", "bytes": len(flatbuffer)}


@contextlib.contextmanager
def _native_stderr_aside() -> Iterator[None]:
    """Sends what is written to file descriptor 2 meanwhile to a temporary file, dropped after:
    the TFLite converter's C++ logs the options it ignores there (``W0000 ... Ignored
    output_format``) whatever ``TF_CPP_MIN_LOG_LEVEL`` says. A failure is still the exception's."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def unrolled_copy(model: keras.Model) -> keras.Model:
    """The same model with every recurrent layer's `unroll=True`, sharing no state with it."""
    config = model.get_config()

    def unroll(node: Any) -> None:
        if isinstance(node, dict):
            if "unroll" in node:
                node["unroll"] = True
            for value in node.values():
                unroll(value)
        elif isinstance(node, list):
            for value in node:
                unroll(value)

    unroll(config)
    copy = type(model).from_config(config)
    copy.set_weights([np.asarray(w) for w in model.get_weights()])
    return copy


def run_tflite(path: str | os.PathLike, windows: np.ndarray) -> np.ndarray:
    """Runs an exported ``model.tflite`` on `windows` with TensorFlow's TFLite interpreter."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's notice about its successor
        interpreter = tf.lite.Interpreter(model_path=str(path))
    entry = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(entry["index"], list(windows.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(entry["index"], np.asarray(windows, dtype=np.float32))
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
