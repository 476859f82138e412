"""Folders tf_sine owns: what it wrote is listed, one writer at a time, replacements as transactions.

A run directory, an export folder and a forecast folder keep their bookkeeping in one hidden
folder::

    .tf_sine/manifest.json   every file tf_sine wrote here (relative path -> SHA-256), and
                             facts about the inputs (the data fingerprint)
    .tf_sine/lock            locked (flock) by the one process changing the folder; holds its PID
    .tf_sine/visible         locked exclusively while the files readers see change, shared by readers
    .tf_sine/staging/        a replacement being built (``overwrite``): an owned folder itself
    .tf_sine/commit          present while a finished replacement is moved in

The rules:

- tf_sine deletes or replaces only files its manifest lists. A folder that holds anything and
  has no manifest is not tf_sine's, and is refused.
- A writer holds the lock for its whole life; the operating system releases it when the
  process dies, however it dies. A second writer is refused with the holder's PID. Readers
  take ``visible`` shared while they read, so they never see a writer's half-made state; a
  writer building a replacement in staging lets them read the old files until it commits.
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
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tf_sine.errors import RunError, RunFailedError
from tf_sine.files import TEMPORARY_MARK, atomic_write, given_path, json_text, read_json, write_json

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
        shared: tf_sine writes here beside the user's files (forecasts, exports): a folder
            holding other files is not refused.
        working: top-level folders of tf_sine's working state (``checkpoints``), whose files
            it checks itself when reading them: one changed since is replaced, not kept.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        argument: str = "run_dir",
        shared: bool = False,
        working: tuple[str, ...] = (),
    ):
        self.path = given_path(path, argument, "a directory path", RunError)
        self.argument = argument
        self.shared = shared  # a folder tf_sine writes into beside other files (forecasts, exports)
        # Folders of tf_sine's working state (checkpoints), which it reads back and checks itself:
        # a changed file there is damage, reported when read and replaced, not a user's edit.
        self.working = working
        self._lock_handle: Any = None
        self._visible_handle: Any = None  # held while this writer changes what readers see

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
        # The hash it replaces stays known: a process killed between listing a file and
        # renaming it into place leaves the previous content, which is still tf_sine's.
        previous = manifest.setdefault("previous", {})
        previous.pop(relative, None)
        if relative in manifest["files"]:
            previous[relative] = manifest["files"][relative]
        if digest is None:
            manifest["files"].pop(relative, None)
            previous.pop(relative, None)
        else:
            manifest["files"][relative] = digest
        self._save_manifest(manifest)

    def edited_files(self, names: list[str] | None = None) -> list[str]:
        """tf_sine's files here (those named or under the folders named, default all) changed since.

        An edited file is the user's now: it is neither replaced nor deleted.
        """
        manifest = self.manifest()
        previous = manifest.get("previous", {})
        edited = []
        for relative, digest in sorted(manifest["files"].items()):
            path = self.path / relative
            chosen = (names is None or _under(relative, names)) and not _under(relative, self.working)
            if chosen and path.is_file() and file_hash(path) not in (digest, previous.get(relative)):
                edited.append(relative)
        return edited

    def refuse_edited(self, names: list[str] | None = None) -> None:
        """Raises `RunError` naming the first of tf_sine's files here that was edited since."""
        edited = self.edited_files(names)
        if edited:
            more = f" (and {len(edited) - 1} more)" if len(edited) > 1 else ""
            raise RunError(
                self.argument,
                f"{str(self.path / edited[0])!r}{more} was changed after tf_sine wrote it, so it "
                "is yours now and is not replaced; move it away or choose another folder",
            )

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

    def check_writable(self, names: Iterable[str]) -> None:
        """Refuses, before any work, names among `names` that tf_sine could not write here.

        Raises:
            RunError: one of them is a file of the user's, or one of tf_sine's edited since.
        """
        for name in names:
            self._writable(name)

    def _writable(self, relative: str) -> Path:
        owned = self.owned_files()
        self._refuse_foreign(relative, owned)
        if relative in owned:
            self.refuse_edited([relative])
        return self.path / relative

    def _refuse_foreign(self, relative: str, owned: dict[str, str]) -> None:
        """Raises `RunError` when `relative` exists here and is not tf_sine's (`owned`)."""
        target = self.path / relative
        if (
            os.path.lexists(target)
            and relative not in owned
            and not any(r.startswith(f"{relative}/") for r in owned)
        ):
            raise RunError(
                self.argument,
                f"{str(target)!r} exists and tf_sine did not write it; move it away or choose another folder",
            )

    def remove(self, relative: str) -> None:
        """Deletes one of tf_sine's files; one the manifest does not list, or edited since, stays."""
        if relative not in self.owned_files():
            return
        if not self.edited_files([relative]):  # an edited file is the user's: only forgotten
            (self.path / relative).unlink(missing_ok=True)
        self._record(relative, None)
        _remove_empty_parents(self.path / relative, self.path)

    def remove_if_unused(self, made: Path) -> None:
        """Removes the folder when it holds nothing but tf_sine's bookkeeping and lists no file,
        and the empty folders above it up to `made`: those made for work that did not happen
        (refused, or cut short by a full disk). Call it holding the lock, or before taking it.

        Args:
            made: the topmost folder the work made (`path` or one above it).
        """
        try:
            if any(entry.name != BOOKKEEPING for entry in self.path.iterdir()) or self.owned_files():
                return
            shutil.rmtree(self._bookkeeping)
            self.path.rmdir()
        except (OSError, RunError):  # gone, not a folder, or a damaged manifest: left as it is
            return
        _remove_empty_parents(self.path, made.parent)

    def remove_temporaries(self) -> list[Path]:
        """Deletes temporary files a killed tf_sine process left; only ones named as tf_sine names them."""
        mine = f"{TEMPORARY_MARK}{os.getpid()}"
        # Only the folder and its own subfolders: a symlinked one leads out of the run.
        folders = [self.path] + [p for p in self.path.iterdir()
                                 if p.is_dir() and not p.is_symlink() and p.name != BOOKKEEPING]  # fmt: skip
        leftovers = [p for folder in folders for p in folder.glob(f".*{TEMPORARY_MARK}*")
                     if p.is_file() and not p.is_symlink() and mine not in p.name]  # fmt: skip
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
            if error.errno == errno.ENOSPC:
                raise  # the machine's: `disk_full_named` names it
            raise RunError(self.argument, f"cannot create {str(self.path)!r}: {error.strerror}") from None
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise RunError(self.argument, f"expected a writable directory, got {str(self.path)!r}")
        self._lock()
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
        """Holds the folder's visible files still while a reader reads them.

        A writer changing them is named and refused; one building a replacement beside them
        (`step_aside`) is not. A folder without the lock files (never locked) is read as it
        is; a read-only folder is fine, since nothing is written.
        """
        if not (self._bookkeeping / "visible").is_file():
            yield
            return
        handle = self._take("visible", exclusive=False)
        try:
            if (self._bookkeeping / "commit").exists():
                raise RunError(
                    self.argument,
                    f"{str(self.path)!r} holds a replacement that was being moved in when its "
                    "process stopped; run the command that wrote it again to finish it",
                )
            yield
        finally:
            handle.close()

    def step_aside(self) -> None:
        """Lets readers read the folder while this writer builds a replacement in staging.

        The writer's lock stays held; `commit` takes the folder back before moving anything.
        """
        if self._visible_handle is not None:
            self._visible_handle.close()
            self._visible_handle = None

    def _take(self, name: str, exclusive: bool, wait: bool = False) -> Any:
        """Opens and flocks the bookkeeping file `name`; a holder that keeps it is named and refused."""
        path = self._bookkeeping / name
        try:
            handle = open(path, "a+" if exclusive else "r")  # noqa: SIM115 (held until released)
        except OSError as error:
            raise RunError(self.argument, f"cannot open the lock {str(path)!r}: {error.strerror}") from None
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        try:
            fcntl.flock(handle.fileno(), mode if wait else mode | fcntl.LOCK_NB)  # readers are brief
        except OSError as error:
            handle.close()
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            try:
                holder = (self._bookkeeping / "lock").read_text().strip() or "unknown"
            except OSError:
                holder = "unknown"
            raise RunError(
                self.argument,
                f"{str(self.path)!r} is being written by another tf_sine process (PID {holder}); "
                "wait for it to end, or choose another folder",
            ) from None
        return handle

    def _lock(self) -> None:
        handle = self._take("lock", exclusive=True)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock_handle = handle
        self._visible_handle = self._take("visible", exclusive=True, wait=True)

    def release(self) -> None:
        """Releases the locks (the operating system does so too when the process ends)."""
        self.step_aside()
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
        if self._visible_handle is None:  # stepped aside while the replacement was built
            self._visible_handle = self._take("visible", exclusive=True, wait=True)
        self.refuse_edited(names)  # before anything moves
        owned = self.owned_files()
        for relative in staging.owned_files():
            self._refuse_foreign(relative, owned)
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
        missing = _topmost_missing(folder)  # removed, or never made
        existing = folder if missing is None else missing.parent
        try:
            free = f"{shutil.disk_usage(existing).free / 2**20:.3g} MiB free"
        except OSError:
            free = "free space unknown"
        raise RunFailedError(
            f"no space left on the device of {str(folder)!r} ({free}); nothing half-written is "
            "kept: free some space and run the same command again"
        ) from None


def _under(relative: str, names: list[str]) -> bool:
    return any(relative == name or relative.startswith(f"{name}/") for name in names)


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
    folder = OwnedFolder(path, argument, shared=True)
    with disk_full_named(folder.path):  # the bookkeeping (lock, manifest, commit) too
        _write_together(folder, names, build, overwrite, _topmost_missing(folder.path))
    return folder


def _write_together(
    folder: OwnedFolder,
    names: list[str],
    build: Callable[[OwnedFolder], Any],
    overwrite: bool,
    made: Path | None,
) -> None:
    try:
        folder.claim()
        earlier = sorted({r.split("/")[0] for r in folder.owned_files()} & set(names))
        if earlier and not overwrite:
            raise RunError(
                folder.argument,
                f"{str(folder.path)!r} already holds {', '.join(earlier)}; pass `overwrite` to replace it",
            )
        for name in names:
            if name not in earlier:
                folder.check_writable([name])  # refuses a file of the user's
        folder.refuse_edited(names)
        folder.discard_staging()  # another command's leftover is never moved in with ours
        folder.step_aside()
        try:
            build(folder.staging())
        except BaseException:
            folder.discard_staging()  # a result cut short is not kept
            raise
        folder.commit(names)
    except BaseException:
        if made is not None:  # nothing of the folders made for this is left behind
            folder.remove_if_unused(made)
        raise
    finally:
        folder.release()


def check_writable_folder(path: str | os.PathLike, argument: str = "out", keep: bool = False) -> None:
    """Refuses, before any work, a folder `write_together` could not write into: an empty path,
    a file, or a folder that cannot be created or written. One that did not exist is created to
    see, and removed again unless `keep` (for work that writes into it directly, marked as
    tf_sine's).

    Raises:
        RunError: as `write_together` would, naming `argument`.
        RunFailedError: the disk is full.
    """
    folder = OwnedFolder(path, argument, shared=True)
    made = _topmost_missing(folder.path)
    with disk_full_named(folder.path):
        try:
            folder.claim()
        finally:
            if made is not None and not keep:
                folder.remove_if_unused(made)
            folder.release()


def _topmost_missing(path: Path) -> Path | None:
    """The topmost of `path` and its parents that does not exist yet; None when `path` exists."""
    missing = None
    while not os.path.lexists(path) and path != path.parent:
        missing, path = path, path.parent
    return missing
