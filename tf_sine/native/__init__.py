"""tf_sine's compiled recurrent kernels: a TensorFlow custom-op library built on this machine.

`rnn_ops.cc` holds a forward op and its gradient op for each of Keras's LSTM, GRU and SimpleRNN
layers (`TfSineLstm`/`TfSineLstmGrad`, `TfSineGru`..., `TfSineSimpleRnn`...), each running a
whole layer over a whole sequence. They are compiled with the C++ compiler against the installed
TensorFlow's own headers and library (`tf.sysconfig`), with `-O3 -march=native`, into a cache
directory keyed by the source, the TensorFlow version and this CPU: once, by `make install`
(`python -m tf_sine.native`), or by the first `load()` that finds no library.

Without a compiler, or when the build or the load fails, `load()` warns once and returns None,
and training falls back to TensorFlow's BlockLSTM kernel for LSTM layers and to Keras's layers
for the others: slower, same function.

Environment:
    TF_SINE_NATIVE=0: never build or load the library (the fallback everywhere).
    TF_SINE_CACHE: the cache directory (default `$XDG_CACHE_HOME/tf_sine` or `~/.cache/tf_sine`).
    CXX: the C++ compiler (default `c++`).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import platform
import shlex
import subprocess
import sys
import warnings
from pathlib import Path
from types import ModuleType

SOURCE = Path(__file__).with_name("rnn_ops.cc")
COMPILER_OPTIONS = ["-O3", "-march=native", "-fPIC", "-shared", "-w"]


class NativeBuildError(RuntimeError):
    """The kernel library could not be compiled."""


def enabled() -> bool:
    """False when `TF_SINE_NATIVE=0` turns the compiled kernels off."""
    return os.environ.get("TF_SINE_NATIVE", "1").strip().lower() not in ("0", "false", "no", "off")


def cache_dir() -> Path:
    """Where built libraries live (see the module docstring)."""
    if os.environ.get("TF_SINE_CACHE"):
        return Path(os.environ["TF_SINE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tf_sine"


def _compiler() -> list[str]:
    return shlex.split(os.environ.get("CXX") or "c++")


def _compile_command(output: Path) -> list[str]:
    """The compiler's command line writing the library to `output`."""
    import tensorflow as tf

    flags = [*tf.sysconfig.get_compile_flags(), *tf.sysconfig.get_link_flags()]
    return [*_compiler(), *COMPILER_OPTIONS, str(SOURCE), "-o", str(output), *flags]


def _cpu_signature() -> str:
    """What `-march=native` depends on: the CPU's model and feature flags."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    wanted = [line for line in lines if line.startswith(("model name", "flags"))][:2]
    return "\n".join([platform.machine(), platform.processor(), *wanted])


def library_path() -> Path:
    """The library file for this source, TensorFlow build, compiler command and CPU."""
    import tensorflow as tf

    command = " ".join(_compile_command(Path("OUTPUT")))
    key = hashlib.sha256()
    for part in (SOURCE.read_bytes(), tf.__version__.encode(), command.encode(), _cpu_signature().encode()):
        key.update(part)
        key.update(b"\0")
    return cache_dir() / f"rnn_ops-{key.hexdigest()[:16]}.so"


def build(force: bool = False) -> Path:
    """Compiles the kernels unless a library for this machine exists; returns its path.

    Concurrent builds (several workers starting at once) wait on a lock file and the first one
    builds; the library appears under its final name only when complete.

    Raises:
        NativeBuildError: no compiler, or the compiler failed (its last lines of output).
    """
    path = library_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists() and not force:
            return path
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        try:
            done = subprocess.run(_compile_command(partial), capture_output=True, text=True)
        except OSError as error:
            raise NativeBuildError(f"no C++ compiler ({_compiler()[0]}): {error.strerror}") from None
        if done.returncode:
            partial.unlink(missing_ok=True)
            tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            raise NativeBuildError(f"{_compiler()[0]} exited with status {done.returncode}: {tail}")
        os.replace(partial, path)
    return path


@functools.cache
def load() -> ModuleType | None:
    """The loaded op library (`tf_sine_lstm`, `tf_sine_lstm_grad`, ...), or None (see module docstring).

    The first call in a process may build the library (about 15 s on 2 cores), with a note on
    stderr; later calls return the same module.
    """
    if not enabled():
        return None
    import tensorflow as tf

    try:
        path = library_path()
        if not path.exists():
            print(f"tf_sine: compiling the native recurrent kernels for this machine into {path.parent} "
                  "(once, about 15 s)", file=sys.stderr)  # fmt: skip
            build()
        return tf.load_op_library(str(path))
    except (NativeBuildError, OSError, tf.errors.OpError) as error:
        warnings.warn(
            f"tf_sine: native recurrent kernels unavailable ({error}); using TensorFlow's BlockLSTM "
            "for LSTM layers and Keras's layers for the others instead",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
