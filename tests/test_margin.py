"""Margin losses (hinge, perceptron; binary and multiclass) against torch constants, NumPy float64
references and optax; the kink, infinities, static errors, NaN policy and half precision.

Piecewise linear losses: float32 (the default mode) is exact enough for every comparison, so all
run in one compiled program."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.experimental import checkify

import jaxloss

HINGE = jaxloss.hinge_loss
PERC = jaxloss.perceptron_loss
MHINGE = jaxloss.multiclass_hinge_loss
MPERC = jaxloss.multiclass_perceptron_loss
INF = np.inf


# ------------------------------------------------------------------ NumPy float64 references


def np_binary(f, t, margin):
    """max(0, margin - f t) and its derivative in f, -t where positive."""
    v = margin - f * t
    return np.maximum(v, 0), np.where(v > 0, -t, 0.0)


def np_multiclass(s, y, margin):
    """Crammer-Singer: max_c (s_c + margin [c != y]) - s_y, and its derivative e_c* - e_y where
    positive (c* the argmax; random inputs have no ties)."""
    onehot = np.eye(s.shape[-1])[y]
    shifted = s + margin * (1 - onehot)
    loss = shifted.max(-1) - (s * onehot).sum(-1)
    grad = np.eye(s.shape[-1])[shifted.argmax(-1)] - onehot
    return loss, np.where(loss[..., None] > 0, grad, 0.0)


# ------------------------------------------------------------------ torch constants
# torch 2.13.0+cpu, float64 (/tmp/bench-venv). torch has no binary hinge nor a Crammer-Singer
# loss: F.multi_margin_loss averages the margin violations over the classes, so the matching
# quantity is its two-class form times 2, maxed over the rival classes.
FT = np.array([2.0, 0.5, -1.0, 0.3, -2.5, 1.7, 0.0])
TT = np.array([1, 1, 1, -1, -1, -1, 1])
# out = 2 * F.multi_margin_loss(stack([-FT/2, FT/2], -1), (TT+1)//2, margin=m, reduction="none");
# grad = autograd.grad(out.sum(), FT). m = 0 at FT = 0 is the kink: torch's slope there is 0.
TORCH_HINGE = [0.0, 0.5, 2.0, 1.2999999999999998, 0.0, 2.7, 1.0]
TORCH_HINGE_GRAD = [0.0, -1.0, -1.0, 1.0, 0.0, 1.0, -1.0]
TORCH_PERC = [0.0, 0.0, 1.0, 0.3, 0.0, 1.7, 0.0]
TORCH_PERC_GRAD = [0.0, 0.0, -1.0, 1.0, 0.0, 1.0, 0.0]
ST = np.array(
    [
        [1.5, -0.3, 0.2, 2.0, -1.0],
        [0.0, 0.4, -0.2, 0.1, 0.3],
        [3.0, -2.0, 0.5, 1.0, 4.0],  # label 4: margin exactly 1 over class 0 (the kink)
        [-1.2, 0.7, 2.2, -0.4, 0.9],
    ]
)
LT = np.array([0, 3, 4, 2])
# Row i: max over c != y of 2 * F.multi_margin_loss(ST[i, [y, c]][None], [0], margin=m), stacked;
# grad = autograd.grad(out.sum(), ST).
TORCH_MHINGE = [1.5, 1.3, 0.0, 0.0]
TORCH_MPERC = [0.5, 0.30000000000000004, 0.0, 0.0]
TORCH_MGRAD = [  # the same for m = 1 and m = 0
    [-1.0, 0.0, 0.0, 1.0, 0.0],
    [0.0, 1.0, 0.0, -1.0, 0.0],
    [0.0, 0.0, 0.0, 0.0, 0.0],
    [0.0, 0.0, 0.0, 0.0, 0.0],
]
# For C = 2 no max is needed: 2 * F.multi_margin_loss(S2, L2, reduction="none") and its grad.
S2 = np.array([[1.5, -0.3], [0.0, 0.4], [3.0, 3.5], [-1.2, 0.7]])
L2 = np.array([0, 0, 1, 0])
TORCH_C2 = [0.0, 1.4, 0.5, 2.9000000000000004]
TORCH_C2_GRAD = [[0.0, 0.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, 1.0]]


RNG = np.random.default_rng(11)
F = RNG.normal(size=(40, 6)) * 2  # binary scores
T = RNG.choice([-1.0, 1.0], size=F.shape)  # ±1 targets
# Random inputs away from the kinks (margin 1 and 0), where the slope is a convention.
F[np.abs(F * T - 1) < 1e-3] += 0.01
F[np.abs(F) < 1e-3] += 0.01
F.flat[: FT.size], T.flat[: TT.size] = FT, TT  # torch's inputs first
S = RNG.normal(size=(40, 5)) * 2  # class scores
LAB = RNG.integers(0, 5, size=40)
_gap = np.where(np.eye(5, dtype=bool)[LAB], -INF, S).max(-1) - S[np.arange(40), LAB]
S[np.arange(40), LAB] += 0.01 * ((np.abs(_gap + 1) < 1e-3) | (np.abs(_gap) < 1e-3))
S[: len(ST)], LAB[: len(LT)] = ST, LT
F, T, S = F.astype(np.float32), T.astype(np.float32), S.astype(np.float32)
LAB = LAB.astype(np.int32)
F64, S64 = F.astype(np.float64), S.astype(np.float64)  # what the references see

PAIRS = {  # name: (ours, optax's, scores, targets, margin of the NumPy reference)
    "hinge": (HINGE, optax.losses.hinge_loss, F, T, 1.0),
    "perceptron": (PERC, optax.losses.perceptron_loss, F, T, 0.0),
    "multiclass_hinge": (MHINGE, optax.losses.multiclass_hinge_loss, S, LAB, 1.0),
    "multiclass_perceptron": (MPERC, optax.losses.multiclass_perceptron_loss, S, LAB, 0.0),
}
# Edge cases: a -inf score (a class switched off), the label's score +inf, the kink (margin
# exactly 1), a label out of range; for the binary losses a target of 0 (0/1 labels).
S_EDGE = np.array(
    [[2.0, -INF, 0.5], [INF, 1.0, 0.0], [3.0, -2.0, 4.0], [1.0, 0.0, 2.0]], np.float32
)
L_EDGE = np.array([0, 0, 2, 3], np.int32)
T_EDGE = np.array([1.0, -1.0, 0.0, 1.0], np.float32)


def _reference(name, margin):
    """NumPy float64 loss and gradient on the float32 inputs."""
    if "multiclass" in name:
        return np_multiclass(S64, LAB, margin)
    return np_binary(F64, T, margin)


def _loss_and_grad(fn, x, y):
    return fn(x, y), jax.grad(lambda x: fn(x, y).sum())(x)


@functools.cache
def results():
    """Every numeric comparison in one compiled program (each test reads its part)."""
    halves = {}
    for half in (jnp.float16, jnp.bfloat16):
        args = (F.astype(half), T.astype(half), S.astype(half))
        halves[half.__name__] = (args, tuple(np.asarray(a, np.float32) for a in args))

    def both(f, t, s):  # one binary and one multiclass loss (the others share their code)
        return [HINGE(f, t), MHINGE(s, LAB)]

    def run(f, t, s, lab, halves, s_edge, l_edge, t_edge, s2, l2):
        inputs = {"hinge": (f, t), "perceptron": (f, t)}
        inputs.update({"multiclass_hinge": (s, lab), "multiclass_perceptron": (s, lab)})
        f_inf = jnp.array([INF, -INF, INF, -INF], f.dtype)
        return {
            "ours": {k: _loss_and_grad(PAIRS[k][0], *xy) for k, xy in inputs.items()},
            "vmap": {k: jax.vmap(PAIRS[k][0])(*xy) for k, xy in inputs.items()},
            "optax": {k: _loss_and_grad(PAIRS[k][1], *xy) for k, xy in inputs.items()},
            "c2": _loss_and_grad(MHINGE, s2, l2),
            "edge": {
                "ours": [
                    MHINGE(s_edge, l_edge),
                    MPERC(s_edge, l_edge),
                    HINGE(s_edge[:, 0], t_edge),
                ],
                "optax": [
                    optax.losses.multiclass_hinge_loss(s_edge, l_edge),
                    optax.losses.multiclass_perceptron_loss(s_edge, l_edge),
                    optax.losses.hinge_loss(s_edge[:, 0], t_edge),
                ],
                "grad": jax.grad(lambda s: MHINGE(s, l_edge).sum())(s_edge),
                "optax_grad": jax.grad(
                    lambda s: optax.losses.multiclass_hinge_loss(s[2], l_edge[2])
                )(s_edge),
            },
            "inf": [_loss_and_grad(g, f_inf, t_edge.at[2].set(-1.0)) for g in (HINGE, PERC)],
            "half": {k: (both(*h), both(*full)) for k, (h, full) in halves.items()},
        }

    args = (F, T, S, LAB, halves, S_EDGE, L_EDGE, T_EDGE, S2.astype(np.float32), L2)
    return jax.device_get(jax.jit(run)(*args))


# The un-jitted path: each docstring example (run as a doctest) calls its loss op by op.


def test_matches_torch_constants():
    got = results()["ours"]
    for name, want, want_grad in [
        ("hinge", TORCH_HINGE, TORCH_HINGE_GRAD),
        ("perceptron", TORCH_PERC, TORCH_PERC_GRAD),
    ]:
        loss, grad = got[name]
        np.testing.assert_allclose(loss.flat[: FT.size], want, rtol=1e-6, err_msg=name)
        np.testing.assert_array_equal(grad.flat[: FT.size], want_grad, err_msg=name)
    for name, want in [("multiclass_hinge", TORCH_MHINGE), ("multiclass_perceptron", TORCH_MPERC)]:
        loss, grad = got[name]
        np.testing.assert_allclose(loss[: len(ST)], want, rtol=1e-6, atol=1e-7, err_msg=name)
        np.testing.assert_array_equal(grad[: len(ST)], TORCH_MGRAD, err_msg=name)
    np.testing.assert_allclose(results()["c2"][0], TORCH_C2, rtol=1e-6)
    np.testing.assert_array_equal(results()["c2"][1], TORCH_C2_GRAD)
    # The NumPy references give torch's numbers too.
    np.testing.assert_allclose(np_multiclass(ST, LT, 1.0)[0], TORCH_MHINGE, atol=1e-15)
    np.testing.assert_allclose(np_binary(FT, TT, 1.0)[0], TORCH_HINGE, atol=1e-15)


def test_matches_numpy_and_optax_and_vmap():
    got = results()
    for name, (loss, grad) in got["ours"].items():
        margin = PAIRS[name][4]
        want, want_grad = _reference(name, margin)
        assert loss.dtype == grad.dtype == np.float32
        chex.assert_shape(loss, want.shape)
        np.testing.assert_allclose(loss, want, rtol=1e-6, atol=1e-6, err_msg=name)
        np.testing.assert_array_equal(grad, want_grad, err_msg=name)
        np.testing.assert_array_equal(got["vmap"][name], loss, err_msg=name)
        optax_loss, optax_grad = got["optax"][name]
        np.testing.assert_allclose(loss, optax_loss, rtol=1e-6, atol=1e-6, err_msg=name)
        # The same slopes, except at a kink (torch's inputs have two), where optax's
        # jnp.maximum gives half: perceptron f = 0 (FT[6]); multiclass hinge row 2.
        kink = np.zeros(grad.shape, bool)
        if name == "perceptron":
            kink.flat[6] = True
        if name == "multiclass_hinge":
            kink[2] = True
        np.testing.assert_array_equal(grad[~kink], optax_grad[~kink], err_msg=name)
        np.testing.assert_array_equal(grad[kink], 0.0)
        half = {"perceptron": [-0.5], "multiclass_hinge": [0.5, 0.0, 0.0, 0.0, -0.5]}
        np.testing.assert_array_equal(optax_grad[kink], half.get(name, []), err_msg=name)


def test_better_than_optax():
    got = results()["edge"]
    (mh, mp, h), (oh, op, oh_bin), grad = got["ours"], got["optax"], got["grad"]
    # A -inf score: the limit. optax's one-hot dot product gives 0 * -inf = NaN un-jitted
    # (jitted, XLA happens to simplify it away).
    np.testing.assert_array_equal([mh[0], mp[0]], [0.0, 0.0])
    # The label's score +inf: the limit 0 (optax: inf - inf = NaN).
    assert mh[1] == 0.0 and mp[1] == 0.0 and np.isnan(oh[1])
    chex.assert_tree_all_finite(grad[:3])
    np.testing.assert_array_equal(grad[:2], 0.0)
    # A label out of range: NaN; optax's one-hot of it is all zeros, a finite number.
    assert np.isnan(mh[3]) and np.isnan(mp[3])
    np.testing.assert_allclose([oh[3], op[3]], [3.0, 2.0])
    np.testing.assert_array_equal(grad[3], 0.0)
    # A target of 0 (0/1 labels passed as ±1): NaN; optax returns 1 as if it were fine.
    assert np.isnan(h[2]) and oh_bin[2] == 1.0
    np.testing.assert_array_equal(h[[0, 1, 3]], [0.0, INF, 0.0])
    # At the kink (margin exactly 1) the slope is 0, as torch's; optax's jnp.maximum gives half.
    np.testing.assert_array_equal(grad[2], 0.0)
    np.testing.assert_array_equal(got["optax_grad"][2], [0.5, 0.0, -0.5])


def test_infinite_binary_scores():
    for loss, grad in results()["inf"]:  # f = [inf, -inf, inf, -inf], t = [1, -1, -1, 1]
        np.testing.assert_array_equal(loss, [0.0, 0.0, INF, INF])
        np.testing.assert_array_equal(grad, [0.0, 0.0, 1.0, -1.0])


def test_half_precision_computed_in_float32():
    for half, full in results()["half"].values():
        assert all(g.dtype == np.float32 for g in half)
        chex.assert_trees_all_close(half, full, rtol=1e-6)


def test_no_retrace_across_values():
    @jax.jit
    @chex.assert_max_traces(n=1)
    def f(x, t, s, lab):
        return HINGE(x, t), MHINGE(s, lab)

    for k in range(3):
        f(F + k, T, S - k, (LAB + k) % 5)


# ------------------------------------------------------------------ static errors

STATIC_ERRORS = [
    (HINGE, (F, T[:, :3]), ValueError, r"hinge_loss: `targets` must have the same shape"),
    (PERC, (F[:, :1], T[:, 0]), ValueError, r"perceptron_loss: `targets` must have the same"),
    (HINGE, (LAB, LAB), TypeError, r"hinge_loss: `predictor_outputs` must be a floating"),
    (HINGE, (F, T > 0), TypeError, r"hinge_loss: `targets` must be -1 or \+1 .* got dtype bool"),
    (PERC, (F, T + 0j), TypeError, r"perceptron_loss: `targets` must be real"),
    (MHINGE, (S, LAB.astype(float)), TypeError, r"multiclass_hinge_loss: `labels` must be an int"),
    (MPERC, (LAB, LAB), TypeError, r"multiclass_perceptron_loss: `scores` must be a floating"),
    (MHINGE, (S, LAB[:3]), ValueError, r"`labels` must have shape scores.shape\[:-1\]"),
    (MPERC, (S[0, 0], LAB[0]), ValueError, r"`scores` must have a class axis"),
    (MHINGE, (S[:, :0], LAB), ValueError, r"`scores` must have at least one class"),
]


@pytest.mark.parametrize("case", range(len(STATIC_ERRORS)))
def test_static_errors(case):
    fn, args, exc, match = STATIC_ERRORS[case]
    with pytest.raises(exc, match=match):
        fn(*args)
    with pytest.raises(exc, match=match):  # at trace time under jit too
        jax.jit(fn)(*args)


# ------------------------------------------------------------------ run-time values and checked


def test_checked_raises_for_bad_values():
    t = T.copy()
    t[1, 2] = 0.0
    cases = [
        (HINGE, (F, t), r"hinge_loss: `targets` has values other than -1 and \+1"),
        (MPERC, (S, LAB - 1), r"multiclass_perceptron_loss: `labels` has values outside \[0, 5\)"),
    ]
    for fn, args, match in cases:
        with pytest.raises(checkify.JaxRuntimeError, match=match):
            jaxloss.checked(jax.jit(lambda *a, fn=fn: fn(*a)))(*args)
