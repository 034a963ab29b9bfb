"""Test configuration for `tests/` and the docstring examples in `jaxloss/` (doctests).

JAX's default float32 mode, as users run it; rank promotion raises, so (N,) vs (N, 1) bugs fail.

Tests that need float64 (a reference where float32 roundoff would hide the truth) are marked
`@pytest.mark.x64` (or take the `x64` fixture) and run with `jax_enable_x64` on for their duration.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxloss

jax.config.update("jax_numpy_rank_promotion", "raise")


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: one worker per core, at most 4 (each holds its own JAX and compilations)."""
    return max(1, min(os.cpu_count() or 1, 4))


def pytest_collection_modifyitems(config, items):
    """`--dist loadgroup`: a test file's tests share one worker (and its module fixtures and
    compilations), except the README blocks: each runs in its own interpreter, so they spread
    over the workers instead of queueing on one."""
    for item in items:
        if item.path.name != "test_readme.py":
            item.add_marker(pytest.mark.xdist_group(item.path.name))


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "x64: run with jax_enable_x64 on (float64 references and inputs)"
    )


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
