"""The training history of a run's checkpoints, in segments the checkpoints share.

A checkpoint needs the history up to its step (a loss per step, a validation loss per epoch).
Written whole into every checkpoint, it would make writing checkpoints grow with the square of
the steps. Instead each checkpoint adds the entries since the one before as a segment
``history-000500-001000.npz`` (steps 500 to 1000, the first excluded), and the newest two are
merged while the older spans no more steps than the newer (a binary counter): n checkpoints a
fixed number of steps apart leave about log2(n) segments, each entry rewritten about log2(n)
times. A checkpoint's state file records the lengths its history must have.

Reading takes the chain of segments from step 0 through the checkpoint's step: only segments
the folder's manifest lists and the disk holds, each checked against the manifest's SHA-256.
Where a merge was cut short, the merged segment and its parts are both there: the longer is
taken, the parts where it cannot be read. Every save settles the folder: it extends the chain
its object remembers (read by the last load, or written by the last save) while the folder
holds that chain unchanged, else the segments from step 0 whose entries equal the history
being saved; it removes every other segment (an abandoned course's) and cuts the chain's last
at the step reached.

A segment is shared by every checkpoint after it, so a lost or damaged one makes all of them
unreadable; that is the price of not copying the history into each.
"""

from __future__ import annotations

import bisect
import re
from typing import NamedTuple

import numpy as np

from tf_sine.files import read_arrays
from tf_sine.owned import OwnedFolder, file_hash

# The history's lists (`tf_sine.training.TrainingState.history`), each beside the list of the
# steps its entries belong to (ascending).
HISTORY_LISTS = (("loss_steps", "losses"), ("val_steps", "val_losses"))
HISTORY_KEYS = tuple(key for pair in HISTORY_LISTS for key in pair)

Segment = tuple[int, int]  # the steps (start, end] a segment holds
_NAME = re.compile(r"^history-(\d+)-(\d+)\.npz$")


class _Chain(NamedTuple):
    """The segments a save extends, the step they are read or written through, and what each
    was then: the manifest's SHA-256 and the file's size, modification time and inode (a file
    changed since, on disk or in the manifest, makes the next save read the folder again)."""

    segments: list[Segment]
    reached: int
    signatures: dict[Segment, tuple]


class HistorySegments:
    """The history segments in the folder `name` of `owner` (see the module docstring).

    One object per folder and writer: it remembers the chain its last load or save left, and
    extends it while the folder still holds it unchanged.
    """

    def __init__(self, owner: OwnedFolder, name: str):
        self.owner = owner
        self.name = name
        self._chain: _Chain | None = None

    def save(self, step: int, history: dict[str, list]) -> dict[str, int]:
        """Writes the entries of `history` that the chain does not hold yet, as a segment
        ending at `step`, and settles the folder.

        Args:
            step: the checkpoint's step; no entry of `history` is after it.
            history: every list of `HISTORY_KEYS` (steps ascending).

        Returns:
            The lists' lengths (what `load` checks).

        Raises:
            ValueError: a step list and its value list differ in length.
            OSError: a segment cannot be written or read (a full disk, for one).
            RunError: a segment's name is taken by a file tf_sine did not write.
        """
        for steps_key, values_key in HISTORY_LISTS:
            if len(history[steps_key]) != len(history[values_key]):
                raise ValueError(f"expected {steps_key} and {values_key} of one length, got other lengths")
        try:
            return self._save(step, history)
        except (ValueError, FileNotFoundError):  # a segment changed or removed meanwhile
            self._chain = None  # read the folder again, keeping what still agrees
            return self._save(step, history)

    def _save(self, step: int, history: dict[str, list]) -> dict[str, int]:
        on_disk = self._on_disk()
        chain, reached = self._chain_to_extend(on_disk, history, step)
        chain = self._settle(on_disk, chain, reached)
        if step > reached:
            arrays = {}
            for steps_key, values_key in HISTORY_LISTS:
                first = bisect.bisect_right(history[steps_key], reached)
                arrays[steps_key] = np.asarray(history[steps_key][first:], dtype=np.int64)
                arrays[values_key] = np.asarray(history[values_key][first:], dtype=np.float64)
            self._write((reached, step), arrays)
            chain = self._merged([*chain, (reached, step)])
        self.remember(chain, step)
        return {key: len(history[key]) for key in HISTORY_KEYS}

    def load(self, step: int, lengths: dict[str, int]) -> tuple[dict[str, list], list[Segment]]:
        """The history's lists up to `step`, and the chain they were read from (`remember` it
        once the checkpoint they belong to has loaded whole).

        Args:
            step: the checkpoint's step.
            lengths: the lists' lengths its state file records.

        Raises:
            ValueError: no readable chain of segments reaches `step`, or the lists' lengths are
                not `lengths`.
        """
        on_disk, chain, parts, reached = self._on_disk(), [], [], 0
        while reached < step:
            following = sorted((s for s in on_disk if s[0] == reached), key=_span, reverse=True)
            if not following:
                raise ValueError(f"its history has no segment from step {reached}")
            for index, segment in enumerate(following):  # the longest readable one
                try:
                    parts.append(self._read(segment, on_disk[segment]))
                    break
                except (OSError, ValueError):
                    if index == len(following) - 1:
                        raise
            chain.append(segment)
            reached = segment[1]
        history: dict[str, list] = {}
        for steps_key, values_key in HISTORY_LISTS:
            steps = np.concatenate([p[steps_key] for p in parts]) if parts else np.zeros(0, np.int64)
            values = np.concatenate([p[values_key] for p in parts]) if parts else np.zeros(0)
            kept = steps <= step
            history[steps_key], history[values_key] = steps[kept].tolist(), values[kept].tolist()
        found = {key: len(history[key]) for key in HISTORY_KEYS}
        if found != lengths:
            raise ValueError(f"its history holds {found} entries where its state file says {lengths}")
        return history, chain

    def remember(self, chain: list[Segment], step: int) -> None:
        """Makes `chain`, read or written through `step`, the one the next save extends."""
        on_disk = self._on_disk()
        self._chain = _Chain(chain, step, {segment: self._signature(segment, on_disk) for segment in chain})

    def forget(self) -> None:
        """The next save keeps only the segments whose entries equal the history it saves."""
        self._chain = None

    def _chain_to_extend(
        self, on_disk: dict[Segment, str], history: dict[str, list], step: int
    ) -> tuple[list[Segment], int]:
        """The chain the next segment follows and the step it reaches: the one remembered while
        the folder holds it unchanged; else (a fresh object, another writer meanwhile) the
        segments from step 0 whose entries are those of `history`, each read once."""
        known = self._chain
        unchanged = known is not None and all(
            self._signature(segment, on_disk) == known.signatures[segment] for segment in known.segments
        )
        if unchanged and known.reached <= step:
            return known.segments, known.reached
        chain, reached = [], 0
        while reached < step:
            following = [segment for segment in on_disk if segment[0] == reached]
            if not following:
                break
            segment = max(following, key=lambda candidate: candidate[1])
            try:
                arrays = self._read(segment, on_disk[segment])
            except (OSError, ValueError):
                break
            end = min(segment[1], step)
            if not _holds(arrays, history, reached, end):
                break
            chain.append(segment)
            reached = end
        return chain, reached

    def _settle(self, on_disk: dict[Segment, str], chain: list[Segment], reached: int) -> list[Segment]:
        """Removes every segment outside `chain` (listed ones missing too) and cuts its last at
        `reached`; the chain."""
        for segment in self._listed():
            if segment not in chain:
                self.owner.remove(self._relative(segment))
        if chain and chain[-1][1] > reached:
            last = chain[-1]
            arrays = self._read(last, on_disk[last])
            cut = {}
            for steps_key, values_key in HISTORY_LISTS:
                kept = arrays[steps_key] <= reached
                cut[steps_key], cut[values_key] = arrays[steps_key][kept], arrays[values_key][kept]
            self._write((last[0], reached), cut)  # before the longer one goes: a crash leaves both
            self.owner.remove(self._relative(last))
            chain = [*chain[:-1], (last[0], reached)]
        return chain

    def _merged(self, chain: list[Segment]) -> list[Segment]:
        """`chain` with its newest two segments merged while the older spans no more steps."""
        while len(chain) >= 2 and _span(chain[-2]) <= _span(chain[-1]):
            older, newer = chain[-2:]
            listed = self._listed()
            parts = [self._read(older, listed.get(older)), self._read(newer, listed.get(newer))]
            merged = (older[0], newer[1])
            self._write(merged, {key: np.concatenate([p[key] for p in parts]) for key in parts[0]})
            for segment in (older, newer):  # after the merged one is written: a crash leaves both
                self.owner.remove(self._relative(segment))
            chain = [*chain[:-2], merged]
        return chain

    def _listed(self) -> dict[Segment, str]:
        """Segment -> SHA-256 of those the manifest lists, by start then end."""
        prefix = f"{self.name}/"
        found = {}
        for relative, digest in self.owner.owned_files().items():
            match = _NAME.match(relative[len(prefix) :]) if relative.startswith(prefix) else None
            if match:
                found[(int(match[1]), int(match[2]))] = digest
        return dict(sorted(found.items()))

    def _on_disk(self) -> dict[Segment, str]:
        """The listed segments the disk holds. A listed one may be missing: the manifest lists
        a file before it is renamed into place, and forgets one after it is deleted."""
        listed = self._listed().items()
        return {s: digest for s, digest in listed if (self.owner.path / self._relative(s)).is_file()}

    def _relative(self, segment: Segment) -> str:
        return f"{self.name}/history-{segment[0]:06d}-{segment[1]:06d}.npz"

    def _write(self, segment: Segment, arrays: dict[str, np.ndarray]) -> None:
        self.owner.write(self._relative(segment), lambda temporary: np.savez(temporary, **arrays))

    def _signature(self, segment: Segment, on_disk: dict[Segment, str]) -> tuple | None:
        """What tells a segment changed without reading it; None for one not on disk."""
        if segment not in on_disk:
            return None
        stat = (self.owner.path / self._relative(segment)).stat()
        return on_disk[segment], stat.st_size, stat.st_mtime_ns, stat.st_ino

    def _read(self, segment: Segment, digest: str | None) -> dict[str, np.ndarray]:
        """A segment's arrays, checked against `digest` (the manifest's SHA-256).

        Raises:
            ValueError: the file is not the one tf_sine wrote, or cannot be read as one.
            OSError: the file cannot be read.
        """
        path = self.owner.path / self._relative(segment)
        if file_hash(path) != digest:
            raise ValueError(f"{path.name} was changed after tf_sine wrote it")
        arrays = read_arrays(path)
        for steps_key, values_key in HISTORY_LISTS:
            if len(arrays.get(steps_key, ())) != len(arrays.get(values_key, ())):
                raise ValueError(f"{path.name} holds {steps_key} and {values_key} of different lengths")
        return arrays


def _span(segment: Segment) -> int:
    return segment[1] - segment[0]


def _holds(arrays: dict[str, np.ndarray], history: dict[str, list], start: int, end: int) -> bool:
    """Whether a segment's entries of steps (start, end] are those of `history`, to the bit."""
    for steps_key, values_key in HISTORY_LISTS:
        kept = arrays[steps_key] <= end
        first, last = (bisect.bisect_right(history[steps_key], bound) for bound in (start, end))
        expected_steps = np.asarray(history[steps_key][first:last], dtype=np.int64)
        expected_values = np.asarray(history[values_key][first:last], dtype=np.float64)
        if not (
            np.array_equal(arrays[steps_key][kept], expected_steps)
            and np.array_equal(arrays[values_key][kept], expected_values)
        ):
            return False
    return True
