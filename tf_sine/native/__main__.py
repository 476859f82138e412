"""`python -m tf_sine.native [--force | --info | --check]`: build and inspect the compiled kernels.

    python -m tf_sine.native          # build them unless a record is kept (make install does)
    python -m tf_sine.native --force  # climb the flag ladder again, even after a failure
    python -m tf_sine.native --info   # compiler, flags, CPU, library, self-test, families loaded
    python -m tf_sine.native --check  # self-test the cached library again; exit 1 with the reason

Exit status 0 when a self-tested library is available, 1 with the reason when none could be
built (training then uses TensorFlow's BlockLSTM kernel for LSTM layers, Keras's layers for the
others), 2 for an unknown option.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import warnings

from tf_sine import native
from tf_sine.native.build import BuildRecord, compiler_description, cpu_model, run_selftest


def _info(record: BuildRecord | None) -> None:
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", native.NativeKernelsWarning)  # the status row says it
        ops = native.load()
    record = record or native.read_record()
    rows = {
        "status": _status(record),
        "library": record.library if record and record.ok else "none",
        "record": str(native.record_path(native.library_path())),
        "flags": shlex.join(record.flags) if record and record.flags else "none",
        "compiler": compiler_description(),
        "cpu": f"{cpu_model()} ({record.machine if record else 'unknown'})",
        "tensorflow": tf.__version__,
        "families loaded": ", ".join(native.families(ops)) if ops is not None else "none",
    }
    for attempt in record.attempts if record else ():
        detail = f": {attempt.detail}" if attempt.detail else ""
        rows[f"tried {shlex.join(attempt.flags) or 'default flags'}"] = (
            f"{attempt.outcome} ({attempt.seconds} s){detail}"
        )
    width = max(map(len, rows))
    for name, value in rows.items():
        print(f"{name + ':':<{width + 1}} {value}")


def _status(record: BuildRecord | None) -> str:
    if record is None:
        return "not built"
    if not record.ok:
        return f"failed ({record.when}): {record.reason}"
    test = record.selftest or {}
    return (f"built and self-tested ({record.when}; {test.get('cases')} cases, largest difference from the "
            f"reference {test.get('max_error', float('nan')):.2g})")  # fmt: skip


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tf_sine.native", description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--force", action="store_true", help="climb the flag ladder again, even after a failure"
    )
    group.add_argument("--info", action="store_true", help="report the compiler, flags, CPU and library")
    group.add_argument("--check", action="store_true", help="self-test the cached library again")
    args = parser.parse_args(argv)
    if not native.enabled():
        print("tf_sine.native: TF_SINE_NATIVE=0 turns the native kernels off; nothing built or loaded")
        return 1 if args.check else 0
    from tf_sine.startup import start_tensorflow

    start_tensorflow()
    record = native.build(force=args.force, announce=native.announce)
    if args.info:
        _info(record)
    if not record.ok:
        print(f"tf_sine.native: not built: {record.reason}; training uses TensorFlow's own kernels",
              file=sys.stderr)  # fmt: skip
        return 1
    if args.check:
        summary = run_selftest(native.library_path())
        if not summary["passed"]:
            print(
                f"tf_sine.native: the cached library fails its self-test: {summary['failure']}",
                file=sys.stderr,
            )
            return 1
        print(f"tf_sine.native: {record.library} passes its self-test ({summary['cases']} cases)")
    elif not args.info:
        print(record.library)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
