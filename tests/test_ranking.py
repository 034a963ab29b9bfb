"""ranking_softmax_loss against a NumPy float64 reference and optax: masks, weights, the three
reductions, empty lists, -inf scores, the NaN policy, static errors and half precision. The value
checks run in one compiled program."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify
from optax import losses as optax_losses

import jaxloss

RANK = jaxloss.ranking_softmax_loss
RNG = np.random.default_rng(11)


def np_ranking(s, y, where=None, weights=None):
    """Per-list -sum_i w_i y_i log softmax(s)_i over the valid items (0 for an empty list)."""
    out = []
    for i in range(s.shape[0]):
        ok = np.ones(s.shape[1], bool) if where is None else where[i]
        if not ok.any():
            out.append(0.0)
            continue
        z = s[i][ok]
        lse = z.max() + np.log(np.exp(z - z.max()).sum())
        v = y[i][ok] * (1.0 if weights is None else weights[i][ok])
        out.append(-(v * (z - lse)).sum())
    return np.array(out)


def test_matches_optax_and_numpy():
    """Values and gradients against optax for the three reductions, with and without mask and
    weights (32 random lists, two empty); values against NumPy; vmap over lists; a custom
    reduce_fn; the cases where optax is weak; bf16."""
    s = RNG.normal(size=(32, 10)).astype(np.float32)
    y = RNG.integers(0, 5, size=(32, 10)).astype(np.float32)
    w = RNG.uniform(0.1, 2.0, size=(32, 10)).astype(np.float32)
    mask = RNG.random((32, 10)) < 0.7
    mask[[3, 17]] = False

    def twice_sum(losses, where):
        return 2 * jnp.sum(losses, where=where)

    @jax.jit
    def run(s, y, w, mask):
        res = {}
        for name, fn in (("ours", RANK), ("optax", optax_losses.ranking_softmax_loss)):
            for reduce in ("none", "mean", "sum"):
                reduce_fn = dict(none=None, mean=jnp.mean, sum=jnp.sum)[reduce]
                for masked in (False, True):
                    extra = dict(where=mask, weights=w) if masked else {}

                    def loss(s, fn=fn, reduce_fn=reduce_fn, extra=extra):
                        return jnp.sum(fn(s, y, reduce_fn=reduce_fn, **extra))

                    res[f"{name}_{reduce}_{masked}"] = (
                        fn(s, y, reduce_fn=reduce_fn, **extra),
                        jax.grad(loss)(s),
                    )
        res["vmap"] = jax.vmap(lambda s, y, m, w: RANK(s, y, where=m, weights=w))(s, y, mask, w)
        res["custom"] = RANK(s, y, where=mask, reduce_fn=twice_sum)
        # A -inf score of an irrelevant item (label 0): the limit, where optax gives NaN.
        s_inf = s.at[:, 0].set(-jnp.inf)
        y0 = y.at[:, 0].set(0.0)
        res["inf"] = jax.value_and_grad(RANK)(s_inf, y0)
        res["optax_inf"] = optax_losses.ranking_softmax_loss(s_inf, y0)
        # Everything masked: 0 with a zero gradient, also for NaN scores and labels behind it.
        nothing = jnp.zeros_like(mask)
        res["empty"] = jax.value_and_grad(RANK)(s.at[0, 0].set(jnp.nan), y, where=nothing)
        res["empty_none"] = RANK(s, y, where=nothing, reduce_fn=None)
        # A negative label of a valid item: NaN (optax computes a number).
        res["negative"] = RANK(s, y.at[5, 2].set(-1.0), reduce_fn=None)
        res["optax_negative"] = optax_losses.ranking_softmax_loss(s, y.at[5, 2].set(-1.0))
        res["bf16"] = RANK(s.astype(jnp.bfloat16), y)
        res["bf16_ref"] = RANK(s.astype(jnp.bfloat16).astype(jnp.float32), y)
        return res

    res = run(s, y, w, mask)
    for reduce in ("none", "mean", "sum"):
        for masked in (False, True):
            key = f"{reduce}_{masked}"
            chex.assert_trees_all_close(
                res[f"ours_{key}"], res[f"optax_{key}"], rtol=1e-5, atol=1e-6
            )
    s64, y64, w64 = (v.astype(np.float64) for v in (s, y, w))
    plain, masked = np_ranking(s64, y64), np_ranking(s64, y64, mask, w64)
    np.testing.assert_allclose(res["ours_none_False"][0], plain, rtol=1e-5)
    np.testing.assert_allclose(res["ours_none_True"][0], masked, rtol=1e-5)
    np.testing.assert_allclose(res["ours_mean_True"][0], masked.sum() / 30, rtol=1e-5)
    np.testing.assert_allclose(res["ours_sum_False"][0], plain.sum(), rtol=1e-5)
    np.testing.assert_allclose(res["vmap"], masked, rtol=1e-5)
    np.testing.assert_allclose(res["custom"], 2 * np_ranking(s64, y64, mask).sum(), rtol=1e-5)
    chex.assert_tree_all_finite(res["inf"])
    np.testing.assert_allclose(res["inf"][0], np_ranking(s64[:, 1:], y64[:, 1:]).mean(), rtol=1e-5)
    assert not np.any(res["inf"][1][:, 0])
    assert np.isnan(res["optax_inf"])
    assert res["empty"][0] == 0 and not np.any(res["empty"][1])
    np.testing.assert_array_equal(res["empty_none"], np.zeros(32))
    np.testing.assert_array_equal(np.isnan(res["negative"]), np.arange(32) == 5)
    assert np.isfinite(res["optax_negative"])
    assert res["bf16"].dtype == jnp.float32
    np.testing.assert_array_equal(res["bf16"], res["bf16_ref"])


def test_checked():
    s = np.float32([[1.0, 0.5, -0.5], [0.0, 2.0, 1.0]])
    f = jax.jit(lambda s, y: RANK(s, y))
    with pytest.raises(checkify.JaxRuntimeError, match="`labels` has negative or NaN values"):
        jaxloss.checked(f)(s, np.float32([[1, 0, -1], [0, 1, 0]]))
    with pytest.raises(checkify.JaxRuntimeError, match=r"`logits` contains NaN or \+inf"):
        jaxloss.checked(f)(np.where(s == 2, np.inf, s), np.float32([[1, 0, 0], [0, 1, 0]]))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(labels=np.zeros((2, 4))), ValueError, "`labels` must have the same shape"),
        (dict(logits=np.zeros((2, 3), int)), TypeError, "`logits` must be a floating"),
        (dict(logits=np.float32(1), labels=np.float32(1)), ValueError, "must have a class axis"),
        (dict(logits=np.zeros((2, 0)), labels=np.zeros((2, 0))), ValueError, "at least one"),
        (dict(where=np.ones((2, 3), int)), TypeError, "`where` must be a boolean mask"),
        (dict(where=np.ones(3, bool)), ValueError, r"`where` must have shape \(2, 3\)"),
        (dict(weights=np.ones(3)), ValueError, "`weights` must have the same shape"),
        (dict(reduce_fn="mean"), TypeError, "`reduce_fn` must be jnp.mean"),
    ],
)
def test_static_errors(kwargs, error, match):
    args = dict(logits=np.zeros((2, 3), np.float32), labels=np.zeros((2, 3))) | kwargs
    with pytest.raises(error, match=f"jaxloss.ranking_softmax_loss: .*{match}"):
        RANK(args.pop("logits"), args.pop("labels"), **args)
