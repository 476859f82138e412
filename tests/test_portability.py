"""The native kernels compile for other CPUs than this one (compile only, nothing runs), and
the build's ladder passes over a rung that fails to compile or fails the self-test.

Marked `portability` (two minutes of compiling): `make test-portability`, which `.ci/run` runs.
"""

import functools
import os
import platform
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tf_sine.native import BuildRecord, build, read_record
from tf_sine.native.build import SOURCE, compile_command, compiler, compiler_available, ladder

pytestmark = [
    pytest.mark.portability,
    pytest.mark.skipif(not compiler_available(), reason="no C++ compiler"),
]
x86_only = pytest.mark.skipif(platform.machine() != "x86_64", reason="the targets are x86-64 CPUs")

# Each target as the compiler is told it. A compiler older than the CPU (gcc 12.2 and Zen 4)
# does not know its name; -march=native then spells it as the nearest known CPU plus features.
ZEN4_FEATURES = ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", "avx512ifma", "avx512vbmi",
                 "avx512vbmi2", "avx512vnni", "avx512bitalg", "avx512vpopcntdq", "avx512bf16"]  # fmt: skip
TARGETS = {
    "sapphirerapids": [["-march=sapphirerapids"]],
    "znver4": [["-march=znver4"], ["-march=znver3", *(f"-m{feature}" for feature in ZEN4_FEATURES)]],
    "icelake-server": [["-march=icelake-server"]],
    "x86-64-v2": [["-march=x86-64-v2"]],
}


def _known(flags: list[str]) -> bool:
    done = subprocess.run([*compiler(), *flags, "-E", "-x", "c++", "/dev/null"], capture_output=True)
    return done.returncode == 0


def _climb(target: str, directory) -> list[tuple[tuple[str, ...], subprocess.CompletedProcess]]:
    """The build's ladder for `target`, compile only, up to the first rung that compiles."""
    march = next(flags for flags in TARGETS[target] if _known(flags))
    attempts = []
    for flags in ladder(march):
        command = compile_command(directory / f"{target}.o", flags, compile_only=True)
        attempts.append((flags, subprocess.run(command, capture_output=True, text=True)))
        if attempts[-1][1].returncode == 0:
            break
    return attempts


@pytest.fixture(scope="module")
def climbed(tmp_path_factory):
    """Every target's ladder climbed once, two targets at a time (the tests read the results)."""
    directory = tmp_path_factory.mktemp("portability")
    with ThreadPoolExecutor(2) as pool:
        results = pool.map(functools.partial(_climb, directory=directory), TARGETS)
        return dict(zip(TARGETS, results, strict=True))


@x86_only
@pytest.mark.parametrize("target", TARGETS)
def test_the_kernels_compile_for_the_target_itself(climbed, target):
    """Not for a portable baseline: the target's own instruction set, at most some extension off."""
    flags, done = climbed[target][-1]
    assert done.returncode == 0, done.stderr[-2000:]
    march = next(flags for flags in TARGETS[target] if _known(flags))
    assert flags[: len(march)] == tuple(march)


@x86_only
def test_sapphire_rapids_compiles_with_avx512fp16_off(climbed):
    """The new user's machine: -march=native there turns on AVX512-FP16, which TensorFlow's Eigen
    cannot compile under with this compiler; the second rung turns it off."""
    (first, failed), *rest = climbed["sapphirerapids"]
    if failed.returncode == 0:
        pytest.skip("this compiler builds TensorFlow's Eigen with AVX512-FP16 on: the first rung is enough")
    assert "PacketMathFP16.h" in failed.stderr
    (second, done), *_ = rest
    assert second == (*first, "-mno-avx512fp16") and done.returncode == 0, done.stderr[-2000:]


WRAPPER = """#!{python}
# A C++ compiler for the test: breaks the library of one rung, refuses others, runs c++ otherwise.
import glob, os, shutil, sys
args = sys.argv[1:]
rung = " ".join(arg for arg in args if arg.startswith(("-march=", "-mno-")))
if "-shared" in args and rung == os.environ["TEST_SABOTAGE"]:
    # The sources copied beside each other, the sigmoid of cells.h broken in the copy.
    source = next(arg for arg in args if arg.endswith("rnn_ops.cc"))
    broken_dir = os.environ["TEST_BROKEN_DIR"]
    for file in [source, *glob.glob(os.path.join(os.path.dirname(source), "*.h"))]:
        shutil.copy(file, broken_dir)
    cells = os.path.join(broken_dir, "cells.h")
    text = open(cells).read()
    broken = text.replace("0.5f + 0.5f * (0.5f * z).tanh()", "0.5f + 0.45f * (0.5f * z).tanh()")
    assert broken != text, "the sigmoid this test breaks has changed"
    open(cells, "w").write(broken)
    path = os.path.join(broken_dir, "rnn_ops.cc")
    args = [path if arg == source else arg for arg in args]
elif "-shared" in args and rung in os.environ["TEST_REFUSE"].split("|"):
    sys.exit("error: refused by the test's compiler")
os.execvp("c++", ["c++", *args])
"""


def test_the_ladder_passes_a_broken_library_and_a_failed_compile_for_the_next_rung(tmp_path, monkeypatch):
    """A library that compiles but computes a wrong sigmoid fails the self-test, is deleted and
    never loaded; a rung that does not compile is passed over; the last rung is built."""
    wrapper = tmp_path / "c++"
    wrapper.write_text(WRAPPER.format(python=sys.executable))
    wrapper.chmod(0o755)
    monkeypatch.setenv("TF_SINE_NATIVE", "1")
    monkeypatch.setenv("CXX", str(wrapper))
    monkeypatch.setenv("TF_SINE_CACHE", str(tmp_path / "cache"))
    rungs = ladder()
    assert len(rungs) >= 2, rungs
    # Every rung but the last two refused (whatever this CPU's native rung does), the one before
    # the last broken, the last one built.
    monkeypatch.setenv("TEST_REFUSE", "|".join(" ".join(rung) for rung in rungs[:-2]) or "none")
    monkeypatch.setenv("TEST_SABOTAGE", " ".join(rungs[-2]))
    monkeypatch.setenv("TEST_BROKEN_DIR", str(tmp_path))

    record = build()
    outcomes = [attempt.outcome for attempt in record.attempts]
    assert outcomes == [*["compile failed"] * (len(rungs) - 2), "self-test failed", "built"], record
    assert "off by up to" in record.attempts[-2].detail  # the self-test names what disagreed
    assert record.ok and record.flags[-len(rungs[-1]) :] == rungs[-1] and record == read_record()
    assert [path.name for path in (tmp_path / "cache").glob("*.so")] == [Path(record.library).name]
    check = subprocess.run(
        [sys.executable, "-m", "tf_sine.native", "--check"], capture_output=True, text=True
    )
    assert check.returncode == 0 and "passes its self-test" in check.stdout, check.stderr


@x86_only
def test_the_avx2_build_computes_what_the_native_one_does(tmp_path):
    """The AVX2 machines' library (`x86-64-v3`: products.h's tiles of 8-float vectors), built here
    by asking for that target by name, passes the self-test where it can run: every value and
    gradient, on widths of whole tiles too. The kept record names that target alone."""
    from tf_sine.native import FAMILIES, selftest

    if "avx2" not in Path("/proc/cpuinfo").read_text().split():
        pytest.skip("this CPU cannot run AVX2 code")
    env = dict(
        os.environ, TF_SINE_NATIVE="1", TF_SINE_CACHE=str(tmp_path), TF_SINE_NATIVE_MARCH="-march=x86-64-v3"
    )
    done = subprocess.run([sys.executable, "-m", "tf_sine.native"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "compiling the native recurrent kernels for -march=x86-64-v3 into" in done.stderr
    (record_file,) = tmp_path.glob("rnn_ops-*.json")
    record = BuildRecord.from_json(record_file.read_text())
    planned = len(FAMILIES) * (len(selftest.CASES) + 1) + sum(map(len, selftest.EXTRA_CASES.values()))
    assert record.ok and record.selftest["cases"] == planned, record
    assert [attempt.flags for attempt in record.attempts] == [("-march=x86-64-v3",)]
    assert record.library == done.stdout.strip()


def test_the_kernels_ab_benchmark_builds_and_finds_a_version_equal_to_itself(tmp_path):
    """benchmarks/cells_ab.cc compiles against today's cells.h (with a C++17 compiler, at the
    compiler's default target) and, given today's version as its "old" one too, reports
    outputs equal to the bit and a time for each."""
    import tensorflow as tf

    old = tmp_path / "old_cells"
    old.mkdir()
    for name in ("cells.h", "products.h"):  # renamed as the benchmark's header says
        text = (SOURCE.parent / name).read_text(encoding="utf-8")
        for current, renamed in (
            ("namespace tf_sine", "namespace tf_sine_old"),
            ("TF_SINE_NATIVE_", "TF_SINE_OLD_"),
        ):
            text = text.replace(current, renamed)
        (old / name).write_text(text, encoding="utf-8")
    program = tmp_path / "cells_ab"
    source = Path(__file__).resolve().parents[1] / "benchmarks" / "cells_ab.cc"
    command = [*compiler(), "-O2", "-std=c++17", "-pthread", f"-I{tf.sysconfig.get_include()}",
               f'-DOLD_CELLS="{old / "cells.h"}"', str(source), "-o", str(program)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    ran = subprocess.run([str(program), "3", "2", "10"], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert "states 0, gradients: inputs 0, kernel 0, recurrent kernel 0, bias 0" in ran.stdout, ran.stdout
    assert "2 threads, T=10: median old " in ran.stdout and "new/old" in ran.stdout, ran.stdout


def test_the_fma_peak_benchmark_is_built_for_the_kernels_target(tmp_path, monkeypatch):
    """benchmarks/fma_peak.cc, as benchmarks/engines.py builds and runs it, measures vectors as
    wide as the kernels' target has: 8 floats for `x86-64-v3` (the AVX2 machines'), and a rate."""
    if "avx2" not in Path("/proc/cpuinfo").read_text().split():
        pytest.skip("this CPU cannot run AVX2 code")
    monkeypatch.setenv("TF_SINE_NATIVE_MARCH", "-march=x86-64-v3")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        import engines
    finally:
        sys.path.pop(0)
    assert engines.fma_peak_gflops(tmp_path) > 0
    program = str(tmp_path / "fma_peak")
    rate, lanes, *_ = subprocess.run(
        [program, "1000000"], capture_output=True, text=True, timeout=120, check=True
    ).stdout.split()
    assert float(rate) > 0 and lanes == "8"
    # multiply-adds (binutils' objdump comes with the compiler), not a multiply and an add
    assert "vfmadd" in subprocess.run(["objdump", "-d", program], capture_output=True, text=True).stdout
