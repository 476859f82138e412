"""The engines that run a chunk of optimizer steps: what `tf_sine.train` calls between its duties.

Every engine implements `Engine`: built on a compiled model and its training windows, it is
called with a chunk's batches (window indices, one row per step) and returns the loss of each
step (or one mean for the chunk). Both update the same compiled Keras model with its own
optimizer and loss, so the model saved is the same plain Keras model whichever ran.

* `FastEngine` (``"fast"``, default): one traced `tf.function` runs the whole chunk in a graph
  loop; the windows live in tensors and each step gathers its batch by index inside the graph.
  Under a `tf.distribute.Strategy` each replica takes an equal share of every batch.
* `FitEngine` (``"fit"``): the reference, plain `keras.Model.fit` over the chunk's batches.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Protocol

import keras
import numpy as np
import tensorflow as tf

from tf_sine.errors import ConfigError
from tf_sine.kernels import fused_forward, kernel_name, regularized
from tf_sine.threads import current_plan
from tf_sine.whole_steps import whole_step_trainer


class Engine(Protocol):
    """Runs optimizer steps on a compiled model.

    Attributes:
        kernel: the recurrent kernel the steps run on (`tf_sine.kernels.kernel_name`, or
            ``"keras"`` for Keras's own layers).
        shards: the independent slices each batch runs as.
    """

    kernel: str
    shards: int

    def __call__(self, batches: np.ndarray, sizes: np.ndarray | None = None) -> np.ndarray:
        """Runs one step per row of `batches` (int32 `(steps, batch_size)` window indices).

        Args:
            batches: the window indices of each step.
            sizes: int32 `(steps,)`: how many of each row's indices are real (the rest pad a
                short batch); None when every batch is full.

        Returns:
            float32 losses: `(steps,)`, or `(1,)` for a mean over the chunk.
        """
        ...


class FastEngine:
    """Runs many optimizer steps per call of one traced `tf.function`.

    Choices measured on the source experiment (README, "Training engines and performance"):
    * the chunk is an explicit `tf.while_loop` traced without AutoGraph: converting the loop
      and the Keras optimizer's code with AutoGraph cost more tracing than the legacy preset's
      whole training;
    * where the native training op covers the model, a chunk is one op call
      (`tf_sine.whole_steps`); otherwise recurrent layers run on fused kernels
      (`tf_sine.kernels`), faster than Keras's layers;
    * no XLA: its compile time was more than it won back.
    """

    def __init__(
        self,
        model: keras.Model,
        x: np.ndarray,
        y: np.ndarray,
        batch_size: int,
        strategy: tf.distribute.Strategy | None = None,
    ):
        self.model, self.strategy = model, strategy
        self.replicas = strategy.num_replicas_in_sync if strategy is not None else 1
        if batch_size % self.replicas:
            raise ConfigError(
                "batch_size", f"expected a multiple of the {self.replicas} replicas (each takes an equal "
                f"share), got {batch_size}",
            )  # fmt: skip
        self.share = batch_size // self.replicas
        # The windows are copied to tensors once; each step gathers its batch from them.
        self.x, self.y = tf.constant(x), tf.constant(y)
        self.variables = model.trainable_variables
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            model.optimizer.build(self.variables)  # its slots are created like the model's variables
        self.loss = _lean_loss(model.loss)
        # Regularization losses join the loss as in Keras's own step (`compute_loss`).
        self.regularized = any(regularized(layer) for layer in model.layers)
        shards = _shards(model, batch_size, strategy)
        fused = fused_forward(model, shards=shards)
        self.fused = fused is not None
        self.kernel = kernel_name(model) if self.fused else "keras"
        self.shards = shards if self.fused else 1
        self.forward = fused or (lambda inputs: model(inputs, training=True))
        # Whole steps in one native op where it covers the model (tf_sine.whole_steps); the
        # graph below stays for the rest, and under a strategy.
        self.whole_steps = None
        if strategy is None:
            # The op runs a batch's second half on a thread of its own, whatever TensorFlow's
            # pools: the same halves, so the same numbers, from the CLI and from a Python
            # process whose TensorFlow started first.
            halves = _splittable(model, batch_size)
            self.whole_steps = whole_step_trainer(model, self.x, self.y, halves=halves)
            if self.whole_steps is not None:
                self.shards = 2 if halves else 1
        self.step_update = self._update if strategy is None else self._distributed_update
        self.run_chunk = tf.function(
            self._run_chunk, input_signature=[tf.TensorSpec([None, batch_size], tf.int32)], autograph=False
        )
        # Traced on first use only: short batches are TF 0.12's DataFeeder order alone.
        self.run_short_chunk = tf.function(
            self._run_short_chunk,
            input_signature=[tf.TensorSpec([None, batch_size], tf.int32), tf.TensorSpec([None], tf.int32)],
            autograph=False,
        )

    def __call__(self, batches: np.ndarray, sizes: np.ndarray | None = None) -> np.ndarray:
        if self.whole_steps is not None:
            return self.whole_steps(batches, sizes)
        if sizes is None:
            return self.run_chunk(batches).numpy()
        return self.run_short_chunk(batches, sizes).numpy()

    def _update(self, indices: tf.Tensor) -> tf.Tensor:
        """One replica's step on `indices`; returns its share of the global mean loss."""
        xb, yb = tf.gather(self.x, indices), tf.gather(self.y, indices)

        def loss() -> tf.Tensor:
            # Each replica's mean weighs 1/replicas of the global mean: the optimizer sums the
            # replicas' gradients, which then equal the gradient of the global mean.
            mean = self._with_penalty(self.loss(yb, self.forward(xb)))
            return mean / self.replicas if self.replicas > 1 else mean

        return self._descend(loss)

    def _with_penalty(self, loss: tf.Tensor) -> tf.Tensor:
        """`loss` plus the model's regularization losses, once the forward pass has run."""
        if not self.regularized:
            return loss
        return loss + tf.add_n([tf.reduce_sum(penalty) for penalty in self.model.losses])

    def _descend(self, loss: Callable[[], tf.Tensor]) -> tf.Tensor:
        """One optimizer update along the gradient of `loss()`; returns the loss."""
        with tf.GradientTape() as tape:
            value = loss()
        grads = tape.gradient(value, self.variables)
        # A variable the loss does not reach gets a zero gradient, as in Keras's own step.
        grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, self.variables, strict=True)]
        self.model.optimizer.apply(grads, self.variables)
        return value

    def _short_update(self, indices: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
        """A step on the first `size` of `indices`: the rest pad a short batch, weighed 0.

        The loss is the mean squared error over the real windows only (the model's loss, MSE,
        is what the weighting is written for; the batch keeps its shape for the fused kernels).
        """
        xb, yb = tf.gather(self.x, indices), tf.gather(self.y, indices)
        weights = tf.cast(tf.range(tf.shape(indices)[0]) < size, tf.float32)

        def loss() -> tf.Tensor:
            errors = tf.reduce_mean(tf.math.squared_difference(self.forward(xb), yb), axis=-1)
            return self._with_penalty(tf.reduce_sum(errors * weights) / tf.reduce_sum(weights))

        return self._descend(loss)

    def _run_short_chunk(self, batches: tf.Tensor, sizes: tf.Tensor) -> tf.Tensor:
        return _loop(tf.shape(batches)[0], lambda index: self._short_update(batches[index], sizes[index]))

    def _replica_update(self, batch: tf.Tensor) -> tf.Tensor:
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        return self._update(batch[replica * self.share : (replica + 1) * self.share])

    def _distributed_update(self, batch: tf.Tensor) -> tf.Tensor:
        # One collective per step, the optimizer's gradient all-reduce: the loss is not reduced
        # across workers, it is the mean over this worker's replicas' shares.
        strategy = self.strategy
        local = strategy.experimental_local_results(strategy.run(self._replica_update, args=(batch,)))
        return tf.add_n(list(local)) * (self.replicas / len(local))

    def _run_chunk(self, batches: tf.Tensor) -> tf.Tensor:
        return _loop(tf.shape(batches)[0], lambda index: self.step_update(batches[index]))


def _loop(count: tf.Tensor, update: Callable[[tf.Tensor], tf.Tensor]) -> tf.Tensor:
    """`update(i)` for i in 0..count-1 in a graph `tf.while_loop`; the stacked losses `(count,)`."""

    def step(index: tf.Tensor, losses: tf.TensorArray) -> tuple[tf.Tensor, tf.TensorArray]:
        return index + 1, losses.write(index, update(index))

    _, losses = tf.while_loop(
        lambda index, _: index < count, step, (tf.constant(0), tf.TensorArray(tf.float32, size=count))
    )
    return losses.stack()


def _lean_loss(loss: object) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """The compiled loss as a function of `(labels, outputs)` to a scalar mean.

    Keras's mean squared error becomes two ops instead of its rank and dtype bookkeeping. A loss
    given to `compile` by name or as a function (``"mse"``, `keras.losses.mean_absolute_error`)
    is averaged over the batch, as `compile` does with the default reduction.
    """
    mse = lambda labels, outputs: tf.reduce_mean(tf.math.squared_difference(outputs, labels))  # noqa: E731
    if type(loss) is keras.losses.MeanSquaredError and loss.reduction == "sum_over_batch_size":
        return mse
    if isinstance(loss, keras.losses.Loss):
        return loss
    function = keras.losses.get(loss)
    if function is keras.losses.mean_squared_error:
        return mse
    return lambda labels, outputs: tf.reduce_mean(function(labels, outputs))


def _shards(model: keras.Model, batch_size: int, strategy: tf.distribute.Strategy | None) -> int:
    """2 when two single-threaded halves of each batch can run side by side, else 1.

    Each fused kernel op runs on one thread, so two halves on 2 inter-op threads of 1 intra-op
    thread each (`tf_sine.threads`) keep both cores busy. It pays on the sequence layout; the
    legacy layout's single step gains nothing but longer tracing, nor do 4 halves on 2 cores
    (README has the numbers).
    """
    halves = current_plan().halves and strategy is None and _splittable(model, batch_size)
    return 2 if halves else 1


def _splittable(model: keras.Model, batch_size: int) -> bool:
    """Whether halves of a batch pay: an even batch of the sequence layout."""
    return model.input_shape[1] > 1 and batch_size % 2 == 0


class FitEngine:
    """The reference: `keras.Model.fit` over each chunk's batches, in order."""

    kernel = "keras"
    shards = 1

    def __init__(
        self, model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int, strategy: None = None
    ):
        self.model, self.x, self.y, self.batch_size = model, x, y, batch_size

    def __call__(self, batches: np.ndarray, sizes: np.ndarray | None = None) -> np.ndarray:
        if sizes is None or (sizes == self.batch_size).all():
            return self._fit(batches.reshape(-1))
        # A short batch ends a call of fit: fit slices its input `batch_size` at a time.
        losses, counts, first = [], [], 0
        for last in [*np.flatnonzero(sizes < self.batch_size), len(batches) - 1]:
            if last >= first:
                rows = range(first, last + 1)
                flat = np.concatenate([batches[row, : sizes[row]] for row in rows])
                losses.append(self._fit(flat)[0])
                counts.append(len(rows))
            first = last + 1
        return np.asarray([np.average(losses, weights=counts)], dtype=np.float32)

    def _fit(self, flat: np.ndarray) -> np.ndarray:
        """`fit` over the windows `flat`, in order, `batch_size` at a time; their mean loss, `(1,)`."""
        history = self.model.fit(
            self.x[flat], self.y[flat], batch_size=self.batch_size, epochs=1, shuffle=False, verbose=0
        )
        return np.asarray(history.history["loss"][-1:], dtype=np.float32)


ENGINES = {"fast": FastEngine, "fit": FitEngine}
