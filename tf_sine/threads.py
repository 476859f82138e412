"""One threading plan: TensorFlow's thread pools for a training configuration.

Training runs one chain of small ops: one inter-op thread (handing ops between threads costs
more than it gives), matmuls on every core. A model the fused kernels cover (no dropout) on the
sequence layout instead runs each batch as two halves side by side (`tf_sine.training`): two
inter-op threads of one intra-op thread each, since each kernel op runs on one thread. README
("Training engines and performance") has the measurements.

TensorFlow fixes its pools when it runs its first op, so `apply_plan` must come first (the CLI
calls it right after TensorFlow is imported). Training reads the pools TensorFlow reports, not
this plan, so it is right in either case.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from tf_sine.config import Config
from tf_sine.errors import ConfigError

# A user's own settings, which a plan never overrides.
USER_VARIABLES = ("TF_NUM_INTEROP_THREADS", "TF_NUM_INTRAOP_THREADS")


@dataclass(frozen=True)
class ThreadPlan:
    """TensorFlow's thread pools for one run.

    Attributes:
        inter_op: threads that run independent ops side by side.
        intra_op: threads inside one op (a matmul); 0 keeps TensorFlow's default, every core.
    """

    inter_op: int
    intra_op: int = 0

    @property
    def halves(self) -> bool:
        """Whether a batch can run as two single-threaded halves side by side."""
        return self.inter_op >= 2 and self.intra_op == 1


def plan_for(config: Config | None) -> ThreadPlan:
    """The plan for training `config` (None: a command that only predicts)."""
    halves = (
        config is not None and config.engine == "fast" and config.distribute == "none"
        and config.layout == "sequence" and config.dropout == 0 and config.recurrent_dropout == 0
    )  # fmt: skip
    return ThreadPlan(2, 1) if halves else ThreadPlan(1)


def check_user_variables() -> None:
    """Refuses a thread count in `USER_VARIABLES` that is not a whole number from 0 (TensorFlow's
    default) up: TensorFlow aborts the process on a negative one and ignores a word.

    Raises:
        ConfigError: naming the variable.
    """
    for name in USER_VARIABLES:
        value = os.environ.get(name, "")
        if value and not re.fullmatch(r"[0-9]+", value.strip()):  # ASCII digits, as TensorFlow reads them
            raise ConfigError(
                name, f"expected a number of threads, 0 or more (0: TensorFlow's default), got {value!r}"
            )


def apply_plan(plan: ThreadPlan) -> bool:
    """Sets TensorFlow's pools to `plan`, unless the user set them (`USER_VARIABLES`).

    Returns:
        False where TensorFlow already ran an op (its pools are then fixed) or the user's
        variables rule; True when the plan was applied.
    """
    if any(os.environ.get(name) for name in USER_VARIABLES):
        return False
    import tensorflow as tf

    try:
        tf.config.threading.set_inter_op_parallelism_threads(plan.inter_op)
        tf.config.threading.set_intra_op_parallelism_threads(plan.intra_op)
    except RuntimeError:  # "cannot be modified after initialization": e.g. main() called in-process
        return False
    return True


def current_plan() -> ThreadPlan:
    """The pools TensorFlow runs with: set through `tf.config.threading`, else the user's
    variables, else 0 (TensorFlow's default)."""
    import tensorflow as tf

    configured = (tf.config.threading.get_inter_op_parallelism_threads(),
                  tf.config.threading.get_intra_op_parallelism_threads())  # fmt: skip
    sizes = []
    for value, variable in zip(configured, USER_VARIABLES, strict=True):
        try:
            sizes.append(value or int(os.environ.get(variable, "0")))
        except ValueError:
            sizes.append(0)
    return ThreadPlan(*sizes)
