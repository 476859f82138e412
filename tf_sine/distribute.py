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
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from tf_sine.config import DISTRIBUTIONS, ConfigError, check_choice, check_positive_float
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


PEER_TIMEOUT = 60.0  # seconds a worker waits for the others before it gives up
_WAIT_NOTE_EVERY = 5.0


class PeersMissingError(RunFailedError):
    """Another worker did not answer within the time allowed."""


def make_strategy(
    name: str, peer_timeout: float = PEER_TIMEOUT, notify: Callable[[str], None] | None = None
) -> tf.distribute.Strategy | None:
    """The strategy for `name` (one of `DISTRIBUTIONS`), or None for ``"none"``.

    With ``multi-worker`` it first waits, up to `peer_timeout` seconds, until every other worker
    answers (`wait_for_peers`): TensorFlow's own start-up would wait for them forever, deaf to
    SIGTERM and Ctrl-C.

    Raises:
        ValueError: ``multi-worker`` without a usable ``TF_CONFIG``, or a bad `peer_timeout`.
        PeersMissingError: a worker did not answer in time.
    """
    check_choice("distribute", name, DISTRIBUTIONS)
    check_positive_float("peer_timeout", peer_timeout)
    if name == "none":
        return None
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    members, index = _check_tf_config()
    wait_for_peers(members, index, peer_timeout, notify)
    return tf.distribute.MultiWorkerMirroredStrategy()


def wait_for_peers(
    members: list[tuple[str, str]], index: int, timeout: float, notify: Callable[[str], None] | None = None
) -> None:
    """Waits until every member of the cluster but `index` accepts a connection at its address.

    Args:
        members: `(name, "host:port")` of each task, as `TF_CONFIG` lists them (``chief``,
            ``worker 0``, ...).
        index: this process's place in `members`.
        timeout: seconds to wait in all.
        notify: called with a progress line every few seconds.

    This worker listens on its own address meanwhile (without accepting: the kernel completes a
    peer's connection), so workers started in any order find each other; it closes before
    TensorFlow's server takes the port. Plain Python sleeps: SIGTERM and Ctrl-C stop it at once.

    Raises:
        PeersMissingError: some worker did not answer within `timeout` seconds.
    """
    listener = _listen(members[index][1])
    try:
        missing = [i for i in range(len(members)) if i != index]
        start = time.monotonic()
        next_note = start + _WAIT_NOTE_EVERY
        while missing:
            missing = [i for i in missing if not _answers(members[i][1])]
            waited = time.monotonic() - start
            names = ", ".join(f"{members[i][0]} ({members[i][1]})" for i in missing)
            if missing and waited >= timeout:
                raise PeersMissingError(
                    f"no answer from {names} within {timeout:g} s; start every worker that TF_CONFIG "
                    "lists, or allow longer with `peer_timeout`"
                )
            if missing and notify is not None and time.monotonic() >= next_note:
                notify(f"waiting for {names}: {waited:.0f} s of {timeout:g}")
                next_note += _WAIT_NOTE_EVERY
            if missing:
                time.sleep(0.2)
    finally:
        if listener is not None:
            listener.close()


def _listen(address: str) -> socket.socket | None:
    host, port = address.rsplit(":", 1)
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("" if host in ("localhost", "0.0.0.0") else host.strip("[]"), int(port)))
        listener.listen(64)
    except OSError:  # the address is not this machine's as written, or TensorFlow holds it
        listener.close()
        return None
    return listener


def _answers(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=1.0):
            return True
    except OSError:
        return False


def _check_tf_config() -> tuple[list[tuple[str, str]], int]:
    """The cluster's `(name, address)` pairs in ``TF_CONFIG`` and this task's index among them."""
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
    chiefs = config["cluster"].get("chief", []) if isinstance(config["cluster"], dict) else None
    for role, addresses in (("worker", workers), ("chief", chiefs)):
        if not isinstance(addresses, list) or (role == "worker" and not addresses):
            raise ConfigError(
                "distribute", f"expected a list of {role} addresses in TF_CONFIG, got {addresses!r}"
            )
        for address in addresses:
            _check_address(role, address)
    if task["type"] not in ("worker", "chief"):
        raise ConfigError(
            "distribute", f"expected task.type worker or chief in TF_CONFIG, got {task['type']!r}"
        )
    # A chief task, if any, is one more member; the members' list is what this process waits for.
    members = [("chief", a) for a in chiefs] + [(f"worker {i}", a) for i, a in enumerate(workers)]
    index = int(task["index"]) + (len(chiefs) if task["type"] == "worker" else 0)
    if not 0 <= index < len(members):
        raise ConfigError(
            "distribute", f"expected a task index within the cluster in TF_CONFIG, got {text!r}"
        )
    return members, index


def _check_address(role: str, address: Any) -> None:
    host, _, port = address.rpartition(":") if isinstance(address, str) else ("", "", "")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            "distribute", f"expected each {role} in TF_CONFIG as host:port (port 1-65535), got {address!r}"
        )


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
