"""tf_sine's compiled recurrent kernels: a TensorFlow custom-op library built on this machine.

`rnn_ops.cc` holds a forward op and its gradient op for each of Keras's LSTM, GRU and SimpleRNN
layers (`TfSineLstm`/`TfSineLstmGrad`, `TfSineGru`..., `TfSineSimpleRnn`...), each running a
whole layer over a whole sequence. They are compiled with the C++ compiler against the installed
TensorFlow's own headers and library (`tf.sysconfig`) by `tf_sine.native.build`: a ladder of
flag sets from `-march=native` down to a portable baseline, each library self-tested against
the cells' equations in a process of its own before it is cached (`tf_sine.native.selftest`).
The cache is keyed by the source, the TensorFlow version, the compiler and this CPU. `make
install` builds it (`python -m tf_sine.native`), or the first `load()` that finds no record.

A failed build is recorded beside where the library would be, and not tried again until
something in the key changes or `python -m tf_sine.native --force` asks; `load()` then warns
(`NativeKernelsWarning`, one line) and returns None, and training falls back to TensorFlow's
BlockLSTM kernel for LSTM layers and to Keras's layers for the others: slower, same function.
`python -m tf_sine.native --info` reports what was built, with which flags, and why not.

Environment:
    TF_SINE_NATIVE=0: never build or load the library (the fallback everywhere).
    TF_SINE_CACHE: the cache directory (default `$XDG_CACHE_HOME/tf_sine` or `~/.cache/tf_sine`).
    CXX: the C++ compiler (default `c++`).
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from pathlib import Path
from types import ModuleType

from tf_sine.native.build import (
    BuildRecord,
    build,
    compiler,
    compiler_available,
    compiler_description,
    library_path,
    read_record,
    record_path,
)

__all__ = [
    "FAMILIES",
    "BuildRecord",
    "NativeKernelsWarning",
    "announce",
    "build",
    "cache_dir",
    "compiler",
    "compiler_available",
    "compiler_description",
    "enabled",
    "families",
    "library_path",
    "load",
    "read_record",
    "record_path",
]

FAMILIES = ("lstm", "gru", "simple_rnn")  # cells with a forward and a gradient op in rnn_ops.cc


class NativeKernelsWarning(RuntimeWarning):
    """The native kernels are not used in this process; training falls back (module docstring)."""


def enabled() -> bool:
    """False when `TF_SINE_NATIVE=0` turns the compiled kernels off."""
    return os.environ.get("TF_SINE_NATIVE", "1").strip().lower() not in ("0", "false", "no", "off")


def cache_dir() -> Path:
    """Where built libraries and their records live (see the module docstring)."""
    if os.environ.get("TF_SINE_CACHE"):
        return Path(os.environ["TF_SINE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tf_sine"


def families(ops: ModuleType) -> list[str]:
    """The cells whose forward and gradient ops the loaded library `ops` provides."""
    return [
        cell for cell in FAMILIES if hasattr(ops, f"tf_sine_{cell}") and hasattr(ops, f"tf_sine_{cell}_grad")
    ]


def announce(directory: Path) -> None:
    """The note printed just before the kernels are compiled."""
    print(f"tf_sine: compiling the native recurrent kernels for this machine into {directory} (up to a "
          "minute; the outcome is kept for this CPU, compiler and TensorFlow)", file=sys.stderr)  # fmt: skip


@functools.cache
def load() -> ModuleType | None:
    """The loaded op library (`tf_sine_lstm`, `tf_sine_lstm_grad`, ...), or None (module docstring).

    The first call on a machine may build the library (a minute at most), with a note on
    stderr; a build that failed before is not retried. Later calls return the same module.
    """
    if not enabled():
        return None
    import tensorflow as tf

    built_now: list[Path] = []

    def note(directory: Path) -> None:
        built_now.append(directory)
        announce(directory)

    try:
        record = build(announce=note)
        if record.ok:
            return tf.load_op_library(record.library)
    except (OSError, tf.errors.OpError) as error:
        _warn(f"could not be loaded ({error})")
        return None
    if built_now:
        _warn(f"could not be built: {record.reason}. This outcome is kept in {record_path(library_path())}; "
              "`python -m tf_sine.native --force` tries again")  # fmt: skip
    else:
        _warn(f"were not built on this machine ({record.when}: {_shorten(record.reason or '')}; "
              "`python -m tf_sine.native --info` says more, `--force` tries again)")  # fmt: skip
    return None


def _shorten(text: str, limit: int = 240) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _warn(what: str) -> None:
    warnings.warn(
        f"tf_sine: the native recurrent kernels {what}; training uses TensorFlow's BlockLSTM for LSTM "
        "layers and Keras's layers for the others",
        NativeKernelsWarning,
        stacklevel=3,
    )
