"""Compiling the kernel library for this machine: a ladder of flag sets, a self-test, a record.

`build()` tries the flag sets of `ladder()` in order: `-march=native`; native with the
instruction-set extensions that TensorFlow's bundled Eigen cannot compile under turned off
(`EIGEN_UNSUPPORTED`, where native turns one on); then portable baselines for the architecture.
`TF_SINE_NATIVE_MARCH` names another target instead of native (`target_flags()`): that target is
built, with those extensions off if need be, or nothing is.
The first library that compiles and passes the numerical self-test (`tf_sine.native.selftest`,
in a process of its own) is moved into the cache under its final name. The outcome is written
to a `BuildRecord` (JSON) beside it, keyed like the library, so that a failed ladder is not
climbed again by every command: `build(force=True)` climbs it anew. A failure that may not
happen again (a timeout, a killed compiler, a full disk) is reported but not recorded.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import functools
import hashlib
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tf_sine.errors import ConfigError

SOURCE = Path(__file__).with_name("rnn_ops.cc")
HEADERS = tuple(sorted(Path(__file__).parent.glob("*.h")))  # included by SOURCE
BASE_OPTIONS = ("-O3", "-fPIC", "-w")
# Instruction-set extensions that TensorFlow's bundled Eigen headers do not compile under, each
# with the macro a compiler defines when a -march turns it on. avx512fp16: Eigen's
# arch/AVX512/PacketMathFP16.h fails with gcc 12 ("expected initializer before '<' token");
# -march=native turns it on on Sapphire Rapids and later Xeons.
EIGEN_UNSUPPORTED = {"avx512fp16": "__AVX512FP16__"}
NATIVE = ("-march=native",)
TARGET_VARIABLE = "TF_SINE_NATIVE_MARCH"  # another target than NATIVE (`target_flags`)
# Portable baselines per architecture (platform.machine()), tried after native, best first.
PORTABLE = {
    "x86_64": ("-march=x86-64-v3", "-march=x86-64-v2"),
    "aarch64": ("-march=armv8-a",),
    "arm64": ("-march=armv8-a",),
}
# Generous bounds for a busy machine: a compile takes well under a minute, the self-test seconds.
COMPILE_TIMEOUT = 900
SELFTEST_TIMEOUT = 300
_LASTING = ("self-test failed", "compile failed", "no compiler")  # another try would repeat these


class CacheError(RuntimeError):
    """The cache directory cannot be created or written."""


class TargetError(ConfigError):
    """`TF_SINE_NATIVE_MARCH` holds something other than compiler target options."""


@dataclasses.dataclass(frozen=True)
class Attempt:
    """One rung of the ladder, as tried.

    Attributes:
        flags: the rung's flags, beyond `BASE_OPTIONS` and TensorFlow's own.
        outcome: ``"built"``, ``"compile failed"``, ``"self-test failed"``, ``"no compiler"``,
            or ``"interrupted"`` (a timeout, a killed compiler, a full disk: may not recur).
        detail: the compiler's last lines, or the self-test's failure.
        seconds: how long the rung took, compile and self-test.
    """

    flags: tuple[str, ...]
    outcome: str
    detail: str = ""
    seconds: float = 0.0


@dataclasses.dataclass(frozen=True)
class BuildRecord:
    """What a build of the library produced, kept as JSON beside it (`record_path`).

    Attributes:
        status: ``"built"`` (a library that passed the self-test) or ``"failed"``.
        compiler: the compiler command and the first line of its ``--version``.
        cpu, machine: this CPU's model name and architecture.
        tensorflow: the TensorFlow version built against.
        attempts: every rung tried, in order.
        when: the build's date and time (ISO 8601, UTC).
        library: the library file, when built.
        sha256: the library file's digest, when built (a changed file is not loaded).
        flags: every compiler option beyond TensorFlow's own, when built.
        selftest: the self-test's summary (`tf_sine.native.selftest`), when built.
        reason: why nothing was built, when failed.
    """

    status: str
    compiler: str
    cpu: str
    machine: str
    tensorflow: str
    attempts: tuple[Attempt, ...]
    when: str
    library: str | None = None
    sha256: str | None = None
    flags: tuple[str, ...] | None = None
    selftest: dict[str, Any] | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        """Whether a self-tested library was built."""
        return self.status == "built"

    @property
    def recurs(self) -> bool:
        """Whether another climb would fail the same way (what is worth recording)."""
        return self.ok or all(attempt.outcome in _LASTING for attempt in self.attempts)

    def to_json(self) -> str:
        """The record as JSON text (what `from_json` reads)."""
        return json.dumps(dataclasses.asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> BuildRecord:
        """Parses `to_json`'s text.

        Raises:
            ValueError: not a record (bad JSON, a missing or ill-typed field).
        """
        try:
            fields = json.loads(text)
            fields["attempts"] = tuple(
                Attempt(**{**a, "flags": tuple(a["flags"])}) for a in fields["attempts"]
            )
            if fields.get("flags") is not None:
                fields["flags"] = tuple(fields["flags"])
            record = cls(**fields)
        except (TypeError, KeyError, AttributeError) as error:
            raise ValueError(f"not a build record: {error}") from None
        built = record.status == "built" and all(
            isinstance(value, str) for value in (record.library, record.sha256)
        ) and isinstance(record.selftest, dict)  # fmt: skip
        if not (built or (record.status == "failed" and isinstance(record.reason, str))):
            raise ValueError("not a build record: inconsistent status")
        return record


def compiler() -> list[str]:
    """The C++ compiler command: `$CXX`, else ``c++``."""
    return shlex.split(os.environ.get("CXX") or "c++") or ["c++"]


@functools.cache
def _compiler_version(command: tuple[str, ...]) -> str | None:
    try:
        done = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if done.returncode == 0 and lines else None


def compiler_available() -> bool:
    """Whether the C++ compiler runs at all (``--version``)."""
    return _compiler_version(tuple(compiler())) is not None


def compiler_description() -> str:
    """``c++ (g++ (Debian 12.2.0-14) 12.2.0)``, or the command and ``not found``."""
    command = tuple(compiler())
    return f"{shlex.join(command)} ({_compiler_version(command) or 'not found'})"


def cpu_model() -> str:
    """This CPU's model name (`/proc/cpuinfo`), else what `platform` knows."""
    for line in _cpuinfo():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def _cpu_signature() -> str:
    """What `-march=native` depends on: the CPU's model and feature flags."""
    wanted = [line for line in _cpuinfo() if line.startswith(("model name", "flags", "Features"))][:2]
    return "\n".join([platform.machine(), platform.processor(), *wanted])


def _predefined_macros(flags: Sequence[str]) -> str:
    """The compiler's predefined macros under `flags` (empty when it refuses them)."""
    try:
        done = subprocess.run([*compiler(), *flags, "-dM", "-E", "-x", "c++", os.devnull],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout if done.returncode == 0 else ""


def target_flags() -> tuple[str, ...]:
    """The flags naming the CPU to compile for.

    Returns:
        `$TF_SINE_NATIVE_MARCH` split at spaces (say ``-march=x86-64-v3``, to run an AVX2
        machine's code on this one), else ``-march=native``.

    Raises:
        TargetError: a word of the variable is not a target option (``-m...``).
    """
    words = os.environ.get(TARGET_VARIABLE, "").split()
    strays = [word for word in words if not word.startswith("-m")]
    if strays:
        raise TargetError(TARGET_VARIABLE, "expected compiler target options such as -march=x86-64-v3, "
                          f"got {strays[0]!r}")  # fmt: skip
    return tuple(words) or NATIVE


def ladder(march: Sequence[str] | None = None) -> list[tuple[str, ...]]:
    """The flag sets `build` tries, in order (see the module docstring).

    Args:
        march: the flags that name the target CPU (default `target_flags()`): `-march=native`
            for this machine, another CPU's to compile for it. Only native is followed by the
            portable baselines: a target chosen by name is built as asked or not at all.
    """
    march = tuple(target_flags() if march is None else march)
    rungs = [march]
    macros = _predefined_macros(march)
    unsupported = [name for name, macro in EIGEN_UNSUPPORTED.items() if f"#define {macro} " in macros]
    if unsupported:
        rungs.append((*march, *(f"-mno-{extension}" for extension in unsupported)))
    if march == NATIVE:
        baselines = PORTABLE.get(platform.machine())
        rungs += [(flag,) for flag in baselines] if baselines else [()]  # (): the compiler's default target
    return rungs


def compile_command(output: Path, flags: Sequence[str], compile_only: bool = False) -> list[str]:
    """The compiler's command line writing the library (or, `compile_only`, an object file)."""
    import tensorflow as tf

    link = ["-c"] if compile_only else ["-shared"]
    libraries = [] if compile_only else tf.sysconfig.get_link_flags()
    return [*compiler(), *BASE_OPTIONS, *flags, *link, str(SOURCE), "-o", str(output),
            *tf.sysconfig.get_compile_flags(), *libraries]  # fmt: skip


def library_path(target: Sequence[str] | None = None) -> Path:
    """The library file for this source, TensorFlow build, compiler, build code, CPU and target.

    Args:
        target: the flags naming the target CPU (default `target_flags()`).

    Raises:
        TargetError: `TF_SINE_NATIVE_MARCH` is malformed (where `target` is not given).
    """
    import tensorflow as tf

    from tf_sine.native import cache_dir, selftest

    key = hashlib.sha256()
    tensorflow = [tf.__version__, tf.__git_version__, *tf.sysconfig.get_compile_flags(),
                  *tf.sysconfig.get_link_flags()]  # fmt: skip
    code = [
        SOURCE.read_bytes(),
        *(header.read_bytes() for header in HEADERS),
        Path(__file__).read_bytes(),
        Path(selftest.__file__).read_bytes(),
    ]
    machine = [
        "\n".join(tensorflow).encode(),
        compiler_description().encode(),
        _cpu_signature().encode(),
        " ".join(target_flags() if target is None else target).encode(),
    ]
    parts = [*code, *machine]
    for part in parts:
        key.update(part)
        key.update(b"\0")
    return cache_dir() / f"rnn_ops-{key.hexdigest()[:16]}.so"


def record_path(library: Path) -> Path:
    """The `BuildRecord` beside `library`."""
    return library.with_suffix(".json")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_record(library: Path | None = None) -> BuildRecord | None:
    """The record of the last build for this machine, or None: never built, unreadable, or
    built but its library is gone or is no longer the file that passed the self-test.

    Raises:
        TargetError: `TF_SINE_NATIVE_MARCH` is malformed (where `library` is not given).
    """
    library = library or library_path()
    try:
        record = BuildRecord.from_json(record_path(library).read_text())
        if record.ok and (record.library != str(library) or _digest(library) != record.sha256):
            return None
    except (OSError, ValueError):
        return None
    return record


def build(force: bool = False, announce: Callable[[str], None] | None = None) -> BuildRecord:
    """The build record for this machine, climbing the ladder unless one is kept (or `force`).

    Concurrent builds (several workers starting at once) wait on a lock file and the first one
    builds; the library and its record appear under their final names only when complete.

    Args:
        force: climb the ladder even when a record (built or failed) is kept.
        announce: receives a one-line note when compiling starts, or when waiting for another
            process's build.

    Returns:
        The kept or new record; a failure that may not recur is returned but not kept.

    Raises:
        CacheError: the cache directory cannot be created or written.
        TargetError: `TF_SINE_NATIVE_MARCH` is malformed.
    """
    target = target_flags()  # read once: the key and the ladder must agree
    library = library_path(target)
    record = None if force else read_record(library)
    if record is not None:
        return record  # no lock needed: records and libraries appear whole, by rename
    try:
        library.parent.mkdir(parents=True, exist_ok=True)
        lock = open(library.with_suffix(".lock"), "w")  # noqa: SIM115 (held across the build)
    except OSError as error:
        raise CacheError(f"cannot write the cache directory {library.parent} ({error.strerror}); "
                         "set TF_SINE_CACHE to a writable one") from None  # fmt: skip
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if announce is not None:
                announce(f"waiting for another process building the native kernels in {library.parent}")
            fcntl.flock(lock, fcntl.LOCK_EX)
        record = None if force else read_record(library)  # the other process's build
        if record is not None:
            return record
        if announce is not None and compiler_available():
            named = "this machine" if target == NATIVE else shlex.join(target)
            announce(
                f"compiling the native recurrent kernels for {named} into {library.parent} (usually "
                "under a minute; the outcome is kept for this CPU, compiler and TensorFlow)"
            )
        record = _climb(library, target)
        if record.recurs:
            _write_atomically(record_path(library), record.to_json())
    return record


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        partial.write_text(text)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _climb(library: Path, target: Sequence[str]) -> BuildRecord:
    """Tries each rung of `ladder(target)`; the first library that passes the self-test becomes `library`."""
    import tensorflow as tf

    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    facts = dict(compiler=compiler_description(), cpu=cpu_model(), machine=platform.machine(),
                 tensorflow=tf.__version__, when=when)  # fmt: skip
    if not compiler_available():
        attempt = Attempt((), "no compiler", f"no C++ compiler ({compiler()[0]} --version does not run)")
        return BuildRecord("failed", attempts=(attempt,), reason=attempt.detail, **facts)
    attempts: list[Attempt] = []
    partial = library.with_suffix(f".{os.getpid()}.tmp.so")
    try:
        for flags in ladder(target):
            started = time.perf_counter()
            attempt, summary = _try(flags, partial)
            attempts.append(dataclasses.replace(attempt, seconds=round(time.perf_counter() - started, 1)))
            if attempt.outcome == "built":
                digest = _digest(partial)
                os.replace(partial, library)
                return BuildRecord("built", attempts=tuple(attempts), library=str(library), sha256=digest,
                                   flags=(*BASE_OPTIONS, *flags), selftest=summary, **facts)  # fmt: skip
    finally:
        partial.unlink(missing_ok=True)
    return BuildRecord("failed", attempts=tuple(attempts), reason=_reason(attempts), **facts)


def _try(flags: tuple[str, ...], output: Path) -> tuple[Attempt, dict[str, Any] | None]:
    """Compiles with `flags` into `output` and self-tests the result."""
    name = compiler()[0]
    try:
        done = subprocess.run(compile_command(output, flags), capture_output=True, text=True,
                              timeout=COMPILE_TIMEOUT)  # fmt: skip
    except subprocess.TimeoutExpired:
        return Attempt(flags, "interrupted", f"{name} did not finish in {COMPILE_TIMEOUT} s"), None
    except OSError as error:
        outcome = "interrupted" if error.errno == errno.ENOSPC else "no compiler"
        return Attempt(flags, outcome, f"cannot run the C++ compiler ({name}): {error.strerror}"), None
    if done.returncode:
        output_text = (done.stderr or done.stdout).strip()
        tail = " | ".join(output_text.splitlines()[-3:])
        # Killed (out of memory, say) or out of disk space: another try may well succeed.
        transient = done.returncode < 0 or "No space left on device" in output_text
        status = (
            "killed by " + _signal_name(-done.returncode)
            if done.returncode < 0
            else f"status {done.returncode}"
        )
        return Attempt(
            flags, "interrupted" if transient else "compile failed", f"{name} exited with {status}: {tail}"
        ), None
    summary = run_selftest(output)
    if summary.get("interrupted"):
        return Attempt(flags, "interrupted", summary["failure"]), None
    if not summary["passed"]:
        return Attempt(flags, "self-test failed", summary["failure"]), None
    return Attempt(flags, "built"), summary


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def run_selftest(library: Path) -> dict[str, Any]:
    """`tf_sine.native.selftest` on `library` in a fresh process; its summary (see there), with
    ``"interrupted": True`` where it timed out (on a busy machine another try may pass)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    command = [sys.executable, "-m", "tf_sine.native.selftest", str(library)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=SELFTEST_TIMEOUT)
    except subprocess.TimeoutExpired:
        return {"passed": False, "interrupted": True,
                "failure": f"the self-test did not finish in {SELFTEST_TIMEOUT} s"}  # fmt: skip
    if done.returncode < 0:
        name = _signal_name(-done.returncode)
        hint = " (an instruction this CPU lacks)" if name == "SIGILL" else ""
        return {"passed": False, "failure": f"the self-test was killed by {name}{hint}"}
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"passed": False, "failure": f"the self-test exited with status {done.returncode}: {last}"}


def _reason(attempts: list[Attempt]) -> str:
    """One line saying why no rung built: the detail, once when every rung failed alike."""
    details = [attempt.detail for attempt in attempts]
    if len(set(details)) == 1:
        return details[0] + (f" (with each of {len(details)} flag sets)" if len(details) > 1 else "")
    return "; ".join(
        f"{shlex.join(attempt.flags) or 'default flags'}: {attempt.detail}" for attempt in attempts
    )
