"""Starting TensorFlow in a tf_sine command: its start-up notes hidden, its warnings and errors kept.

TensorFlow logs through absl from its C++ libraries, and two of them each print, before absl is
initialised and so regardless of `TF_CPP_MIN_LOG_LEVEL`: absl's "All log messages before
absl::InitializeLog() is called are written to STDERR", an info line about oneDNN, and, on a
machine without an NVIDIA driver, "Could not find cuda drivers" and an error line "failed call
to cuInit". No switch turns these off. `start_tensorflow()` imports TensorFlow and lets it find
its devices with the process's stderr (file descriptor 2) passed through a filter that drops
exactly these lines: info lines, absl's notice, and the cuInit failure where no GPU can be
found (no NVIDIA driver, or `CUDA_VISIBLE_DEVICES` hiding every GPU). Every other line,
warnings and errors included, goes through unchanged.

The filter runs in a small child process, so that what TensorFlow writes just before it aborts
still reaches the terminal after this process has died.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

_ABSL_NOTICE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_INFO_LINE = re.compile(r"I\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.]+:\d+\] ")
_CUINIT_FAILURE = re.compile(r"E\d{4} \d\d:\d\d:\d+\.\d+ +\d+ cuda_platform\.cc:\d+\] failed call to cuInit")
_FILTER_WAIT_SECONDS = 5  # for the filter to pass on the last lines once TensorFlow has started


def gpus_findable() -> bool:
    """Whether TensorFlow could find a GPU here: an NVIDIA driver is loaded and
    `CUDA_VISIBLE_DEVICES` does not hide every device."""
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES", "unset").strip() in ("", "-1")
    return not hidden and (Path("/proc/driver/nvidia").exists() or Path("/dev/nvidiactl").exists())


def start_up_noise(line: str, gpus: bool) -> bool:
    """Whether `line` is one of TensorFlow's start-up notes that `start_tensorflow` hides.

    Args:
        line: one line of stderr.
        gpus: whether a GPU could be found (`gpus_findable`); then a failed cuInit is an error.
    """
    line = line.rstrip("\n")
    if line == _ABSL_NOTICE or _INFO_LINE.match(line):
        return True
    return not gpus and _CUINIT_FAILURE.match(line) is not None


def forward_filtered(source: int, target: int, gpus: bool) -> None:
    """Copies lines from file descriptor `source` to `target` until end of file, dropping
    `start_up_noise`; a `target` that cannot be written any more drains `source` unshown."""
    writable = True
    with os.fdopen(source, "rb") as pipe:
        for raw in pipe:
            if writable and not start_up_noise(raw.decode(errors="replace"), gpus):
                try:
                    os.write(target, raw)
                except OSError:
                    writable = False


@contextlib.contextmanager
def filtered_stderr(gpus: bool) -> Iterator[None]:
    """Passes everything written to file descriptor 2 meanwhile, by Python or C++, through a
    child process running `forward_filtered`. Without a usable stderr, filters nothing."""
    try:
        sys.stderr.flush()
        real = os.dup(2)
    except (OSError, AttributeError, ValueError):
        yield  # stderr is closed: nothing to keep quiet
        return
    code = f"import sys; from tf_sine.startup import forward_filtered; forward_filtered(0, 2, {gpus})"
    try:
        child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stderr=real)
    except OSError:
        os.close(real)
        yield
        return
    os.dup2(child.stdin.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(real, 2)
        os.close(real)
        child.stdin.close()  # the child reads to the end and exits
        # A process TensorFlow started may still hold the pipe: the child then keeps forwarding.
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=_FILTER_WAIT_SECONDS)


def start_tensorflow() -> ModuleType:
    """Imports TensorFlow and lists its devices quietly (module docstring); returns the module.

    Call it before anything else imports TensorFlow; later calls only return the module.

    Raises:
        ConfigError: a thread count in TensorFlow's variables that it would abort on or ignore
            (`tf_sine.threads.check_user_variables`), before TensorFlow starts.
    """
    from tf_sine.threads import check_user_variables

    check_user_variables()
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # later info lines too; warnings stay
    with filtered_stderr(gpus_findable()):
        import tensorflow as tf

        tf.config.list_physical_devices()  # initialises the platforms: the cuInit call
    return tf
