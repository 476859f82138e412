"""A run's ``checkpoints/`` folder: what training saves to resume bit for bit, and reads back.

Each checkpoint is three files sharing one step number::

    step-000500.keras        the model with its optimizer state (plain Keras)
    step-000500.state.json   the random-generator states `model.save` leaves out, the
                             training time, the best step, the history's lengths, the step
    step-000500.best.npz     the best weights so far (only with a validation part)

The ``.keras`` file is written last, so it never exists without the others: a checkpoint is
its ``.keras`` file. Only the newest few are kept.

The training history (a loss per step, a validation loss per epoch) is kept apart: each
checkpoint adds the entries since the one before as a segment ``history-000500-001000.npz``
(steps 500 to 1000, the first excluded), and the newest two are
merged while the older spans no more steps than the newer. A long run thus writes each entry
a few times and keeps a few segments, where a whole history in every state file would make
writing checkpoints grow with the square of the steps.
"""

from __future__ import annotations

import bisect
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tf_sine.files import first_line, json_text, load_keras, read_json
from tf_sine.owned import OwnedFolder

CHECKPOINTS_KEPT = 3

_CHECKPOINT_NAME = re.compile(r"^step-(\d+)\.keras$")
_SEGMENT_NAME = re.compile(r"^history-(\d+)-(\d+)\.npz$")
# The history's lists (`TrainingState.history`), each beside the list of its entries' steps.
HISTORY_SERIES = (("loss_steps", "losses"), ("val_steps", "val_losses"))

Segment = tuple[int, int]  # the steps (start, end] a history segment holds


class Checkpoints:
    """The checkpoints of one run, in the folder `name` of the run's `owner` (made on the first save).

    Every file is written and removed through `owner`, so the run's manifest lists it.
    """

    def __init__(self, owner: OwnedFolder, name: str = "checkpoints"):
        self.owner = owner
        self.name = name
        self.folder = owner.path / name
        # The history segments the next save extends, and the step they reach: those of the
        # checkpoint loaded, those this object saved; None for a fresh start.
        self._history: tuple[list[Segment], int] | None = None

    def save(
        self,
        model: Any,
        step: int,
        state: dict[str, Any] | None = None,
        best_weights: list[np.ndarray] | None = None,
        keep: int = CHECKPOINTS_KEPT,
    ) -> Path:
        """Saves the checkpoint of `step`, then removes all but the newest `keep`, and any after it.

        Args:
            model: a compiled Keras model; its optimizer state is saved with it.
            step: the optimizer steps taken so far.
            state: more JSON-able training state (`TrainingState.history()`).
            best_weights: the best weights so far, as `model.get_weights()` gives them.
            keep: how many checkpoints to keep.

        Returns:
            The checkpoint's ``.keras`` path.
        """
        path = self.folder / f"step-{step:06d}.keras"
        state = dict(state or {})
        if any(key in state for pair in HISTORY_SERIES for key in pair):
            state["history_lengths"] = self._save_history(step, state)
        text = json_text({**state, "step": step, "seed_generators": _seed_states(model)})
        self.owner.write(self._relative(_state_path(path)), lambda temporary: temporary.write_text(text))
        if best_weights is not None:
            arrays = {f"w{index:04d}": weight for index, weight in enumerate(best_weights)}
            self.owner.write(
                self._relative(_best_path(path)), lambda temporary: np.savez(temporary, **arrays)
            )
        self.owner.write(self._relative(path), model.save)
        # Checkpoints after this step are an abandoned course's (those that could not be read
        # when this run resumed or started again); of the rest the newest `keep` stay.
        saved = self.saved()
        abandoned = [old for saved_step, old in saved if saved_step > step]
        earlier = [old for saved_step, old in saved if saved_step <= step]
        for old in abandoned + earlier[:-keep]:
            for file in (old, _state_path(old), _best_path(old)):
                self.owner.remove(self._relative(file))
        return path

    def _relative(self, path: Path) -> str:
        return f"{self.name}/{path.name}"

    def _save_history(self, step: int, state: dict[str, Any]) -> dict[str, int]:
        """Writes the history's entries after the last segment's end as a segment up to `step`.

        The history's lists are taken out of `state`; returns their lengths.
        """
        series = {key: state.pop(key, []) for pair in HISTORY_SERIES for key in pair}
        chain, reached = self._settle_history()
        if step < reached:  # saved again at an earlier step: the history is written anew
            chain, reached = self._settle_history(([], 0))
        if step > reached:
            arrays = {}
            for steps_key, values_key in HISTORY_SERIES:
                first = bisect.bisect_right(series[steps_key], reached)
                arrays[steps_key] = np.asarray(series[steps_key][first:], dtype=np.int64)
                arrays[values_key] = np.asarray(series[values_key][first:], dtype=np.float64)
            self._write_segment((reached, step), arrays)
            chain = self._merged([*chain, (reached, step)])
        self._history = (chain, step)
        return {key: len(values) for key, values in series.items()}

    def _settle_history(self, history: tuple[list[Segment], int] | None = None) -> tuple[list[Segment], int]:
        """Removes the segments outside the chain the next save extends (`history`, default the
        one loaded or saved; none for a fresh start) and cuts its last at the step it reaches.

        A resumed run drops what an abandoned one wrote after its checkpoint; a fresh one, all.
        """
        chain, reached = history or self._history or ([], 0)
        for segment in self._segments():
            if segment not in chain:
                self.owner.remove(self._segment_relative(segment))
        if chain and chain[-1][1] > reached:
            last = chain[-1]
            arrays = self._read_segment(last)
            cut = {}
            for steps_key, values_key in HISTORY_SERIES:
                kept = arrays[steps_key] <= reached
                cut[steps_key], cut[values_key] = arrays[steps_key][kept], arrays[values_key][kept]
            self._write_segment((last[0], reached), cut)
            self.owner.remove(self._segment_relative(last))
            chain = [*chain[:-1], (last[0], reached)]
        self._history = (chain, reached)
        return chain, reached

    def _merged(self, chain: list[Segment]) -> list[Segment]:
        """`chain` with its newest two segments merged while the older spans no more steps.

        As a binary counter: n checkpoints a fixed number of steps apart leave about log2(n)
        segments, and each entry is rewritten about log2(n) times.
        """
        while len(chain) >= 2 and _span(chain[-2]) <= _span(chain[-1]):
            older, newer = chain[-2:]
            parts = [self._read_segment(older), self._read_segment(newer)]
            merged = (older[0], newer[1])
            self._write_segment(merged, {key: np.concatenate([p[key] for p in parts]) for key in parts[0]})
            for segment in (older, newer):  # after the merged one is written: a crash leaves both
                self.owner.remove(self._segment_relative(segment))
            chain = [*chain[:-2], merged]
        return chain

    def _segments(self) -> list[Segment]:
        """The history segments tf_sine wrote here, by start then end."""
        prefix = f"{self.name}/"
        names = (r[len(prefix) :] for r in self.owner.owned_files() if r.startswith(prefix))
        return sorted((int(m[1]), int(m[2])) for m in map(_SEGMENT_NAME.match, names) if m)

    def _segment_relative(self, segment: Segment) -> str:
        return f"{self.name}/history-{segment[0]:06d}-{segment[1]:06d}.npz"

    def _write_segment(self, segment: Segment, arrays: dict[str, np.ndarray]) -> None:
        self.owner.write(self._segment_relative(segment), lambda temporary: np.savez(temporary, **arrays))

    def _read_segment(self, segment: Segment) -> dict[str, np.ndarray]:
        return _read_arrays(self.owner.path / self._segment_relative(segment))

    def _load_history(self, step: int, lengths: dict[str, int]) -> tuple[dict[str, list], list[Segment]]:
        """The history's lists up to `step`, from a chain of segments from step 0, and the chain.

        Raises:
            ValueError: the segments do not reach `step`, or hold other lengths than `lengths`.
        """
        segments, chain, reached = self._segments(), [], 0
        while reached < step:  # where a merge was cut short, the merged segment covers both
            following = [segment for segment in segments if segment[0] == reached]
            if not following:
                raise ValueError(f"its history has no segment from step {reached}")
            chain.append(max(following, key=lambda segment: segment[1]))
            reached = chain[-1][1]
        parts = [self._read_segment(segment) for segment in chain]
        series: dict[str, list] = {}
        for steps_key, values_key in HISTORY_SERIES:
            steps = np.concatenate([p[steps_key] for p in parts]) if parts else np.zeros(0, np.int64)
            values = np.concatenate([p[values_key] for p in parts]) if parts else np.zeros(0)
            kept = steps <= step
            series[steps_key], series[values_key] = steps[kept].tolist(), values[kept].tolist()
        found = {key: len(values) for key, values in series.items()}
        if found != lengths:
            raise ValueError(f"its history holds {found} entries where its state file says {lengths}")
        return series, chain

    def saved(self) -> list[tuple[int, Path]]:
        """`(step, path)` of every checkpoint, oldest first."""
        if not self.folder.is_dir():
            return []
        ours = self.owner.owned_files()  # a file of the user's named like a checkpoint is not one
        entries = (e for e in self.folder.iterdir() if self._relative(e) in ours)
        steps = ((checkpoint_step(entry), entry) for entry in entries)
        return sorted((step, entry) for step, entry in steps if step is not None)

    def load_newest(self, notify: Callable[[str], None] | None = None) -> tuple[Any, dict[str, Any]] | None:
        """Loads the newest readable checkpoint, with its random-generator states restored.

        A checkpoint that cannot be read (truncated, corrupt, its state file missing) is
        reported through `notify` and the one before it is tried.

        Returns:
            `(model, state)`, the state with ``best_weights`` when it was saved; None when
            there is no readable checkpoint.
        """
        for _, path in reversed(self.saved()):
            try:
                state = read_json(_state_path(path))
                chain: list[Segment] = []
                if "history_lengths" in state:  # else the history is in the state file (older runs)
                    series, chain = self._load_history(state["step"], state.pop("history_lengths"))
                    state.update(series)
                model = load_keras(path)
                _restore_seed_states(model, state["seed_generators"])
                if state.get("best_step"):
                    arrays = _read_arrays(_best_path(path))
                    state["best_weights"] = [arrays[name] for name in sorted(arrays)]
            except (OSError, ValueError, KeyError) as error:  # ModelError is a ValueError
                if notify is not None:
                    notify(f"checkpoint {path} is unreadable ({first_line(error)}); using the one before it")
                continue
            # Read only: the next save settles the segments (other workers read them too).
            self._history = (chain, state["step"] if chain else 0)
            return model, state
        return None


def checkpoint_step(path: str | os.PathLike) -> int | None:
    """The step of a checkpoint file name (``step-000500.keras`` -> 500), else None."""
    match = _CHECKPOINT_NAME.match(Path(path).name)
    return int(match.group(1)) if match else None


def _state_path(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.name.replace(".keras", ".state.json"))


def _best_path(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.name.replace(".keras", ".best.npz"))


def _span(segment: Segment) -> int:
    return segment[1] - segment[0]


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file by name; ValueError where it cannot be read."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return {name: arrays[name] for name in arrays.files}
    except OSError:
        raise
    except Exception as error:  # a truncated archive raises zipfile.BadZipFile
        raise ValueError(f"cannot read {path.name}: {error}") from None


def _seed_generator_variables(model: Any) -> list[Any]:
    # Dropout draws from keras.random.SeedGenerator states: model variables that model.save
    # does not store. Without them a resumed run would draw other dropout masks.
    return [v for v in model.non_trainable_variables if v.path.endswith("seed_generator_state")]


def _seed_states(model: Any) -> list[list[int]]:
    return [[int(n) for n in v.numpy()] for v in _seed_generator_variables(model)]


def _restore_seed_states(model: Any, states: list[list[int]]) -> None:
    variables = _seed_generator_variables(model)
    if len(variables) != len(states):
        raise ValueError(
            f"the state file has {len(states)} random-generator states, the model {len(variables)}"
        )
    for variable, values in zip(variables, states, strict=True):
        variable.assign(values)
