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
    """One compiled program: per-list values and the mean's value and gradient, ours and optax's,
    vmapped over five configurations of 32 random lists: masked and weighted (two lists empty),
    plain, a -inf score at every label-0 first item (optax NaN), everything masked with a NaN
    behind the mask (0, zero gradient), a negative label (NaN; optax a number). Values against
    NumPy, also for jnp.sum, a custom reduce_fn and vmap over lists; then un-jitted bf16."""
    s = RNG.normal(size=(32, 10)).astype(np.float32)
    y = RNG.integers(0, 5, size=(32, 10)).astype(np.float32)
    y[:, 0] = 0
    w = RNG.uniform(0.1, 2.0, size=(32, 10)).astype(np.float32)
    mask = RNG.random((32, 10)) < 0.7
    mask[[3, 17]] = False
    ones, nothing = np.ones_like(mask), np.zeros_like(mask)
    s_inf, s_nan, y_neg = s.copy(), s.copy(), y.copy()
    s_inf[:, 0] = -np.inf
    s_nan[0, 0] = np.nan
    y_neg[5, 2] = -1.0
    configs = [
        np.stack(v)
        for v in zip(
            (s, y, mask, w),
            (s, y, ones, ones + 0.0),
            (s_inf, y, ones, ones + 0.0),
            (s_nan, y, nothing, w),
            (s, y_neg, ones, ones + 0.0),
        )
    ]

    def twice_sum(losses, where):
        return 2 * jnp.sum(losses, where=where)

    @jax.jit
    def run(configs):
        res = {}
        for name, fn in (("ours", RANK), ("optax", optax_losses.ranking_softmax_loss)):

            def loss(s, y, m, w, reduce_fn=jnp.mean, fn=fn):
                return fn(s, y, where=m, weights=w, reduce_fn=reduce_fn)

            res[f"{name}_none"] = jax.vmap(lambda *c, fn=fn: loss(*c, None, fn))(*configs)
            res[f"{name}_mean"] = jax.vmap(jax.value_and_grad(loss))(*configs)
        res["vmap"] = jax.vmap(lambda s, y, m, w: RANK(s, y, where=m, weights=w))(s, y, mask, w)
        res["sum"] = RANK(s, y, reduce_fn=jnp.sum)
        res["custom"] = RANK(s, y, where=mask, reduce_fn=twice_sum)
        return res

    res = run(configs)
    (none, (mean, grad)), (o_none, (o_mean, o_grad)) = (
        (res[f"{name}_none"], res[f"{name}_mean"]) for name in ("ours", "optax")
    )
    same = np.array([0, 1, 3])  # where optax is right
    chex.assert_trees_all_close(
        (none[same], mean[same], grad[same]),
        (o_none[same], o_mean[same], o_grad[same]),
        rtol=1e-5,
        atol=1e-6,
    )
    s64, y64, w64 = (v.astype(np.float64) for v in (s, y, w))
    plain, masked = np_ranking(s64, y64), np_ranking(s64, y64, mask, w64)
    np.testing.assert_allclose(none[0], masked, rtol=1e-5)
    np.testing.assert_allclose(none[1], plain, rtol=1e-5)
    np.testing.assert_allclose(mean[0], masked.sum() / 30, rtol=1e-5)
    np.testing.assert_allclose(res["sum"], plain.sum(), rtol=1e-5)
    np.testing.assert_allclose(res["vmap"], masked, rtol=1e-5)
    np.testing.assert_allclose(res["custom"], 2 * np_ranking(s64, y64, mask).sum(), rtol=1e-5)
    # -inf scores of irrelevant items: the limit (the lists without them), zero gradient there.
    np.testing.assert_allclose(none[2], np_ranking(s64[:, 1:], y64[:, 1:]), rtol=1e-5)
    chex.assert_tree_all_finite((mean[2], grad[2]))
    assert not np.any(grad[2][:, 0])
    assert np.isnan(o_none[2]).all()
    # Everything masked: 0 with a zero gradient (optax too).
    assert mean[3] == 0 and not np.any(none[3]) and not np.any(grad[3])
    # A negative label: NaN for its list and the mean; optax computes numbers.
    np.testing.assert_array_equal(np.isnan(none[4]), np.arange(32) == 5)
    assert np.isnan(mean[4]) and np.isfinite(o_mean[4])
    # Un-jitted: bf16 is computed in float32 (the compiled core of float32 input; the doctest's
    # shapes and options, so the compilation is shared).
    half, y23 = s[:2, :3].astype(jnp.bfloat16), y[:2, :3]
    got = RANK(half, y23, reduce_fn=None)
    assert got.dtype == jnp.float32
    np.testing.assert_array_equal(got, RANK(half.astype(np.float32), y23, reduce_fn=None))


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
