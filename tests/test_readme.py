"""Every Python block of README.md runs as written in a fresh interpreter and prints what its
comments show.

The convention the README follows: a line `print(...)  # TEXT` must print the line TEXT; comment
lines right below it that start with `#   ` (three spaces) continue a multi-line output. Every line
the block prints must be shown this way, in order.
"""

import os
import pathlib
import re
import subprocess
import sys

import pytest

from conftest import FAST_XLA_FLAG

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
_PRINT = re.compile(r"^\s*print\(.*\)\s+# (.*)$")
_CONTINUED = re.compile(r"^\s*#   (.*)$")


def python_blocks() -> list[str]:
    return _BLOCK.findall(README.read_text(encoding="utf-8"))


def expected_output(block: str) -> list[str]:
    """The printed lines the block's comments promise, in order."""
    lines = block.splitlines()
    expected = []
    for i, line in enumerate(lines):
        match = _PRINT.match(line)
        if not match:
            continue
        expected.append(match.group(1).rstrip())
        for follow in lines[i + 1 :]:
            more = _CONTINUED.match(follow)
            if not more:
                break
            expected.append(more.group(1).rstrip())
    return expected


def test_readme_has_blocks():
    blocks = python_blocks()
    assert len(blocks) >= 6, "README.md lost its examples"
    assert all(expected_output(block) for block in blocks), "a block shows no output"


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_block_runs_and_prints_what_it_shows(index, tmp_path):
    block = python_blocks()[index]
    env = {**os.environ, "PYTHONHASHSEED": "0", "MPLBACKEND": "Agg"}
    env.pop("JAX_ENABLE_X64", None)
    # JAX's default compiler settings, as a reader runs the block (conftest.py speeds up the
    # in-process tests' compilation).
    env["XLA_FLAGS"] = env.get("XLA_FLAGS", "").replace(FAST_XLA_FLAG, "").strip()
    if not env["XLA_FLAGS"]:  # unset, not empty: an empty XLA_FLAGS is not XLA's default
        del env["XLA_FLAGS"]
    env.pop("JAX_DISABLE_MOST_OPTIMIZATIONS", None)
    # The numbers shown are the CPU's (and the many-device block's 8 devices simulated CPUs).
    env["JAX_PLATFORMS"] = "cpu"
    done = subprocess.run(
        [sys.executable, "-c", block],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=240,
    )
    assert done.returncode == 0, f"block {index} failed:\n{block}\n--- stderr ---\n{done.stderr}"
    printed = [line.rstrip() for line in done.stdout.splitlines()]
    assert printed == expected_output(block), f"block {index} printed:\n{done.stdout}"
