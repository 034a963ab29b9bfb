"""Test configuration for `tests/` and the docstring examples in `jaxloss/` (doctests).

JAX's default float32 mode, as users run it; rank promotion raises, so (N,) vs (N, 1) bugs fail.

Tests that need float64 (a reference where float32 roundoff would hide the truth) are marked
`@pytest.mark.x64` (or take the `x64` fixture) and run with `jax_enable_x64` on for their duration.

Compilation is most of the suite's time, so in-process tests compile with XLA:CPU's older
elemental emitters (`--xla_cpu_use_fusion_emitters=false`) and most XLA optimisations off: half
the CPU time, same semantics (tests compare against references with tolerances, and bit-for-bit
tests compare two programs built the same way). What users see is still checked as they run it:
the README blocks run in fresh interpreters with JAX's default settings, and tests about the
optimised build turn optimisations back on. `JAXLOSS_TEST_DEFAULT_XLA=1` runs everything with the
defaults.
"""

import os

FAST_COMPILE = os.environ.get("JAXLOSS_TEST_DEFAULT_XLA") != "1"
FAST_XLA_FLAG = "--xla_cpu_use_fusion_emitters=false"
if FAST_COMPILE:  # read when the CPU backend starts: before any JAX computation
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_XLA_FLAG}".strip()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import pytest  # noqa: E402

import jaxloss  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")

# tests/multidevice/ needs 8 devices, fixed when JAX starts: tests/test_multidevice.py runs it in a
# pytest session of its own with 8 simulated CPU devices and this variable set.
MULTIDEVICE_SESSION = "JAXLOSS_MULTIDEVICE_SESSION"
collect_ignore = [] if os.environ.get(MULTIDEVICE_SESSION) == "1" else ["tests/multidevice"]
jax.config.update("jax_disable_most_optimizations", FAST_COMPILE)


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: one worker per core, at most 4 (each holds its own JAX and compilations)."""
    return max(1, min(os.cpu_count() or 1, 4))


# The files that take longest (subprocesses: the 8-device session, the README blocks, the
# benchmark runs) start first, so that xdist's workers (one file each at a time) end together.
SLOWEST_FIRST = ("test_multidevice.py", "test_readme.py", "test_benchmarks.py")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        name = item.path.name
        return SLOWEST_FIRST.index(name) if name in SLOWEST_FIRST else len(SLOWEST_FIRST)

    items.sort(key=rank)  # stable: the order within a file is kept


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "x64: run with jax_enable_x64 on (float64 references and inputs)"
    )


@pytest.fixture(autouse=True)
def _docstring_examples_optimised(request):
    """Docstring examples show what a user's call prints: compiled with optimisations on."""
    if not FAST_COMPILE or not isinstance(request.node, pytest.DoctestItem):
        yield
        return
    jax.config.update("jax_disable_most_optimizations", False)
    try:
        yield
    finally:
        jax.config.update("jax_disable_most_optimizations", True)


@pytest.fixture(autouse=True)
def _x64_when_marked(request):
    if request.node.get_closest_marker("x64") is None:
        yield
        return
    with jax.enable_x64(True):
        yield


@pytest.fixture
def x64():
    """x64 on inside one test (for a test that needs it only in part, use `jax.enable_x64`)."""
    with jax.enable_x64(True):
        yield


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace):
    """Docstring examples see the names a user has after the usual imports, and start from
    NumPy's default print options (an example that sets a precision does not leak it)."""
    doctest_namespace.update(jax=jax, jnp=jnp, np=np, optax=optax, jaxloss=jaxloss)
    options = np.get_printoptions()
    yield
    np.set_printoptions(**options)
