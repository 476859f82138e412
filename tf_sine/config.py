"""One typed, frozen configuration, its named presets, and the tables of allowed values.

The model factory (`tf_sine.models`), the training engine and the command line all read the
tables below, so a value is either allowed everywhere or nowhere. This module imports neither
Keras nor TensorFlow: the CLI validates its arguments before paying for those imports.

>>> cfg = Config(units=8, steps=100)
>>> cfg.units, cfg.cell, cfg.layout
(8, 'lstm', 'legacy')
>>> PRESETS["legacy"].config == Config()
True
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from dataclasses import dataclass
from typing import Any

from tf_sine.errors import ConfigError, ConfigTypeError

# Name accepted by the factory and the CLI -> class name in `keras.layers`.
CELLS: dict[str, str] = {"lstm": "LSTM", "gru": "GRU", "simple_rnn": "SimpleRNN"}

# Name accepted by the factory and the CLI -> class name in `keras.optimizers`. The source
# used contrib's `optimize_loss(optimizer="Adagrad")`.
OPTIMIZERS: dict[str, str] = {
    "adagrad": "Adagrad",
    "adam": "Adam",
    "adamw": "AdamW",
    "rmsprop": "RMSprop",
    "sgd": "SGD",
}

# How one window is fed to the recurrent layers.
LAYOUTS: dict[str, str] = {
    "legacy": "(N, 1, timesteps): ONE time step holding `timesteps` values, as the source fed it",
    "sequence": "(N, timesteps, 1): `timesteps` time steps of one value, the usual RNN layout",
}

# How the recurrent layers' weights start (the Dense head is Glorot-uniform either way, as
# contrib's fully_connected was).
INITIALIZERS: dict[str, str] = {
    "keras": "Keras's defaults: Glorot-uniform input kernel, orthogonal recurrent kernel",
    "uniform_unit_scaling": "TF 0.12's default for BasicLSTMCell's joint matrix: uniform within "
    "sqrt(3 / (inputs + units)), input and recurrent kernels alike",
}

# The order the training windows are drawn in (see `tf_sine.training`).
BATCH_ORDERS: dict[str, str] = {
    "passes": "a seeded permutation per pass over the windows; every batch full",
    "datafeeder": "TF 0.12 contrib.learn's DataFeeder: RandomState(42) permutations whatever the "
    "seed, sequential slices, a partial batch at each epoch's end",
}

# Training engines (see `tf_sine.training`).
ENGINES: dict[str, str] = {
    "fast": "many optimizer steps per compiled call, batches gathered inside the graph",
    "fit": "plain `keras.Model.fit`, the reference path",
}

# How training is spread over devices and machines (tf.distribute; see tf_sine.distribute).
DISTRIBUTIONS: dict[str, str] = {
    "none": "one process, TensorFlow's default device placement",
    "mirrored": "MirroredStrategy: one replica per GPU of this machine (one CPU replica without GPUs)",
    "multi-worker": "MultiWorkerMirroredStrategy: one process per machine, the cluster in TF_CONFIG",
}

# How a series is scaled before it reaches the model (fitted on the training part only).
SCALES: dict[str, str] = {
    "auto": "standard for a series file (`data`); none for the source's sine, which the source fed unscaled",
    "none": "the values as they are",
    "standard": "subtract the training part's mean, divide by its standard deviation",
    "minmax": "map the training part's range to [0, 1]",
}

# What to do with empty cells in a series file's value column (never scored as truth).
FILLS: dict[str, str] = {
    "none": "refuse the file, naming the first empty cell and how many there are",
    "interpolate": "a straight line between the values around each gap (in time, where there are dates)",
    "ffill": "the last value before each gap (the first value for a gap at the start)",
}

# Calendar features (`calendar`): each adds the sine and cosine of where a date lies in its cycle.
CALENDARS: dict[str, str] = {
    "auto": "the cycles the dates' frequency shows: hour and weekday below a day, weekday and yearday "
    "for days, yearday for weeks, month for months and quarters",
    "hour": "the hour of the day",
    "weekday": "the day of the week",
    "yearday": "the day of the year",
    "month": "the month of the year",
}

CLIP_OPTIONS = ("clipnorm", "clipvalue", "global_clipnorm")


def check_choice(argument: str, value: Any, allowed: dict[str, str] | tuple[str, ...]) -> str:
    """Returns `value` if it is one of `allowed`, else raises `ConfigError` listing them."""
    if not isinstance(value, str) or value not in allowed:
        names = ", ".join(repr(name) for name in allowed)
        raise ConfigError(argument, f"expected one of {names}, got {value!r}")
    return value


def check_names(argument: str, value: Any, example: str = "price,holiday") -> tuple[str, ...]:
    """`value` (a sequence of distinct non-empty strings, or one comma-separated string) as a tuple;
    `example` is what a message shows as such names."""
    names = tuple(value.split(",")) if isinstance(value, str) else value
    if not isinstance(names, (tuple, list)) or not all(isinstance(name, str) for name in names):
        raise ConfigTypeError(argument, f"expected names such as {example!r}, got {value!r}")
    if not all(names):
        shown = ",".join(names)
        raise ConfigError(argument, f"expected names such as {example!r}, got an empty name in {shown!r}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(argument, f"expected each name once, got {repeated[0]!r} more than once")
    return tuple(names)


def check_positive_int(argument: str, value: Any) -> int:
    """Returns `value` if it is an integer >= 1 (bools refused), else raises."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigTypeError(argument, f"expected a positive integer, got {value!r}")
    if value < 1:
        raise ConfigError(argument, f"expected a positive integer, got {value!r}")
    return int(value)


def check_int(argument: str, value: Any) -> int:
    """Returns `value` if it is an integer (bools refused), else raises `ConfigTypeError`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigTypeError(argument, f"expected an integer, got {value!r}")
    return int(value)


def _check_real(argument: str, value: Any, expected: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigTypeError(argument, f"expected {expected}, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(argument, f"expected {expected}, got {value!r}")
    return float(value)


def check_positive_float(argument: str, value: Any) -> float:
    """Returns `value` as a float if it is a finite number > 0, else raises."""
    number = _check_real(argument, value, "a positive number")
    if number <= 0:
        raise ConfigError(argument, f"expected a positive number, got {value!r}")
    return number


def check_rate(argument: str, value: Any) -> float:
    """Returns `value` as a float if it is a dropout rate in [0, 1), else raises."""
    number = _check_real(argument, value, "a rate in [0, 1)")
    if not 0.0 <= number < 1.0:
        raise ConfigError(argument, f"expected a rate in [0, 1), got {value!r}")
    return number


def check_split(argument: str, value: Any) -> tuple[float, float, float]:
    """Returns `value` as three fractions (train, validation, test) that sum to 1, else raises."""
    expected = "three fractions train,validation,test in [0, 1] summing to 1, train and test above 0"
    try:
        fractions = tuple(_check_real(argument, part, expected) for part in value)
    except TypeError:
        raise ConfigTypeError(argument, f"expected {expected}, got {value!r}") from None
    if (
        len(fractions) != 3
        or not all(0.0 <= part <= 1.0 for part in fractions)
        or abs(sum(fractions) - 1.0) > 1e-6
        or fractions[0] <= 0
        or fractions[2] <= 0
    ):
        shown = ",".join(f"{part:g}" for part in fractions)
        raise ConfigError(argument, f"expected {expected}, got {shown}")
    return fractions  # type: ignore[return-value]


def validate_model_options(
    *,
    cell: str,
    units: int,
    num_layers: int,
    bidirectional: bool,
    dropout: float,
    recurrent_dropout: float,
    optimizer: str,
    learning_rate: float,
    clipnorm: float | None,
    clipvalue: float | None,
    global_clipnorm: float | None,
    timesteps: int,
    layout: str,
    features: int = 1,
    initializer: str = "keras",
    horizon: int = 1,
) -> None:
    """Checks the model factory's arguments; raises `ConfigError` on the first bad one.

    Shared by `Config` and `tf_sine.build_model`, so both refuse the same values with the
    same words.
    """
    check_choice("cell", cell, CELLS)
    check_positive_int("units", units)
    check_positive_int("num_layers", num_layers)
    if not isinstance(bidirectional, bool):
        raise ConfigTypeError("bidirectional", f"expected True or False, got {bidirectional!r}")
    check_rate("dropout", dropout)
    check_rate("recurrent_dropout", recurrent_dropout)
    check_choice("optimizer", optimizer, OPTIMIZERS)
    check_positive_float("learning_rate", learning_rate)
    clips = {"clipnorm": clipnorm, "clipvalue": clipvalue, "global_clipnorm": global_clipnorm}
    for name, value in clips.items():
        if value is not None:
            check_positive_float(name, value)
    chosen = [f"{name}={value!r}" for name, value in clips.items() if value is not None]
    if len(chosen) > 1:
        raise ConfigError(
            chosen[0].split("=")[0],
            f"expected at most one of clipnorm, clipvalue, global_clipnorm, got {', '.join(chosen)}",
        )
    check_positive_int("timesteps", timesteps)
    check_choice("layout", layout, LAYOUTS)
    check_positive_int("features", features)
    check_choice("initializer", initializer, INITIALIZERS)
    check_positive_int("horizon", horizon)
    if features > 1 and layout != "sequence":
        raise ConfigError(
            "features", f"expected 1 with the legacy layout (one step of the window), got {features}"
        )
    count = weight_count(
        cell, units, num_layers, bidirectional, timesteps if layout == "legacy" else features
    )
    available = physical_memory()
    if available and count * _BYTES_PER_WEIGHT > available:
        raise ConfigError(
            "units",
            f"expected a model that fits in this machine's memory ({available / 2**30:.3g} GiB), got "
            f"{count:,} weights that need about {count * _BYTES_PER_WEIGHT / 2**30:.3g} GiB with their "
            f"gradients and optimizer state ({units} units, {num_layers} layers)",
        )


# Each weight is float32 and comes with its gradient and up to two optimizer slots (Adam's).
_BYTES_PER_WEIGHT = 4 * 4
_FLOAT_BYTES = 4
_STATES_KEPT = 3  # beside the gates: the hidden state, the cell state and its tanh (the LSTM's)
_WITH_GRADIENTS = 2  # an activation and its gradient
_GATES = {"lstm": 4, "gru": 3, "simple_rnn": 1}


def weight_count(cell: str, units: int, num_layers: int, bidirectional: bool, inputs: int) -> int:
    """The trainable weights of `tf_sine.build_model`'s stack and its Dense head.

    Args:
        inputs: values per time step of the first layer (the window length in the legacy
            layout, `features` in the sequence layout).
    """
    directions = 2 if bidirectional else 1
    # Keras's GRU keeps two biases per gate (reset_after=True); LSTM and SimpleRNN one.
    biases = 2 if cell == "gru" else 1
    count = 0
    for layer in range(num_layers):
        width = inputs if layer == 0 else units * directions
        count += directions * _GATES[cell] * (width * units + units * units + biases * units)
    return count + units * directions + 1


def batch_bytes(
    cell: str, units: int, num_layers: int, bidirectional: bool, inputs: int, steps: int, batch_size: int
) -> int:
    """About the memory one training step's batch takes: its windows, and the activations each
    layer keeps for the backward pass at each time step (gates and states), with their gradients.

    Args:
        inputs: values per time step of the first layer (the window length in the legacy
            layout, `features` in the sequence layout).
        steps: time steps per window (1 in the legacy layout, the window length in the
            sequence layout).
    """
    directions = 2 if bidirectional else 1
    kept = _GATES[cell] + _STATES_KEPT  # floats per unit, step and layer kept for the backward pass
    per_window = inputs * steps + num_layers * directions * steps * units * kept
    return _WITH_GRADIENTS * _FLOAT_BYTES * batch_size * per_window


def physical_memory() -> int:
    """This machine's memory in bytes; 0 where the platform does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not every platform says
        return 0


DEFAULT_SPLIT = (0.7, 0.15, 0.15)
NEEDS_VALIDATION = "needs a validation part: a `data` file and a validation fraction in `split`"


@dataclass(frozen=True)
class Config:
    """Everything that defines one experiment: the model, the data windows and the training.

    The defaults are the source script's hyperparameters (`PRESETS["legacy"]`).
    """

    # --- model (the arguments of `tf_sine.build_model`) ---
    cell: str = "lstm"  # one of CELLS; the source used BasicLSTMCell
    units: int = 30  # HIDDEN_SIZE
    num_layers: int = 2  # NUM_LAYERS, stacked with MultiRNNCell in the source
    bidirectional: bool = False  # wrap each layer in keras.layers.Bidirectional
    dropout: float = 0.0  # input dropout of each recurrent layer (DropoutWrapper)
    recurrent_dropout: float = 0.0  # dropout on the recurrent state
    optimizer: str = "adagrad"  # one of OPTIMIZERS
    learning_rate: float = 0.1
    clipnorm: float | None = None  # clip each gradient tensor to this L2 norm
    clipvalue: float | None = None  # clip each gradient element to [-v, v]
    global_clipnorm: float | None = None  # clip all gradients jointly (contrib's clip_gradients)
    timesteps: int = 10  # TIMESTEPS: values in one input window
    features: int = 1  # values per time step (sequence layout only; the sine has 1)
    initializer: str = "keras"  # one of INITIALIZERS
    horizon: int = 1  # values the head predicts at once: the next `horizon` (direct multi-step)
    layout: str = "legacy"  # one of LAYOUTS
    # --- training ---
    steps: int = 3000  # TRAINING_STEPS: optimizer steps, as the Estimator counted them
    batch_size: int = 32  # BATCH_SIZE
    seed: int = 0  # seeds weights, dropout and the data order ("passes")
    batches: str = "passes"  # one of BATCH_ORDERS
    checkpoint_every: int = 500  # steps between checkpoints in the run directory
    engine: str = "fast"  # one of ENGINES
    distribute: str = "none"  # one of DISTRIBUTIONS; batch_size is the global batch
    # --- data (default: the source's sine; see tf_sine.dataset) ---
    data: str | None = None  # a CSV or .npy series file instead of the sine
    column: str | None = None  # the CSV value column; default the only numeric one
    fill: str = "none"  # one of FILLS: empty cells in the value column
    covariates: tuple[str, ...] = ()  # CSV columns fed beside the values (known in the future too)
    calendar: tuple[str, ...] = ()  # CALENDARS features of the dates fed beside the values
    id_column: str | None = None  # a long table's column naming each row's series (tf_sine.panel)
    series_id: str | None = None  # one series of such a table; None: all of them
    split: tuple[float, float, float] = DEFAULT_SPLIT  # chronological train/validation/test
    scale: str = "auto"  # one of SCALES, fitted on the training part
    difference: bool | None = None  # model the change between values; None: when trending (a file)
    period: int | None = None  # season length of the seasonal-naive baseline; None: detected
    validate_every: int = 100  # steps between validation losses (when there is a validation part)
    patience: int | None = None  # stop after this many validations without a better one

    def __post_init__(self) -> None:
        validate_model_options(**self.model_options())
        check_positive_int("steps", self.steps)
        check_positive_int("batch_size", self.batch_size)
        if not 0 <= check_int("seed", self.seed) < 2**32:
            raise ConfigError("seed", f"expected an integer from 0 to 2**32 - 1, got {self.seed}")
        check_positive_int("checkpoint_every", self.checkpoint_every)
        check_choice("engine", self.engine, ENGINES)
        check_choice("batches", self.batches, BATCH_ORDERS)
        if self.batches == "datafeeder" and self.distribute != "none":
            raise ConfigError(
                "batches", f"expected 'passes' with `distribute` {self.distribute} (a partial batch "
                "cannot be shared evenly by the replicas), got 'datafeeder'",
            )  # fmt: skip
        check_choice("distribute", self.distribute, DISTRIBUTIONS)
        if self.distribute != "none" and self.engine != "fast":
            raise ConfigError(
                "engine",
                f"expected 'fast' with `distribute` {self.distribute} (Keras 3.15's fit fails under "
                "MultiWorkerMirroredStrategy; the fast engine runs the distributed loop), "
                f"got {self.engine!r}",
            )
        for name in ("data", "column", "id_column", "series_id"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigTypeError(name, f"expected a non-empty string or None, got {value!r}")
        if self.series_id is not None and self.id_column is None:
            raise ConfigError(
                "series_id", f"applies to a table of several series (`id_column`), got {self.series_id!r}"
            )
        check_choice("fill", self.fill, FILLS)
        self._check_extra_inputs()
        # JSON gives a list back; the frozen config keeps a tuple so that configs compare equal.
        object.__setattr__(self, "split", check_split("split", self.split))
        check_choice("scale", self.scale, SCALES)
        if self.difference is not None and not isinstance(self.difference, bool):
            raise ConfigTypeError(
                "difference", f"expected True, False or None (auto), got {self.difference!r}"
            )
        if self.period is not None and check_positive_int("period", self.period) < 2:
            raise ConfigError("period", f"expected a season length of at least 2 steps, got {self.period}")
        check_positive_int("validate_every", self.validate_every)
        if self.patience is not None:
            check_positive_int("patience", self.patience)
            if self.split[1] == 0:
                raise ConfigError("patience", NEEDS_VALIDATION)

    def check_for_sine(self) -> None:
        """Refuses what only a series of one's own takes, for a run on the source's sine.

        `Config` alone cannot tell: a pandas object may still come (`run_experiment(series=)`).

        Raises:
            ConfigError: `column`, `fill`, `split`, `patience`, `covariates`, `calendar` or
                `id_column` set.
        """
        if self.column is not None:
            raise ConfigError("column", f"applies to a `data` file only, got {self.column!r} without one")
        if self.fill != "none":
            raise ConfigError("fill", f"applies to a `data` file only, got {self.fill!r} without one")
        if self.split != DEFAULT_SPLIT:
            raise ConfigError(
                "split",
                "applies to a `data` file only (the sine keeps the source's ranges), got "
                + ",".join(f"{part:g}" for part in self.split),
            )
        if self.patience is not None:
            raise ConfigError("patience", NEEDS_VALIDATION)
        if self.covariates or self.calendar:
            name = "covariates" if self.covariates else "calendar"
            raise ConfigError(
                name, "applies to a series of your own (`data`): the sine has no other columns or dates"
            )
        if self.id_column is not None:
            raise ConfigError(
                "id_column", f"applies to a `data` table of several series, got {self.id_column!r} without it"
            )

    def check_batch_memory(self) -> None:
        """Refuses a batch whose training step cannot fit in this machine's memory (`batch_bytes`),
        before anything runs: past it, the process is killed by the system without a word. Only
        training asks (a run trained elsewhere still opens here for predictions).

        Raises:
            ConfigError: naming `batch_size`.
        """
        steps, inputs = (1, self.timesteps) if self.layout == "legacy" else (self.timesteps, self.features)
        need = batch_bytes(self.cell, self.units, self.num_layers, self.bidirectional, inputs, steps,
                           self.batch_size)  # fmt: skip
        available = physical_memory()
        if available and need > available:
            raise ConfigError(
                "batch_size", f"expected a batch that fits in this machine's memory ({available / 2**30:.3g} "
                f"GiB), got {self.batch_size:,} windows, which need about {need / 2**30:.3g} GiB a step",
            )  # fmt: skip

    def _check_extra_inputs(self) -> None:
        """Checks `covariates` and `calendar`, and sets `features` to the values per time step
        they make: the value, each covariate, and a sine and cosine per calendar cycle."""
        object.__setattr__(self, "covariates", check_names("covariates", self.covariates))
        object.__setattr__(self, "calendar", check_names("calendar", self.calendar, "weekday,yearday"))
        for name in self.calendar:
            check_choice("calendar", name, CALENDARS)
        if "auto" in self.calendar and len(self.calendar) > 1:
            raise ConfigError(
                "calendar", f"expected 'auto' alone or named cycles, got {','.join(self.calendar)}"
            )
        if not (self.covariates or self.calendar):
            return
        name = "covariates" if self.covariates else "calendar"
        # Without `data` a pandas table may still come (`run_experiment(series=)`): checked on loading.
        if self.layout != "sequence":
            raise ConfigError(
                "layout", f"expected 'sequence' with `{name}` (one time step per value, with its features), "
                f"got {self.layout!r}",
            )  # fmt: skip
        if self.calendar == ("auto",):
            return  # resolved from the dates (`tf_sine.covariates.resolve_calendar`)
        features = 1 + len(self.covariates) + 2 * len(self.calendar)
        if self.features not in (1, features):
            raise ConfigError(
                "features", f"expected {features} (the value, {len(self.covariates)} covariates and "
                f"{len(self.calendar)} calendar cycles), got {self.features}",
            )  # fmt: skip
        object.__setattr__(self, "features", features)

    def model_options(self) -> dict[str, Any]:
        """The keyword arguments of `tf_sine.build_model` for this configuration."""
        return {name: getattr(self, name) for name in MODEL_FIELDS}

    def replace(self, **changes: Any) -> Config:
        """A copy with `changes` applied (validated like any new `Config`)."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ConfigError(unknown[0], f"not a configuration field; known: {', '.join(FIELDS)}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples as lists); `Config.from_dict` inverts it."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Config:
        """Rebuilds a `Config` from `to_dict` output; unknown keys are refused."""
        return cls().replace(**values)


FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Config))
MODEL_FIELDS: tuple[str, ...] = FIELDS[: FIELDS.index("layout") + 1]


@dataclass(frozen=True)
class Preset:
    """A named configuration with a one-line description."""

    description: str
    config: Config


PRESETS: dict[str, Preset] = {
    "legacy": Preset(
        "the source script: 2 x LSTM(30), Adagrad 0.1, batch 32, 3000 steps, (N, 1, 10) windows",
        Config(),
    ),
    "legacy-exact": Preset(
        "the source script as TF 0.12 ran it: its initialiser and DataFeeder batches, a partial "
        "batch every 313th step",
        Config(initializer="uniform_unit_scaling", batches="datafeeder"),
    ),
    "sequence": Preset(
        "the source's model fed (N, 10, 1) windows: ten time steps of one value",
        Config(layout="sequence"),
    ),
    "tiny": Preset(
        "a seconds-long smoke run: 2 x LSTM(4), 50 steps",
        Config(units=4, steps=50, checkpoint_every=25),
    ),
}
DEFAULT_PRESET = "legacy"  # the source script's experiment: what `--preset` starts from


def get_preset(name: str) -> Config:
    """Returns the configuration of preset `name`; raises `ConfigError` listing the presets."""
    return PRESETS[check_choice("preset", name, tuple(PRESETS))].config
