"""Every Python block of README.md runs as written in a fresh interpreter (a child forked from a
process that has only imported jax, numpy, optax and jaxloss) and prints what its comments show.

The convention the README follows: a line `print(...)  # TEXT` must print the line TEXT; comment
lines right below it that start with `#   ` (three spaces) continue a multi-line output. Every line
the block prints must be shown this way, in order.
"""

import json
import os
import pathlib
import re
import select
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


BLOCK_TIMEOUT = 240  # seconds

# A fresh interpreter per block, minus the second and a half each would spend importing JAX:
# one process imports what the blocks import (computing nothing, so no JAX backend has started)
# and forks a child per block, which runs it as `python -c` would and exits.
_FORKSERVER = r"""
import builtins, json, os, sys, traceback
import jax, jax.numpy, numpy, optax, jaxloss
print("ready", flush=True)
for line in sys.stdin:
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:
        sys.stdin.close()
        os.chdir(job["cwd"])
        for fd, path in ((1, job["stdout"]), (2, job["stderr"])):
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
        code = 0
        try:
            namespace = {"__name__": "__main__", "__builtins__": builtins}
            exec(compile(job["code"], "<string>", "exec"), namespace)
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    print(json.dumps(os.waitstatus_to_exitcode(status)), flush=True)
"""


@pytest.fixture(scope="module")
def forkserver():
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
    server = subprocess.Popen(
        [sys.executable, "-c", _FORKSERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert server.stdout.readline().strip() == "ready"
    yield server
    server.stdin.close()
    server.wait(timeout=60)


def run_block(server, block, folder):
    """Run `block` in a child of the fork server, in `folder`: (exit code, stdout, stderr)."""
    out, err = folder / "stdout.txt", folder / "stderr.txt"
    job = {"code": block, "cwd": str(folder), "stdout": str(out), "stderr": str(err)}
    server.stdin.write(json.dumps(job) + "\n")
    server.stdin.flush()
    if not select.select([server.stdout], [], [], BLOCK_TIMEOUT)[0]:
        server.kill()
        pytest.fail(f"the block ran for more than {BLOCK_TIMEOUT} s:\n{block}")
    code = json.loads(server.stdout.readline())
    return code, out.read_text(), err.read_text()


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_block_runs_and_prints_what_it_shows(index, tmp_path, forkserver):
    block = python_blocks()[index]
    code, stdout, stderr = run_block(forkserver, block, tmp_path)
    assert code == 0, f"block {index} failed:\n{block}\n--- stderr ---\n{stderr}"
    printed = [line.rstrip() for line in stdout.splitlines()]
    assert printed == expected_output(block), f"block {index} printed:\n{stdout}"
