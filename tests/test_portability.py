"""The native kernels compile for other CPUs than this one (compile only, nothing runs).

Marked `portability` (a minute or two of compiling): `make test-portability`, which `.ci/run`
runs.
"""

import functools
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from tf_sine import native

pytestmark = [
    pytest.mark.portability,
    pytest.mark.skipif(shutil.which(native._compiler()[0]) is None, reason="no C++ compiler"),
]

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
    done = subprocess.run([*native._compiler(), *flags, "-E", "-x", "c++", "/dev/null"], capture_output=True)
    return done.returncode == 0


def _compile(target: str, directory) -> subprocess.CompletedProcess:
    march = next(flags for flags in TARGETS[target] if _known(flags))
    command = native._compile_command(directory / f"{target}.o")
    command = [part for part in command if part != "-shared" and not part.startswith(("-L", "-l"))]
    command = [flag for part in command for flag in (march if part == "-march=native" else [part])]
    return subprocess.run([*command, "-c"], capture_output=True, text=True)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """Every target compiled once, two at a time (the tests read the results)."""
    directory = tmp_path_factory.mktemp("portability")
    with ThreadPoolExecutor(2) as pool:
        results = pool.map(functools.partial(_compile, directory=directory), TARGETS)
        return dict(zip(TARGETS, results, strict=True))


@pytest.mark.parametrize(
    "target",
    [
        pytest.param(
            "sapphirerapids",
            marks=pytest.mark.xfail(
                strict=True, reason="TensorFlow's Eigen fails to compile with AVX512-FP16 (PacketMathFP16.h)"
            ),
        ),
        *list(TARGETS)[1:],
    ],
)
def test_the_kernels_compile_for(compiled, target):
    done = compiled[target]
    assert done.returncode == 0, done.stderr[-2000:]
