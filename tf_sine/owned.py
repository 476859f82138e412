"""Folders tf_sine owns: what it wrote is listed, one writer at a time, replacements as transactions.

A run directory, an export folder and a forecast folder keep their bookkeeping in one hidden
folder::

    .tf_sine/manifest.json   every file tf_sine wrote here (relative path -> SHA-256), and
                             facts about the inputs (the data fingerprint)
    .tf_sine/lock            locked (flock) by the one process changing the folder; holds its PID
    .tf_sine/staging/        a replacement being built (``overwrite``): an owned folder itself
    .tf_sine/commit          present while a finished replacement is moved in

The rules:

- tf_sine deletes or replaces only files its manifest lists. A folder that holds anything and
  has no manifest is not tf_sine's, and is refused.
- A writer holds the lock for its whole life; the operating system releases it when the
  process dies, however it dies. A second writer is refused with the holder's PID; a reader
  takes the lock shared while it reads, so it never sees a writer's half-made state.
- A replacement is built in staging (the same filesystem) and moved in only when complete. The
  commit mark is written first, so a move cut short is finished by the next process that takes
  the lock (roll forward): the folder holds the old files or the new ones, never a mixture.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tf_sine.errors import RunError, RunFailedError
from tf_sine.files import TEMPORARY_MARK, atomic_write, json_text, read_json, write_json

BOOKKEEPING = ".tf_sine"
MANIFEST_FORMAT = "tf_sine-files/1"


def file_hash(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class OwnedFolder:
    """A folder whose tf_sine files are listed in a manifest (see the module docstring).

    Args:
        path: the folder.
        argument: the library argument that named it, for error messages (``run_dir``, ``out``).
    """

    def __init__(self, path: str | os.PathLike, argument: str = "run_dir", shared: bool = False):
        if str(path) == "":  # Path("") would quietly mean the current directory
            raise RunError(argument, "expected a directory path, got an empty string")
        self.path = Path(path)
        self.argument = argument
        self.shared = shared  # a folder tf_sine writes into beside other files (forecasts, exports)
        self._lock_handle: Any = None

    # --- what is ours -------------------------------------------------------------------
    @property
    def _bookkeeping(self) -> Path:
        return self.path / BOOKKEEPING

    @property
    def manifest_path(self) -> Path:
        return self._bookkeeping / "manifest.json"

    @property
    def is_owned(self) -> bool:
        """True when tf_sine has marked this folder as its own."""
        return self.manifest_path.is_file()

    def manifest(self) -> dict[str, Any]:
        """The manifest: ``files`` (relative path -> SHA-256) and ``facts``; empty when unowned."""
        if not self.is_owned:
            return {"format": MANIFEST_FORMAT, "files": {}, "facts": {}}
        try:
            manifest = read_json(self.manifest_path)
        except ValueError:  # edited by hand or damaged
            manifest = None
        files = manifest.get("files") if isinstance(manifest, dict) else None
        if (
            not isinstance(manifest, dict)
            or manifest.get("format") != MANIFEST_FORMAT
            or not isinstance(files, dict)
        ):
            raise RunError(self.argument, f"{str(self.manifest_path)!r} is not a tf_sine manifest")
        # Only paths inside the folder: a manifest edited to name "../x" or "/x" deletes nothing.
        escaping = [r for r in files if Path(r).is_absolute() or ".." in Path(r).parts]
        if escaping:
            raise RunError(
                self.argument, f"{str(self.manifest_path)!r} lists paths outside the folder: {escaping[0]!r}"
            )
        return manifest

    def owned_files(self) -> dict[str, str]:
        """Relative path -> SHA-256 of every file tf_sine wrote here."""
        return dict(self.manifest()["files"])

    def foreign_entries(self) -> list[str]:
        """Top-level names here that tf_sine did not write (the bookkeeping folder aside)."""
        if not self.path.is_dir():
            return []
        owned_tops = {name.split("/")[0] for name in self.owned_files()}
        return sorted(e.name for e in self.path.iterdir() if e.name not in owned_tops | {BOOKKEEPING})

    def fact(self, name: str) -> Any:
        return self.manifest().get("facts", {}).get(name)

    def set_fact(self, name: str, value: Any) -> None:
        """Stores a JSON-able fact about the folder's inputs in the manifest."""
        manifest = self.manifest()
        manifest.setdefault("facts", {})[name] = value
        self._save_manifest(manifest)

    def _save_manifest(self, manifest: dict[str, Any]) -> None:
        self._bookkeeping.mkdir(parents=True, exist_ok=True)
        write_json(self.manifest_path, manifest)

    def _record(self, relative: str, digest: str | None) -> None:
        manifest = self.manifest()
        if digest is None:
            manifest["files"].pop(relative, None)
        else:
            manifest["files"][relative] = digest
        self._save_manifest(manifest)

    # --- writing ------------------------------------------------------------------------
    def write(self, relative: str, write: Callable[[Path], Any]) -> Path:
        """Writes the file `relative` atomically (see `tf_sine.files.atomic_write`) and lists it.

        The manifest lists the file before it is renamed into place, so a process killed in
        between leaves a listed file, never an unlisted file of ours.
        """
        target = self._writable(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write(
            target, write, before_rename=lambda temporary: self._record(relative, file_hash(temporary))
        )

    def write_json(self, relative: str, payload: Any) -> Path:
        """Writes `payload` as JSON (`tf_sine.files.json_text`) to the file `relative`."""
        text = json_text(payload)
        return self.write(relative, lambda temporary: temporary.write_text(text, encoding="utf-8"))

    def adopt(self, relative: str) -> None:
        """Lists the files tf_sine made here by other means, under `relative` (a file or a folder)."""
        path = self.path / relative
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            self._record(file.relative_to(self.path).as_posix(), file_hash(file))

    def _writable(self, relative: str) -> Path:
        target = self.path / relative
        owned = self.owned_files()
        if (
            os.path.lexists(target)
            and relative not in owned
            and not any(r.startswith(f"{relative}/") for r in owned)
        ):
            raise RunError(
                self.argument,
                f"{str(target)!r} exists and tf_sine did not write it; move it away or choose another folder",
            )
        return target

    def remove(self, relative: str) -> None:
        """Deletes one of tf_sine's files; a file the manifest does not list is left alone."""
        if relative not in self.owned_files():
            return
        (self.path / relative).unlink(missing_ok=True)
        self._record(relative, None)
        _remove_empty_parents(self.path / relative, self.path)

    def remove_temporaries(self) -> list[Path]:
        """Deletes temporary files a killed tf_sine process left; only ones named as tf_sine names them."""
        mine = f"{TEMPORARY_MARK}{os.getpid()}"
        folders = [self.path] + [p for p in self.path.iterdir() if p.is_dir() and p.name != BOOKKEEPING]
        leftovers = [p for folder in folders for p in folder.glob(f".*{TEMPORARY_MARK}*")
                     if p.is_file() and mine not in p.name]  # fmt: skip
        for leftover in leftovers:
            leftover.unlink(missing_ok=True)
        return leftovers

    # --- the lock -----------------------------------------------------------------------
    def claim(self) -> OwnedFolder:
        """Creates the folder if needed, takes the writer's lock and marks the folder as tf_sine's.

        Raises:
            RunError: the folder holds files and no manifest (not tf_sine's), cannot be
                created or written, or another process holds the lock (its PID is named).
        """
        self.check()
        try:
            self._bookkeeping.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise RunError(self.argument, f"cannot create {str(self.path)!r}: {error.strerror}") from None
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise RunError(self.argument, f"expected a writable directory, got {str(self.path)!r}")
        self._lock(exclusive=True)
        self._refuse_if_foreign()  # a file may have appeared before the lock was taken
        if (self._bookkeeping / "commit").exists():
            self._roll_forward()
        if not self.is_owned:
            self._save_manifest(self.manifest())
        return self

    def check(self) -> OwnedFolder:
        """Refuses, before any work, a folder that is a file or holds files tf_sine did not write.

        Creates nothing; `claim` checks again under the lock.
        """
        if self.path.exists() and not self.path.is_dir():
            raise RunError(self.argument, f"expected a directory, got the file {str(self.path)!r}")
        self._refuse_if_foreign()
        return self

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Holds the lock shared while a reader reads; a writer at work is named and refused.

        A folder without a lock file (written before locks existed, or never locked) is read
        as it is; a read-only folder is fine, since nothing is written.
        """
        lock = self._bookkeeping / "lock"
        if not lock.is_file():
            yield
            return
        self._lock(exclusive=False)
        try:
            if (self._bookkeeping / "commit").exists():
                raise RunError(
                    self.argument,
                    f"{str(self.path)!r} holds a replacement that was being moved in when its "
                    "process stopped; run the command that wrote it again to finish it",
                )
            yield
        finally:
            self.release()

    def _lock(self, exclusive: bool) -> None:
        lock = self._bookkeeping / "lock"
        try:
            handle = open(lock, "a+" if exclusive else "r")  # noqa: SIM115 (held until release)
        except OSError as error:
            raise RunError(self.argument, f"cannot open the lock {str(lock)!r}: {error.strerror}") from None
        try:
            fcntl.flock(handle.fileno(), (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                handle.close()
                raise
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise RunError(
                self.argument,
                f"{str(self.path)!r} is being written by another tf_sine process (PID {holder}); "
                "wait for it to end, or choose another folder",
            ) from None
        if exclusive:
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
        self._lock_handle = handle

    def release(self) -> None:
        """Releases the lock (the operating system does so too when the process ends)."""
        if self._lock_handle is not None:
            self._lock_handle.close()
            self._lock_handle = None

    def _refuse_if_foreign(self) -> None:
        if self.shared or self.is_owned or not self.path.is_dir():
            return
        names = self.foreign_entries()
        if names:
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            raise RunError(
                self.argument,
                f"expected an empty folder or one tf_sine wrote, got {str(self.path)!r}, which "
                f"holds {shown}; choose another folder (tf_sine never replaces files it did not write)",
            )

    # --- replacement --------------------------------------------------------------------
    @property
    def staging_path(self) -> Path:
        return self._bookkeeping / "staging"

    def staging(self) -> OwnedFolder:
        """The replacement being built here (created empty when there is none)."""
        staging = OwnedFolder(self.staging_path, self.argument)
        if not staging.is_owned:
            shutil.rmtree(self.staging_path, ignore_errors=True)
            staging._save_manifest(staging.manifest())
        return staging

    def discard_staging(self) -> None:
        """Deletes an unfinished replacement (all of it is tf_sine's)."""
        shutil.rmtree(self.staging_path, ignore_errors=True)

    def commit(self, names: list[str] | None = None) -> None:
        """Moves the finished replacement in: tf_sine's old files out, the new ones in.

        Needs the writer's lock. Files here that tf_sine did not write stay.

        Args:
            names: the top-level names the replacement stands for (``saved_model``,
                ``model.tflite``, ...): tf_sine's old files under them are replaced, its other
                files stay. None: the replacement stands for all of tf_sine's files here.
        """
        staging = OwnedFolder(self.staging_path, self.argument)
        for relative in staging.owned_files():
            self._writable(relative)  # before anything moves
        write_json(self._bookkeeping / "commit", {"names": names})  # atomic: whole or absent
        self._roll_forward()

    def _roll_forward(self) -> None:
        # Idempotent: a process killed anywhere in here is finished by the next one.
        staging = OwnedFolder(self.staging_path, self.argument)
        mark = self._bookkeeping / "commit"
        if not staging.is_owned:  # killed after the move was complete
            mark.unlink(missing_ok=True)
            return
        try:
            names = read_json(mark)["names"]
        except (ValueError, KeyError, TypeError):  # cut short before anything moved: the mark
            mark.unlink(missing_ok=True)  # is written atomically now, older versions wrote it in place
            return
        new = staging.owned_files()
        manifest = self.manifest()
        replaced = [r for r in manifest["files"] if names is None or r.split("/")[0] in names]
        for relative in replaced:
            if relative not in new:
                (self.path / relative).unlink(missing_ok=True)
                _remove_empty_parents(self.path / relative, self.path)
        for relative in new:
            source, target = staging.path / relative, self.path / relative
            if source.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(source, target)
        kept = {r: h for r, h in manifest["files"].items() if r not in replaced}
        facts = staging.manifest().get("facts", {}) if names is None else manifest.get("facts", {})
        manifest.update(files={**kept, **new}, facts=facts)
        self._save_manifest(manifest)
        shutil.rmtree(self.staging_path, ignore_errors=True)
        mark.unlink(missing_ok=True)


@contextmanager
def disk_full_named(folder: Path) -> Iterator[None]:
    """Turns a full disk (``ENOSPC``) while writing `folder` into one `RunFailedError` line."""
    try:
        yield
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise
        try:
            free = f"{shutil.disk_usage(folder).free / 2**20:.3g} MiB free"
        except OSError:
            free = "free space unknown"
        raise RunFailedError(
            f"no space left on the device of {str(folder)!r} ({free}); nothing half-written is "
            "kept: free some space and run the same command again"
        ) from None


def _remove_empty_parents(path: Path, root: Path) -> None:
    parent = path.parent
    while parent != root and parent.is_dir() and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent


def write_together(
    path: str | os.PathLike,
    names: list[str],
    build: Callable[[OwnedFolder], Any],
    argument: str = "out",
    overwrite: bool = True,
) -> OwnedFolder:
    """Writes the files `names` into the folder `path` as one transaction: all of them or none.

    `build(staging)` writes them into a staging `OwnedFolder` beside the folder; they are moved
    in only once it returns. Other files in `path` stay. tf_sine's earlier files under `names`
    are replaced as a whole; without `overwrite` they are refused instead.

    Raises:
        RunError: `path` cannot be written, is being written by another process, holds a file
            of one of `names` that tf_sine did not write, or (without `overwrite`) tf_sine's.
    """
    folder = OwnedFolder(path, argument, shared=True).claim()
    try:
        earlier = sorted({r.split("/")[0] for r in folder.owned_files()} & set(names))
        if earlier and not overwrite:
            raise RunError(
                argument,
                f"{str(folder.path)!r} already holds {', '.join(earlier)}; pass `overwrite` to replace it",
            )
        for name in names:
            if (folder.path / name).exists() and name not in earlier:
                folder._writable(name)  # refuses a file of the user's
        folder.discard_staging()  # another command's leftover is never moved in with ours
        try:
            with disk_full_named(folder.path):
                build(folder.staging())
        except BaseException:
            folder.discard_staging()  # a result cut short is not kept
            raise
        folder.commit(names)
    finally:
        folder.release()
    return folder
