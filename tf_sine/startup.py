"""Starting TensorFlow in a tf_sine command: its start-up notes hidden, its warnings and errors kept.

TensorFlow 2.21 logs through absl from its C++ libraries, and two of them each print, before
absl is initialised and so regardless of `TF_CPP_MIN_LOG_LEVEL`: absl's "All log messages
before absl::InitializeLog() is called are written to STDERR", an info line about oneDNN, and,
on a machine without an NVIDIA driver, "Could not find cuda drivers" and an error line "failed
call to cuInit". No switch turns these off. `start_tensorflow()` imports TensorFlow and lets it
find its devices with the process's stderr (file descriptor 2) passed through a filter that
drops exactly these lines: info lines, absl's notice, and the cuInit failure where no NVIDIA
driver is present. Every other line, warnings and errors included, goes through unchanged.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

_ABSL_NOTICE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_INFO_LINE = re.compile(r"I\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.]+:\d+\] ")
_CUINIT_FAILURE = re.compile(r"E\d{4} \d\d:\d\d:\d+\.\d+ +\d+ cuda_platform\.cc:\d+\] failed call to cuInit")


def nvidia_driver_present() -> bool:
    """Whether this machine has an NVIDIA driver loaded (whether a GPU can be found at all)."""
    return Path("/proc/driver/nvidia").exists() or Path("/dev/nvidiactl").exists()


def start_up_noise(line: str, driver_present: bool) -> bool:
    """Whether `line` is one of TensorFlow's start-up notes that `start_tensorflow` hides."""
    line = line.rstrip("\n")
    if line == _ABSL_NOTICE or _INFO_LINE.match(line):
        return True
    return not driver_present and _CUINIT_FAILURE.match(line) is not None


@contextlib.contextmanager
def filtered_stderr(drop: Callable[[str], bool]) -> Iterator[None]:
    """Passes everything written to file descriptor 2 meanwhile, by Python or C++, through `drop`:
    lines it accepts are dropped, the others reach the real stderr as they come."""
    sys.stderr.flush()
    real = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def forward() -> None:
        with os.fdopen(read_end, "rb") as pipe:
            for raw in pipe:
                if not drop(raw.decode(errors="replace")):
                    os.write(real, raw)

    thread = threading.Thread(target=forward, name="tf_sine-stderr", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(real, 2)  # closes the pipe's last write end: the thread reads to its end
        thread.join(timeout=10)
        os.close(real)


def start_tensorflow() -> ModuleType:
    """Imports TensorFlow and lists its devices quietly (module docstring); returns the module.

    Call it before anything else imports TensorFlow; later calls only return the module.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # later info lines too; warnings stay
    driver_present = nvidia_driver_present()
    with filtered_stderr(lambda line: start_up_noise(line, driver_present)):
        import tensorflow as tf

        tf.config.list_physical_devices()  # initialises the platforms: the cuInit call
    return tf
