"""KL divergences (probability and log-space targets) and the generalized KL divergence against
torch constants, NumPy float64 references and optax; zero targets, -inf log-predictions,
accuracy near the minimum, axis/where, static errors, NaN policy and half precision.

Every numeric comparison runs in one compiled program (`results`); the docstring examples
(doctests) run each loss un-jitted."""

import contextlib
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.experimental import checkify
from jax.test_util import check_grads
from static_errors import assert_raises_eager_and_jitted

import jaxloss

KL = jaxloss.kl_divergence
KL_LOG = jaxloss.kl_divergence_with_log_targets
GKL = jaxloss.generalized_kl_divergence
INF = np.inf

# ------------------------------------------------------------------ torch constants
# torch 2.13.0+cpu, float64 (/tmp/bench-venv). LP = F.log_softmax(Z, -1) for
# Z = [[1, -.5, .3, 2], [0, 0, 0, 0], [-1.2, 3.1, .4, -.7]].
TORCH_LP = [
    [-1.4902032144153274, -2.9902032144153274, -2.1902032144153276, -0.4902032144153275],
    [-1.3862943611198906, -1.3862943611198906, -1.3862943611198906, -1.3862943611198906],
    [-4.398165049517668, -0.09816504951766822, -2.798165049517668, -3.898165049517668],
]
TORCH_T = [[0.1, 0.2, 0.3, 0.4], [0.7, 0.1, 0.1, 0.1], [0.25, 0.25, 0.25, 0.25]]
# out = F.kl_div(LP, T, reduction="none", log_target=False).sum(-1);
# dLP, dT = torch.autograd.grad(out.sum(), (LP, T)). log_target=True with torch.log(T) gives the
# same out, dLP = -T, and dLT = T * dT.
TORCH_KL = [0.32034898858166005, 0.44584637246456404, 1.4118706883977774]
TORCH_DT = [
    [0.18761812142128198, 2.380765301981227, 1.9862304100893915, 0.5739124825411726],
    [2.0296194171811583, 0.08370926812584512, 0.08370926812584512, 0.08370926812584512],
    [4.011870688397777, -0.2881293116022223, 2.4118706883977774, 3.511870688397777],
]
TORCH_DLT = [
    [0.0187618121421282, 0.47615306039624544, 0.5958691230268174, 0.22956499301646902],
    [1.4207335920268105, 0.008370926812584514, 0.008370926812584514, 0.008370926812584514],
    [1.0029676720994443, -0.07203232790055558, 0.6029676720994444, 0.8779676720994443],
]
# Zero targets, one with log-prediction -inf: the same calls on these inputs give
# out = [nan, 0.1] (log_target=False) and [nan, nan] (log_target=True, lt = torch.log(t)), and a
# NaN gradient at every zero target: dt = [[nan, .98917, 1.08371], [nan, 1.1, nan]].
LP_ZERO = np.array([[-INF, -0.5, -1.0], [-2.0, -0.1, -3.0]])
T_ZERO = np.array([[0.0, 0.6, 0.4], [0.0, 1.0, 0.0]])
TORCH_ZERO_DT = [[np.nan, 0.9891743762340093, 1.083709268125845], [np.nan, 1.1, np.nan]]


# ------------------------------------------------------------------ random inputs, references

RNG = np.random.default_rng(11)
N, C = 64, 5


def _log_softmax(z):
    m = z.max(-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(-1, keepdims=True))


def _padded(lp, t):
    """Rows padded to C classes with (log p, t) = (-inf, 0): a class with p = t = 0, which adds
    exactly 0 here (optax: NaN)."""
    lp, t = np.asarray(lp, np.float64), np.asarray(t, np.float64)
    pad = ((0, 0), (0, C - lp.shape[1]))
    return np.pad(lp, pad, constant_values=-INF), np.pad(t, pad)


# KL inputs: torch's rows, the zero-target rows, then random ones with 20% zero targets (not
# renormalised: KL is applied as written).
LP = _log_softmax(RNG.normal(size=(N, C)) * 2)
T = np.exp(_log_softmax(RNG.normal(size=(N, C)) * 2))
T[RNG.random((N, C)) < 0.2] = 0.0
LP[:3], T[:3] = _padded(TORCH_LP, TORCH_T)
LP[3:5], T[3:5] = _padded(LP_ZERO, T_ZERO)
LP, T = LP.astype(np.float32), T.astype(np.float32)
LT = np.log(T, where=T > 0, out=np.full(T.shape, -INF)).astype(np.float32)
# Generalized KL inputs: the zero-target rows, unnormalised positive measures (some p far above
# t, r = log(p/t) > 1), then rows near the minimum p = t (1 + d), |d| <= 2e-3.
GLP = RNG.normal(size=(N, C)) * 1.5
GT = np.where(RNG.random((N, C)) < 0.2, 0.0, np.exp(RNG.normal(size=(N, C))))
GLP[:2], GT[:2] = _padded(LP_ZERO, T_ZERO)
NEAR = slice(N - 16, N)
GT[NEAR] = np.exp(RNG.normal(size=(16, C)))
GLP[NEAR] = np.log(GT[NEAR].astype(np.float32)) + RNG.uniform(-2e-3, 2e-3, (16, C))
GLP, GT = GLP.astype(np.float32), GT.astype(np.float32)
MASK = RNG.random((N, C)) > 0.3
# Bad values: a negative target (row 0) and a NaN log-prediction at a zero target (row 1).
BAD_LP, BAD_T = LP[5:8].copy(), T[5:8].copy()
BAD_T[0, 0], BAD_LP[1, 1], BAD_T[1, 1] = -0.1, np.nan, 0.0
NAN_LP = np.where(MASK | (np.arange(C) != 1), LP, np.nan)  # NaN only where the mask leaves out


def _log0(t):
    return np.log(t, where=t > 0, out=np.zeros_like(t))


def _rel_entr(lp, t):
    """t log(t / p) elementwise, 0 where t = 0 (scipy.special.rel_entr's convention)."""
    return np.where(t > 0, t * (_log0(t) - np.where(t > 0, lp, 0)), 0.0)


def np_kl(lp, t):
    """KL summed; its derivatives: -t in log p, log t + 1 - log p in t (0 where t = 0)."""
    lp, t = lp.astype(np.float64), t.astype(np.float64)
    return _rel_entr(lp, t).sum(-1), -t, np.where(t > 0, _log0(t) + 1 - lp, 0.0)


def np_kl_log(lp, lt):
    lp, lt = lp.astype(np.float64), lt.astype(np.float64)
    t = np.exp(lt)
    gap = np.where(t > 0, lt - np.where(t > 0, lp, 0), 0.0)
    return (t * gap).sum(-1), -t, t * (gap + 1)


def np_gkl(lp, t):
    """t log(t/p) - t + p summed (scipy.special.kl_div's terms); derivatives p - t in log p,
    log t - log p in t (-1 where t = 0)."""
    lp, t = lp.astype(np.float64), t.astype(np.float64)
    p = np.exp(lp)
    value = (_rel_entr(lp, t) - t + p).sum(-1)
    return value, p - t, np.where(t > 0, _log0(t) - np.where(t > 0, lp, 0), -1.0)


REFERENCES = {"kl": (KL, np_kl, LP, T), "kl_log": (KL_LOG, np_kl_log, LP, LT)}
REFERENCES["gkl"] = (GKL, np_gkl, GLP, GT)
OPTAX = {
    "kl": optax.losses.kl_divergence,
    "kl_log": optax.losses.kl_divergence_with_log_targets,
    "gkl": optax.losses.generalized_kl_divergence,
}


HALVES = [("kl_log", jnp.bfloat16), ("gkl", jnp.float16)]


def _loss_and_grads(fn, lp, t, **kw):
    """Per-row loss and the gradients of its sum with respect to both arguments."""
    return fn(lp, t, **kw), jax.grad(lambda a, b: fn(a, b, **kw).sum(), argnums=(0, 1))(lp, t)


@contextlib.contextmanager
def _fast_compile():
    """XLA with most optimisations off: compiles about 4x faster. The maths checked here does not
    depend on them; `test_optimised_build_agrees` runs the edge cases with them on."""
    previous = jax.config.values["jax_disable_most_optimizations"]
    jax.config.update("jax_disable_most_optimizations", True)
    try:
        yield
    finally:
        jax.config.update("jax_disable_most_optimizations", previous)


@functools.cache
def results():
    """Every numeric comparison in one compiled program (each test reads its part)."""
    halves = [tuple(a.astype(h) for a in REFERENCES[name][2:]) for name, h in HALVES]

    def run(inputs, mask, halves, bad, nan_lp):
        lp, t, lt = inputs["kl"][0], inputs["kl"][1], inputs["kl_log"][1]
        moved = [jnp.moveaxis(x, -1, 0) for x in (lp, t, mask)]
        out_lp = jnp.where(mask, lp, jnp.nan)  # NaN and inf where the mask leaves out
        return {
            "ours": {k: _loss_and_grads(REFERENCES[k][0], *xy) for k, xy in inputs.items()},
            "optax": {k: _loss_and_grads(OPTAX[k], *xy) for k, xy in inputs.items()},
            "vmap": jax.vmap(GKL)(*inputs["gkl"]),
            "convex": jaxloss.convex_kl_divergence(*inputs["gkl"]),
            "half": [REFERENCES[name][0](*a) for (name, _), a in zip(HALVES, halves)],
            "where": {
                "kl": _loss_and_grads(KL, out_lp, jnp.where(mask, t, -jnp.inf), where=mask),
                "kl_log": _loss_and_grads(KL_LOG, out_lp, jnp.where(mask, lt, jnp.nan), where=mask),
                "gkl": _loss_and_grads(GKL, out_lp, jnp.where(mask, t, jnp.nan), where=mask),
                "optax_gkl": optax.losses.generalized_kl_divergence(lp, t, where=mask),
                "axis0": KL(*moved[:2], axis=0, where=moved[2]),
                "axes": KL_LOG(lp, lt, axis=(-1, 0)),
            },
            "bad": [KL(*bad), GKL(*bad), KL(nan_lp, t, where=mask)],
            # exp(-200) underflows to 0, yet t > 0 against p = 0: +inf.
            "underflow": [
                f(jnp.array([[-jnp.inf], [0.0]]), jnp.array([[-200.0], [0.0]]))
                for f in (KL_LOG, OPTAX["kl_log"])
            ],
        }

    inputs = {k: v[2:] for k, v in REFERENCES.items()}
    with _fast_compile():
        return jax.device_get(jax.jit(run)(inputs, MASK, halves, (BAD_LP, BAD_T), NAN_LP))


def test_matches_torch_constants():
    (kl, (kl_lp, kl_t)), (kll, (kll_lp, kll_lt)) = (results()["ours"][k] for k in ("kl", "kl_log"))
    for loss, d_lp in ((kl, kl_lp), (kll, kll_lp)):
        np.testing.assert_allclose(loss[:3], TORCH_KL, rtol=2e-6)
        np.testing.assert_allclose(d_lp[:3, :4], -np.float32(TORCH_T), rtol=1e-6)
    np.testing.assert_allclose(kl_t[:3, :4], TORCH_DT, rtol=2e-6)
    np.testing.assert_allclose(kll_lt[:3, :4], TORCH_DLT, rtol=2e-6)
    # The padding class (log p, t) = (-inf, 0) adds nothing, with zero gradients.
    np.testing.assert_array_equal([kl_lp[:3, 4], kl_t[:3, 4], kll_lp[:3, 4], kll_lt[:3, 4]], 0)
    # The NumPy references give torch's numbers.
    np.testing.assert_allclose(np_kl(np.array(TORCH_LP), np.array(TORCH_T))[0], TORCH_KL)
    np.testing.assert_allclose(np_kl(np.array(TORCH_LP), np.array(TORCH_T))[2], TORCH_DT)
    np.testing.assert_allclose(np_kl_log(np.array(TORCH_LP), np.log(TORCH_T))[2], TORCH_DLT)


def test_matches_numpy_and_vmap():
    got = results()
    for name, (_, ref, lp, t) in REFERENCES.items():
        loss, (d_lp, d_t) = got["ours"][name]
        want, want_lp, want_t = ref(lp, t)
        assert loss.dtype == d_lp.dtype == d_t.dtype == np.float32
        chex.assert_shape(loss, (N,))
        np.testing.assert_allclose(loss, want, rtol=1e-5, atol=1e-6, err_msg=name)
        # atol: p - t near the minimum cancels (optax's too), 10 ulps of max(p, t) <= 10.
        np.testing.assert_allclose(d_lp, want_lp, rtol=2e-6, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(d_t, want_t, rtol=2e-6, atol=2e-6, err_msg=name)
    np.testing.assert_array_equal(got["vmap"], got["ours"]["gkl"][0])
    np.testing.assert_array_equal(got["convex"], got["ours"]["gkl"][0])


def test_matches_optax_where_optax_is_finite():
    got = results()
    for name, (_, _, lp, t) in REFERENCES.items():
        ours, theirs = got["ours"][name], got["optax"][name]
        finite = [np.isfinite(x) for x in jax.tree.leaves(theirs)]
        # The generalized KL's values near its minimum are compared with the truth below.
        accurate = finite[0] & (np.arange(N) < NEAR.start if name == "gkl" else True)
        for a, b, ok in zip(
            jax.tree.leaves(ours), jax.tree.leaves(theirs), [accurate] + finite[1:]
        ):
            np.testing.assert_allclose(a[ok], b[ok], rtol=1e-5, atol=1e-6, err_msg=name)
        # optax's NaN: the value where a zero target meets log p = -inf (with log targets, at
        # every zero target), and the target gradient at every zero target (0 / 0).
        zero = (t == -INF) if name == "kl_log" else (t == 0)
        nan_rows = np.any(zero & ((lp == -INF) | (name == "kl_log")), axis=-1)
        np.testing.assert_array_equal(~finite[0], nan_rows, err_msg=name)
        np.testing.assert_array_equal(~finite[2], zero, err_msg=name)
        assert nan_rows.sum() >= 2 and zero.sum() > 20


def test_zero_targets_contribute_zero_with_finite_gradients():
    got = results()["ours"]
    (kl, (kl_dlp, kl_dt)), (kll, (kll_dlp, kll_dlt)) = got["kl"], got["kl_log"]
    gkl, (gkl_dlp, gkl_dt) = got["gkl"]
    lp, t = LP_ZERO, T_ZERO
    want = (t * (_log0(t) - np.where(t > 0, lp, 0))).sum(-1)
    np.testing.assert_allclose(kl[3:5], want, rtol=1e-5)
    np.testing.assert_allclose(kll[3:5], want, rtol=1e-5)
    np.testing.assert_allclose(gkl[:2], want + np.exp(lp).sum(-1) - t.sum(-1), rtol=1e-5)
    chex.assert_tree_all_finite([kl_dlp, kl_dt, kll_dlp, kll_dlt, gkl_dlp, gkl_dt])
    zero, g_zero = T == 0, GT == 0
    # Both derivatives 0 at a zero target (the KL terms); the generalized KL's are p and -1.
    for g in (kl_dlp, kl_dt, kll_dlp, kll_dlt):
        np.testing.assert_array_equal(g[zero], 0.0)
    np.testing.assert_allclose(gkl_dlp[g_zero], np.exp(GLP[g_zero]), rtol=1e-6)
    np.testing.assert_array_equal(gkl_dt[g_zero], -1.0)
    # torch's finite target derivatives of these rows (it gives NaN at the zero targets).
    np.testing.assert_allclose(
        kl_dt[3:5, :3][T_ZERO > 0], [0.9891743762340093, 1.083709268125845, 1.1]
    )
    # A log-target whose exp underflows, against p = 0: +inf (optax: 0 * inf = NaN).
    ours_u, optax_u = results()["underflow"]
    np.testing.assert_array_equal(ours_u, [INF, 0.0])
    assert np.isnan(optax_u[0])


def test_generalized_accurate_near_the_minimum():
    """t (expm1(r) - r) against optax's written-out sum, p = t (1 + d) with |d| <= 2e-3."""
    ours, theirs = results()["ours"]["gkl"][0][NEAR], results()["optax"]["gkl"][0][NEAR]
    want = np_gkl(GLP[NEAR], GT[NEAR])[0]
    err_ours = np.max(np.abs(ours / want - 1))
    err_optax = np.max(np.abs(theirs / want - 1))
    assert err_ours < 1e-3, err_ours
    assert err_optax > 30 * err_ours, (err_optax, err_ours)
    assert (results()["ours"]["gkl"][0] >= 0).all()


def test_where_and_axis():
    """A left-out element (NaN or inf there) changes neither value nor gradient of the rest and
    gets a zero gradient."""
    got = results()["where"]
    refs = {
        "kl": np_kl(LP, np.where(MASK, T, 0)),
        "kl_log": np_kl_log(LP, np.where(MASK, LT, -INF)),
        "gkl": np_gkl(LP, np.where(MASK, T, 0)),
    }
    # A zero target adds p to the generalized KL; a left-out element adds nothing.
    refs["gkl"][0][:] -= np.exp(LP.astype(np.float64)).sum(-1, where=~MASK)
    for name, (want, want_lp, want_t) in refs.items():
        loss, (d_lp, d_t) = got[name]
        np.testing.assert_allclose(loss, want, rtol=1e-5, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(d_lp, want_lp * MASK, rtol=2e-6, atol=1e-7, err_msg=name)
        np.testing.assert_allclose(d_t, want_t * MASK, rtol=2e-6, atol=2e-6, err_msg=name)
    finite = np.isfinite(got["optax_gkl"])
    np.testing.assert_allclose(got["optax_gkl"][finite], got["gkl"][0][finite], rtol=1e-5)
    np.testing.assert_allclose(got["axis0"], got["kl"][0], rtol=1e-6)
    np.testing.assert_allclose(got["axes"], np_kl_log(LP, LT)[0].sum(), rtol=1e-5)


def test_bad_values_give_nan():
    neg_kl, neg_gkl, masked_nan = results()["bad"]
    np.testing.assert_array_equal(np.isnan(neg_kl), [True, True, False])
    np.testing.assert_array_equal(np.isnan(neg_gkl), [True, True, False])
    chex.assert_tree_all_finite(masked_nan)


def test_half_precision_computed_in_float32():
    for (name, half), loss in zip(HALVES, results()["half"]):
        _, ref, lp, t = REFERENCES[name]
        assert loss.dtype == np.float32
        want = ref(*(np.asarray(a.astype(half), np.float32) for a in (lp, t)))[0]
        np.testing.assert_allclose(loss, want, rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.x64
def test_second_order_gradients():
    """Reverse-over-reverse against finite differences (the Taylor check and Hessian-vector
    products take second derivatives) for the generalized KL's hand-written derivative; the KL
    divergences are plain autodiff of their formulas."""
    lp = _log_softmax(RNG.normal(size=(3, 4)))
    t = np.exp(_log_softmax(RNG.normal(size=(3, 4))))

    def f(a, b):  # r = log(p/t) on both sides of the branch point 1; its custom derivative
        return GKL(2 * a + 0.5, b).sum()

    with _fast_compile():
        check_grads(jax.jit(f), (lp, t), order=2, modes=["rev"])


def test_optimised_build_agrees():
    """With XLA's optimisations on (the rest runs without), compiled once for several values:
    the edge rows (zero targets against -inf, left-out NaN) give the same values and gradients."""
    rows = slice(0, 8)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def f(lp, t, lt, mask):
        return [
            _loss_and_grads(KL, lp, t),
            _loss_and_grads(KL_LOG, lp, lt),
            _loss_and_grads(GKL, lp, t),
            _loss_and_grads(KL, jnp.where(mask, lp, jnp.nan), t, where=mask),
        ]

    for k in (1, 0):  # the second call is the one compared
        got = f(LP[rows], T[rows] * (1 + k), LT[rows], MASK[rows])
    want = results()
    want = [want["ours"]["kl"], want["ours"]["kl_log"], want["where"]["kl"]]
    got = jax.device_get(got)
    chex.assert_trees_all_close(
        [got[0], got[1], got[3]], jax.tree.map(lambda x: x[rows], want), rtol=1e-6, atol=1e-7
    )
    want_gkl = np_gkl(LP[rows], T[rows])
    chex.assert_trees_all_close(got[2], (want_gkl[0], want_gkl[1:]), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ static errors

STATIC_ERRORS = [
    (KL, (LP, T[:, :3]), {}, ValueError, r"kl_divergence: `targets` must have the same shape"),
    (KL_LOG, (MASK * 1, LT), {}, TypeError, r"`log_predictions` must be a floating"),
    (GKL, (LP, T + 0j), {}, TypeError, r"generalized_kl_divergence: `targets` must be real"),
    (KL, (LP, T), {"axis": 2}, ValueError, r"kl_divergence: `axis` 2 is out of range .* rank 2"),
    (KL, (LP[0, 0], T[0, 0]), {}, ValueError, r"`axis` -1 is out of range .*a scalar has no"),
    (GKL, (LP, T), {"axis": 1.0}, TypeError, r"`axis` must be an int, a tuple of ints or None"),
    (KL, (LP, T), {"axis": True}, TypeError, r"`axis` must be an int"),
    (KL_LOG, (LP, LT), {"axis": (1, -1)}, ValueError, r"`axis` must not repeat an axis"),
    (KL, (LP, T), {"where": MASK[0]}, ValueError, r"kl_divergence: `where` must have shape"),
    (GKL, (LP, T), {"where": MASK * 1.0}, TypeError, r"`where` must be a boolean mask"),
    (
        jaxloss.convex_kl_divergence,
        (LP, T[:1]),
        {},
        ValueError,
        r"convex_kl_divergence: `targets` must have the same shape",
    ),
]


@pytest.mark.parametrize("case", range(len(STATIC_ERRORS)))
def test_static_errors(case):
    fn, args, kw, exc, match = STATIC_ERRORS[case]
    assert_raises_eager_and_jitted(fn, args, kw, exc, match)


def test_checked_raises_for_bad_values():
    """`checked` names the bad value; a NaN where `where` leaves out is none (NAN_LP has some)."""

    def both(lp, t):
        return KL(lp, t, where=MASK), GKL(lp, t, where=MASK)

    i, j = np.argwhere(MASK)[0]
    neg_t = T.copy()
    neg_t[i, j] = -0.1
    # The negative target is named, not the NaN left out.
    match = r"jaxloss.kl_divergence: `targets` has negative values"
    with _fast_compile(), pytest.raises(checkify.JaxRuntimeError, match=match):
        jaxloss.checked(jax.jit(both))(NAN_LP, neg_t)
