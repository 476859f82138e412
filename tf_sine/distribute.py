"""tf.distribute for training: the strategy a configuration names, and which worker writes.

* ``mirrored``: `tf.distribute.MirroredStrategy`, one replica per GPU of this machine.
* ``multi-worker``: `tf.distribute.MultiWorkerMirroredStrategy`, one process per machine; the
  cluster and this process's place in it come from the standard ``TF_CONFIG`` variable::

      TF_CONFIG='{"cluster": {"worker": ["host0:12345", "host1:12345"]},
                  "task": {"type": "worker", "index": 0}}'

Every replica computes the gradient of its share of the global batch (`batch_size` is global:
each of R replicas takes `batch_size / R` windows of the same step), the Keras optimizer sums
them across replicas (an all-reduce) and applies the same update everywhere, so all replicas
keep identical weights and one step means what it means in a single process: the learning rate
needs no scaling. Worker 0 (or the ``chief`` task) is the chief: only it writes the run
directory; the others read its checkpoints when resuming, so on several machines the run
directory must be on a file system they all see.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from typing import TYPE_CHECKING

import numpy as np

from tf_sine.config import DISTRIBUTIONS, ConfigError, check_choice
from tf_sine.errors import RunFailedError

if TYPE_CHECKING:  # TensorFlow is imported when a strategy is made, not by local_tf_configs
    import tensorflow as tf


class WorkerLostError(RunFailedError):
    """A collective operation failed: another worker stopped or became unreachable."""

    def __init__(self, detail: str):
        super().__init__(
            f"multi-worker training lost a worker ({detail}); start every worker again with the same "
            "command to resume from the last checkpoint"
        )


def make_strategy(name: str) -> tf.distribute.Strategy | None:
    """The strategy for `name` (one of `DISTRIBUTIONS`), or None for ``"none"``.

    Raises:
        ValueError: ``multi-worker`` without a usable ``TF_CONFIG``.
    """
    check_choice("distribute", name, DISTRIBUTIONS)
    if name == "none":
        return None
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    _check_tf_config()
    return tf.distribute.MultiWorkerMirroredStrategy()


def _check_tf_config() -> None:
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise ConfigError(
            "distribute", "expected the TF_CONFIG environment variable for multi-worker, got none"
        )
    try:
        config = json.loads(text)
        workers = config["cluster"]["worker"]
        task = config["task"]
        task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError) as error:
        raise ConfigError(
            "distribute",
            f"expected TF_CONFIG with cluster.worker and task.type/index, got {text!r} ({error})",
        ) from None
    if not isinstance(workers, list) or not workers:
        raise ConfigError("distribute", f"expected a list of workers in TF_CONFIG, got {workers!r}")


def is_chief(strategy: tf.distribute.Strategy | None) -> bool:
    """True for the process that writes the run directory (always, without multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def worker_name(strategy: tf.distribute.Strategy | None) -> str:
    """``worker 1 of 2`` (or ``the only worker``)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return "the only worker"
    count = sum(len(tasks) for tasks in resolver.cluster_spec().as_dict().values())
    return f"{resolver.task_type} {resolver.task_id} of {count}"


def weights_fingerprint(weights: list[np.ndarray]) -> str:
    """A short hash of the weights' bytes: equal on every worker that holds the same model."""
    digest = hashlib.sha256()
    for weight in weights:
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()[:16]


def local_tf_configs(count: int) -> list[str]:
    """`TF_CONFIG` values for `count` workers on 127.0.0.1, on ports free right now.

    For trying multi-worker training on one machine (the tests and benchmarks do): start one
    process per value, each with its own `TF_CONFIG`.
    """
    sockets = [socket.socket() for _ in range(count)]
    try:
        for each in sockets:
            each.bind(("127.0.0.1", 0))
        cluster = {"worker": [f"127.0.0.1:{each.getsockname()[1]}" for each in sockets]}
    finally:
        for each in sockets:
            each.close()
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}) for i in range(count)]
