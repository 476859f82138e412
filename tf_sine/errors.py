"""The errors tf_sine raises for a caller's mistake or a bad input, as opposed to a bug of ours.

Every one names the argument at fault (`argument`, in the library's terms: `data`, `model`,
`run_dir`) and says what was expected and what was received (`detail`). They derive from
`ValueError` (or `TypeError`), so code that catches those keeps working. The command line turns
a `TfSineError` into one line naming the flag and exit status 2; any other exception is a bug
of ours: exit status 1, said as such.

    TfSineError
    ├── ConfigError        a configuration value or an argument (ConfigTypeError: its type)
    ├── DataError          a series file or array that cannot be read or used
    ├── RunError           a run directory that cannot be written, resumed or replaced
    └── ModelError         a model file that cannot be loaded, or a model that does not fit

    RunFailedError         not a mistake: the command ran and failed (training diverged, a
                           worker was lost); the CLI exits 1 with its one-line message
"""

from __future__ import annotations


class TfSineError(ValueError):
    """A caller's mistake or a bad input; `argument` names what is at fault.

    Args:
        argument: the argument (library name) at fault, such as ``"data"`` or ``"steps"``.
        detail: what was expected and what was received.
    """

    def __init__(self, argument: str, detail: str):
        super().__init__(f"{argument}: {detail}")
        self.argument = argument
        self.detail = detail


class ConfigError(TfSineError):
    """A bad configuration value or function argument."""


class ConfigTypeError(ConfigError, TypeError):
    """A value of the wrong type (a float where an integer belongs, say)."""


class DataError(TfSineError):
    """A series that cannot be read or used: a missing file, a bad column, too few values."""


class RunError(TfSineError):
    """A run directory that cannot be written, resumed or replaced."""


class ModelError(TfSineError):
    """A model file that cannot be loaded, or a model that does not fit the data or the call."""


class RunFailedError(RuntimeError):
    """The work ran and failed for a reason its message gives (not a caller's mistake, not a bug)."""
