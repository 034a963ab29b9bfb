"""The tiny functional models against a NumPy forward pass."""

import chex
import jax
import numpy as np
import pytest

import jaxloss


def test_mlp_apply_works_on_a_batch_and_a_sample():
    init_fn, apply_fn = jaxloss.mlp([3, 5, 2])
    params = init_fn(jax.random.key(0))
    x = np.random.default_rng(1).normal(size=(4, 3))
    chex.assert_trees_all_close(apply_fn(params, x), jax.vmap(apply_fn, (None, 0))(params, x))
    w0, b0, w1, b1 = (np.asarray(params[i][k]) for i in (0, 1) for k in ("w", "b"))
    np.testing.assert_allclose(apply_fn(params, x[0]), np.tanh(x[0] @ w0 + b0) @ w1 + b1, rtol=1e-6)


def test_mlp_rejects_bad_sizes():
    with pytest.raises(ValueError, match=r"jaxloss.mlp: `sizes` must list at least"):
        jaxloss.mlp([3])
