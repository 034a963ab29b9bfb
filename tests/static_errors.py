"""The shared shape of the loss modules' static-error tests (imported by tests/test_*.py)."""

import functools

import jax
import pytest


def assert_raises_eager_and_jitted(fn, args, kwargs, exc, match, *, jitted=True):
    """`fn(*args, **kwargs)` raises `exc` matching `match`, and (with `jitted`) so does its
    `jax.jit` at trace time, the keyword arguments closed over as static values."""
    with pytest.raises(exc, match=match):
        fn(*args, **kwargs)
    if jitted:
        with pytest.raises(exc, match=match):
            jax.jit(functools.partial(fn, **kwargs))(*args)
