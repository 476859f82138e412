"""Whole optimizer steps in one native op: the fast engine's route past TensorFlow's per-op cost.

A training step of the source's model is a few hundred thousand multiply-adds, less than
TensorFlow's graph executor spends dispatching the step's 180-odd ops (gathers, the fused
layers, the head, the loss, their gradients and Keras's per-variable optimizer updates). The
native library's ``TfSineTrain`` op runs a whole chunk of steps instead: it gathers each batch,
runs the recurrent layers forward and back (the per-layer kernels' math), clips the gradients
and applies Keras's update to the Keras variables in place, with the same formulas in the same
order as the optimizer's `update_step` (README, "Training engines and performance", has the
numbers). The model, its optimizer state and its saved file stay plain Keras.

`whole_step_trainer(model, x, y)` returns the chunk runner where the op covers the model
(`coverage` says why not otherwise): a `keras.Sequential` of LSTM, GRU or SimpleRNN layers that
the native kernels compute (no dropout, no Bidirectional), a linear Dense head, float32 throughout,
no regularization losses, the mean squared error, and Adagrad, Adam, AdamW, RMSprop or SGD at
Keras's defaults apart from the learning rate, `weight_decay` and one clip option.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from tf_sine import native
from tf_sine.kernels import cell_kind, regularized, training_device

ChunkRunner = Callable[[np.ndarray, np.ndarray | None], np.ndarray]

# The optimizer's slot lists, in the order the op takes them, and the settings that must keep
# Keras's defaults for the op's formulas to be Keras's.
_OPTIMIZERS: dict[type, tuple[str, tuple[str, ...], dict[str, object]]] = {
    keras.optimizers.Adagrad: ("adagrad", ("_accumulators",), {}),
    keras.optimizers.Adam: ("adam", ("_momentums", "_velocities"), {"amsgrad": False}),
    keras.optimizers.AdamW: ("adam", ("_momentums", "_velocities"), {"amsgrad": False}),
    keras.optimizers.RMSprop: ("rmsprop", ("_velocities",), {"momentum": 0.0, "centered": False}),
    keras.optimizers.SGD: ("sgd", (), {"momentum": 0.0, "nesterov": False}),
}
_PLAIN = {"use_ema": False, "gradient_accumulation_steps": None, "loss_scale_factor": None}


def coverage(model: keras.Model) -> str | None:
    """None when ``TfSineTrain`` can train `model`, else why not (for reports and tests).

    ``TF_SINE_WHOLE_STEPS=0`` turns the op off (the benchmarks compare both routes).
    """
    if os.environ.get("TF_SINE_WHOLE_STEPS", "1").strip().lower() in ("0", "false", "no", "off"):
        return "TF_SINE_WHOLE_STEPS=0 turns the training op off"
    if training_device() != "CPU":  # the op is the CPU's; Keras's layers run on cuDNN there
        return "training runs on a GPU"
    ops = native.load()
    if ops is None or not hasattr(ops, "tf_sine_train"):
        return "the native library is not loaded"
    if not isinstance(model, keras.Sequential) or len(model.layers) < 2:
        return "not a Sequential of recurrent layers and a head"
    *recurrent, head = model.layers
    if not isinstance(head, keras.layers.Dense) or head.activation is not keras.activations.linear:
        return "the head is not a linear Dense layer"
    if not head.use_bias or getattr(head, "lora_rank", None) is not None:
        return "the head has no bias or is LoRA"
    for index, layer in enumerate(recurrent):
        if cell_kind(layer) is None or layer.go_backwards:
            return f"layer {layer.name} is not a recurrent layer the native kernels compute"
        if layer.return_sequences != (index < len(recurrent) - 1):
            return f"layer {layer.name} returns sequences where the stack does not (or not where it does)"
    if any(layer.compute_dtype != "float32" for layer in model.layers):
        return "a layer computes in another dtype than float32 (mixed precision)"
    if model.losses or any(regularized(layer) for layer in model.layers):
        return "a layer adds a regularization loss"
    variables = model.trainable_variables
    if len(variables) != 3 * len(recurrent) + 2 or any(v.dtype != "float32" for v in variables):
        return "the model's trainable variables are not the layers' float32 weights"
    if any(getattr(v, "constraint", None) is not None for v in variables):
        return "a variable has a constraint"
    loss = model.loss
    if type(loss) is not keras.losses.MeanSquaredError or loss.reduction != "sum_over_batch_size":
        return "the loss is not the mean squared error"
    return _optimizer_coverage(model.optimizer)


def _optimizer_coverage(optimizer: keras.optimizers.Optimizer) -> str | None:
    entry = _OPTIMIZERS.get(type(optimizer))
    if entry is None:
        return f"the optimizer {type(optimizer).__name__} has no native update"
    config = optimizer.get_config()
    required = {**_PLAIN, **entry[2]}
    changed = sorted(name for name, value in required.items() if config.get(name) != value)
    if changed:
        return f"the optimizer's {', '.join(changed)} differ from Keras's defaults"
    if isinstance(optimizer._learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        return "the learning rate is a schedule"
    if config.get("weight_decay") and not isinstance(optimizer, keras.optimizers.AdamW):
        return "weight decay outside AdamW"
    if getattr(optimizer, "_exclude_from_weight_decay", None) or getattr(
        optimizer, "_exclude_from_weight_decay_names", None
    ):
        return "variables are excluded from weight decay"
    return None


def whole_step_trainer(
    model: keras.Model, x: tf.Tensor, y: tf.Tensor, halves: bool = False
) -> ChunkRunner | None:
    """The chunk runner on ``TfSineTrain`` for the compiled `model` and its windows, or None.

    With `halves`, each batch's second half runs on a second thread (the engine's choice, from
    the thread plan: the sequence layout's steps are long enough to pay for the hand-over).

    The runner takes a chunk's batches (int32 `(steps, batch)` window indices) and, for short
    batches, their real sizes (`(steps,)`), runs one optimizer step per row on the model's own
    variables and returns the losses `(steps,)`, as `tf_sine.engines.Engine` does.
    """
    if coverage(model) is not None:
        return None
    optimizer = model.optimizer
    optimizer.build(model.trainable_variables)
    name, slot_lists, _ = _OPTIMIZERS[type(optimizer)]
    config = optimizer.get_config()
    slots = [slot for attribute in slot_lists for slot in getattr(optimizer, attribute)]
    clip = next((c for c in ("clipnorm", "global_clipnorm", "clipvalue") if config.get(c)), "none")
    arguments = dict(
        variables=[v.value.handle for v in model.trainable_variables],
        slots=[v.value.handle for v in slots],
        iterations=optimizer.iterations.value.handle,
        learning_rate=optimizer._learning_rate.value.handle,
        cells=[cell_kind(layer) for layer in model.layers[:-1]],
        optimizer=name,
        hyper=_hyperparameters(config),
        clip=clip,
        clip_value=float(config.get(clip) or 0.0),
        halves=halves,
    )
    ops = native.load()

    def run(batches: np.ndarray, sizes: np.ndarray | None = None) -> np.ndarray:
        if sizes is None:
            sizes = np.full(len(batches), batches.shape[1], np.int32)
        losses = ops.tf_sine_train(x, y, batches.astype(np.int32), sizes.astype(np.int32), **arguments)
        return losses.numpy()

    return run


def _hyperparameters(config: dict) -> list[float]:
    """The op's `hyper`: epsilon, beta_1, beta_2, 1 - beta_1, 1 - beta_2, rho, 1 - rho, weight decay.

    The differences are taken in Python doubles and rounded to float32, as Keras computes them.
    """
    beta_1, beta_2, rho = config.get("beta_1", 0.0), config.get("beta_2", 0.0), config.get("rho", 0.0)
    values = [config.get("epsilon", 0.0), beta_1, beta_2, 1 - beta_1, 1 - beta_2, rho, 1 - rho,
              config.get("weight_decay") or 0.0]  # fmt: skip
    return [float(np.float32(value)) for value in values]
