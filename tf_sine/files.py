"""Reading and writing files: a reader sees the old file or the new one, never half of either.

`atomic_write` writes to a temporary name in the same directory, flushes it to disk, then
renames it over the final name (and flushes the directory, so the rename itself survives a
power cut).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tf_sine.errors import ModelError, TfSineError

TEMPORARY_MARK = ".tf_sine-tmp-"


def given_path(
    path: str | os.PathLike, argument: str, expected: str, error: type[TfSineError] = TfSineError
) -> Path:
    """`path` as a `Path`; an empty string, which `Path` would read as the current directory, is
    refused with `error` naming `argument` and what was `expected` ("a directory path", ...)."""
    if str(path) == "":
        raise error(argument, f"expected {expected}, got an empty string")
    return Path(path)


def atomic_write(
    path: str | os.PathLike,
    write: Callable[[Path], Any],
    before_rename: Callable[[Path], Any] | None = None,
) -> Path:
    """Calls `write(temporary_path)`, flushes the file to disk, then renames it to `path`.

    The temporary file sits in the same directory (so the rename is atomic), is named
    ``.<stem>.tf_sine-tmp-<pid><suffix>`` (so a leftover is known as tf_sine's) and keeps the
    suffix of `path` (Keras and matplotlib pick the format from it). `before_rename` sees the
    complete temporary file. On failure the temporary file is removed and `path` is left as
    it was.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.stem}{TEMPORARY_MARK}{os.getpid()}{path.suffix}")
    try:
        write(temporary)
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        if before_rename is not None:
            before_rename(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    return path


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; not every platform can open a directory.
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def json_text(payload: Any) -> str:
    """`payload` as indented, sorted, strict JSON (a NaN or infinity is an error, not `NaN`)."""
    return json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n"


def write_json(path: str | os.PathLike, payload: Any) -> Path:
    """Writes `payload` as indented JSON, atomically."""
    text = json_text(payload)
    return atomic_write(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def read_json(path: str | os.PathLike) -> Any:
    """Reads a JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def read_arrays(path: str | os.PathLike) -> dict[str, Any]:
    """The arrays of an ``.npz`` file by name; ValueError where it cannot be read."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as arrays:
            return {name: arrays[name] for name in arrays.files}
    except OSError:
        raise
    except Exception as error:  # a truncated archive raises zipfile.BadZipFile
        raise ValueError(f"cannot read {Path(path).name}: {error}") from None


def load_keras(path: str | os.PathLike) -> Any:
    """Loads a ``.keras`` file, any failure of a damaged archive as one `ModelError`."""
    import zipfile

    import keras

    if Path(path).is_file() and not zipfile.is_zipfile(path):  # Keras would say "File not found"
        raise ModelError(
            "model",
            f"cannot load {str(path)!r} as a Keras model: it is not a zip archive (truncated or damaged)",
        )
    try:
        return keras.models.load_model(path)
    except Exception as error:  # Keras raises many kinds for a damaged archive
        raise ModelError(
            "model", f"cannot load {str(path)!r} as a Keras model: {first_line(error)}"
        ) from None
