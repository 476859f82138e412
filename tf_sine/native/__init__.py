"""tf_sine's compiled recurrent kernels: a TensorFlow custom-op library built on this machine.

`rnn_ops.cc` holds a forward op and its gradient op for each of Keras's LSTM, GRU and SimpleRNN
layers (`TfSineLstm`/`TfSineLstmGrad`, `TfSineGru`..., `TfSineSimpleRnn`...), each running a
whole layer over a whole sequence. They are compiled with the C++ compiler against the installed
TensorFlow's own headers and library (`tf.sysconfig`) by `tf_sine.native.build`: a ladder of
flag sets from `-march=native` down to a portable baseline, each library self-tested against
the cells' equations in a process of its own before it is cached (`tf_sine.native.selftest`).
The cache is keyed by the source, the build code, TensorFlow, the compiler and this CPU. `make
install` builds it (`python -m tf_sine.native`), or the first `load()` that finds no record.

A failed build is recorded beside where the library would be, and not tried again until
something in the key changes or `python -m tf_sine.native --force` asks; `load()` then warns
(`NativeKernelsWarning`, one line) and returns None, and training falls back (`FALLBACK`):
slower, same function. `report()` says what was built, with which flags, and why not.

Environment:
    TF_SINE_NATIVE=0: never build or load the library (the fallback everywhere).
    TF_SINE_CACHE: the cache directory (default `$XDG_CACHE_HOME/tf_sine` or `~/.cache/tf_sine`).
    TF_SINE_NATIVE_MARCH: the CPU to compile for instead of this one's (`-march=native`), say
        `-march=x86-64-v3` to run an AVX2 machine's code here; built as asked or not at all.
    CXX: the C++ compiler (default `c++`).
"""

from __future__ import annotations

import functools
import os
import shlex
import sys
import warnings
from pathlib import Path
from types import ModuleType

from tf_sine.native.build import (
    BuildRecord,
    CacheError,
    TargetError,
    build,
    compiler,
    compiler_available,
    compiler_description,
    cpu_model,
    library_path,
    read_record,
    record_path,
    run_selftest,
    target_flags,
)

__all__ = [
    "FALLBACK",
    "FAMILIES",
    "BuildRecord",
    "CacheError",
    "NativeKernelsWarning",
    "TargetError",
    "build",
    "cache_dir",
    "check",
    "compiler",
    "compiler_available",
    "compiler_description",
    "enabled",
    "families",
    "library_path",
    "load",
    "read_record",
    "record_path",
    "report",
    "target_flags",
]

FAMILIES = ("lstm", "gru", "simple_rnn")  # cells with a forward and a gradient op in rnn_ops.cc
FALLBACK = "training uses TensorFlow's BlockLSTM for LSTM layers and Keras's layers for the others"


class NativeKernelsWarning(RuntimeWarning):
    """The native kernels are not used in this process; training falls back (`FALLBACK`)."""


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


def note(message: str) -> None:
    """Where the build's notes go (compiling, waiting for another build): one line on stderr."""
    print(f"tf_sine: {message}", file=sys.stderr)


@functools.cache
def load() -> ModuleType | None:
    """The loaded op library (`tf_sine_lstm`, `tf_sine_lstm_grad`, ...), or None (module docstring).

    The first call on a machine may build the library, with a note on stderr; a build that
    failed before is not retried. Later calls return the same module.
    """
    if not enabled():
        return None
    import tensorflow as tf

    built_now: list[str] = []

    def announce(message: str) -> None:
        built_now.append(message)
        note(message)

    try:
        record = build(announce=announce)
        if record.ok:
            return tf.load_op_library(record.library)
    except (CacheError, TargetError) as error:
        _warn(f"could not be built: {error}")
        return None
    except (OSError, tf.errors.OpError) as error:
        _warn(f"could not be loaded ({error})")
        return None
    if built_now or not record.recurs:
        kept = (
            f"this outcome is kept in {record_path(library_path())}"
            if record.recurs
            else "the next run tries again"
        )
        _warn(
            f"could not be built: {record.reason}; {kept}, and `python -m tf_sine.native --force` tries again"
        )
    else:
        _warn(f"were not built on this machine ({record.when}: {_shorten(record.reason or '')}; "
              "`python -m tf_sine.native --info` says more, `--force` tries again)")  # fmt: skip
    return None


def report() -> dict[str, str]:
    """What is kept for this machine, as ``name -> value`` rows, without building anything:
    status, library, record, flags, compiler, CPU, TensorFlow, the families a load provides,
    and every rung tried.

    Raises:
        TargetError: `TF_SINE_NATIVE_MARCH` is malformed.
    """
    import tensorflow as tf

    record = read_record()
    ops = tf.load_op_library(record.library) if record is not None and record.ok else None
    rows = {
        "status": _status(record),
        "library": record.library if record is not None and record.ok else "none",
        "record": str(record_path(library_path())),
        "flags": shlex.join(record.flags) if record is not None and record.flags else "none",
        "compiler": compiler_description(),
        "cpu": cpu_model(),
        "tensorflow": tf.__version__,
        "families loaded": ", ".join(families(ops)) if ops is not None else "none",
    }
    for attempt in record.attempts if record is not None else ():
        detail = f": {attempt.detail}" if attempt.detail else ""
        rows[f"tried {shlex.join(attempt.flags) or 'default flags'}"] = (
            f"{attempt.outcome} ({attempt.seconds} s){detail}"
        )
    return rows


def _status(record: BuildRecord | None) -> str:
    if record is None:
        return "not built (`python -m tf_sine.native` builds it)"
    if not record.ok:
        return f"failed ({record.when}): {record.reason}"
    test = record.selftest or {}
    largest = test.get("max_error")
    shown = f"{largest:.2g}" if isinstance(largest, (int, float)) else "unknown"
    return (f"built and self-tested ({record.when}; {test.get('cases')} cases, largest difference from the "
            f"reference {shown})")  # fmt: skip


def check() -> str:
    """Runs the self-test again on the kept library.

    Returns:
        A one-line confirmation.

    Raises:
        RuntimeError: nothing kept, or the library fails; a failing library and its record
            are removed, so that the next command builds it again.
        TargetError: `TF_SINE_NATIVE_MARCH` is malformed.
    """
    record = read_record()
    if record is None or not record.ok:
        raise RuntimeError(_status(record))
    summary = run_selftest(Path(record.library))
    if summary.get("interrupted"):
        raise RuntimeError(f"the self-test of {record.library} was interrupted: {summary['failure']}")
    if not summary["passed"]:
        for path in (Path(record.library), record_path(Path(record.library))):
            path.unlink(missing_ok=True)
        raise RuntimeError(f"{record.library} fails its self-test ({summary['failure']}); removed, "
                           "the next command builds it again")  # fmt: skip
    return f"{record.library} passes its self-test ({summary['cases']} cases)"


def _shorten(text: str, limit: int = 240) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _warn(what: str) -> None:
    warnings.warn(
        f"tf_sine: the native recurrent kernels {what}; {FALLBACK}", NativeKernelsWarning, stacklevel=3
    )
