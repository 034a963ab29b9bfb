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
from static_errors import assert_raises_eager_and_jitted

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


def _bf16_exact(x):
    """Values bfloat16 holds exactly: the half-precision run then sees the float32 run's inputs."""
    return np.asarray(np.asarray(x, np.float32).astype(jnp.bfloat16), np.float32)


# Binary: torch's inputs, edge cases, then random scores away from the kinks (margin 1 and 0,
# where the slope is a convention). Edge cases: ±inf scores, and a target of 0 (0/1 labels).
F_EDGE = np.array([INF, -INF, INF, -INF, 3.0])
T_EDGE = np.array([1.0, -1.0, -1.0, 1.0, 0.0])
F = _bf16_exact(RNG.normal(size=(48,)) * 2)
T = RNG.choice([-1.0, 1.0], size=F.shape).astype(np.float32)
F[(np.abs(F * T - 1) < 1e-2) | (np.abs(F) < 1e-2)] += 0.125
F[:7], T[:7] = FT, TT
F[7:12], T[7:12] = F_EDGE, T_EDGE
EDGE_F = slice(7, 12)
# Multiclass: torch's inputs (rows 0-3), edge cases (rows 4-7: a -inf score, the label's score
# +inf, the kink at margin exactly 1, a label out of range), then random scores.
S_EDGE = np.array(
    [[2.0, -INF, 0.5, -9.0, -9.0], [INF, 1.0, 0.0, -9.0, -9.0], [3.0, -2.0, 4.0, -9.0, -9.0],
     [1.0, 0.0, 2.0, -9.0, -9.0]]
)  # fmt: skip
S = _bf16_exact(RNG.normal(size=(40, 5)) * 2)
LAB = RNG.integers(0, 5, size=40).astype(np.int32)
_gap = np.where(np.eye(5, dtype=bool)[LAB], -INF, S).max(-1) - S[np.arange(40), LAB]
S[np.arange(40), LAB] += 0.125 * ((np.abs(_gap + 1) < 1e-2) | (np.abs(_gap) < 1e-2))
S[:4], LAB[:4] = ST, LT
S[4:8], LAB[4:8] = S_EDGE, [0, 0, 2, 5]
EDGE_S = slice(4, 8)
PLAIN_F = np.r_[0:7, 12:48]  # finite scores and ±1 targets
PLAIN_S = np.r_[0:4, 8:40]
F64, S64 = F.astype(np.float64), S.astype(np.float64)  # what the references see

PAIRS = {  # name: (ours, optax's, scores, targets, margin of the NumPy reference)
    "hinge": (HINGE, optax.losses.hinge_loss, F, T, 1.0),
    "perceptron": (PERC, optax.losses.perceptron_loss, F, T, 0.0),
    "multiclass_hinge": (MHINGE, optax.losses.multiclass_hinge_loss, S, LAB, 1.0),
    "multiclass_perceptron": (MPERC, optax.losses.multiclass_perceptron_loss, S, LAB, 0.0),
}


def _reference(name):
    """NumPy float64 loss and gradient on the float32 inputs (plain rows)."""
    margin = PAIRS[name][4]
    if "multiclass" in name:
        return np_multiclass(S64[PLAIN_S], LAB[PLAIN_S], margin)
    return np_binary(F64[PLAIN_F], T[PLAIN_F], margin)


def _plain(name, x):
    return x[PLAIN_S] if "multiclass" in name else x[PLAIN_F]


def _loss_and_grad(fn, x, y):
    out, vjp = jax.vjp(lambda x: fn(x, y), x)
    return out, vjp(jnp.ones_like(out))[0]


@functools.cache
def results():
    """Every numeric comparison in one compiled program (each test reads its part)."""

    def run(f, t, s, lab, s2, l2):
        inputs = {"hinge": (f, t), "perceptron": (f, t)}
        inputs.update({"multiclass_hinge": (s, lab), "multiclass_perceptron": (s, lab)})
        return {
            "ours": {k: _loss_and_grad(PAIRS[k][0], *xy) for k, xy in inputs.items()},
            "optax": {k: _loss_and_grad(PAIRS[k][1], *xy) for k, xy in inputs.items()},
            # vmap over samples of bfloat16 scores (computed in float32)
            "vmap_bf16": {  # the perceptrons share the hinge losses' code
                k: jax.vmap(PAIRS[k][0])(x.astype(jnp.bfloat16), y)
                for k, (x, y) in inputs.items()
                if "hinge" in k
            },
            "c2": _loss_and_grad(MHINGE, s2, l2),
        }

    return jax.device_get(jax.jit(run)(F, T, S, LAB, S2.astype(np.float32), L2))


# The un-jitted path: each docstring example (run as a doctest) calls its loss op by op.


def test_matches_torch_constants():
    got = results()["ours"]
    for name, want, want_grad in [
        ("hinge", TORCH_HINGE, TORCH_HINGE_GRAD),
        ("perceptron", TORCH_PERC, TORCH_PERC_GRAD),
        ("multiclass_hinge", TORCH_MHINGE, TORCH_MGRAD),
        ("multiclass_perceptron", TORCH_MPERC, TORCH_MGRAD),
    ]:
        loss, grad = got[name]
        n = len(want)
        np.testing.assert_allclose(loss[:n], want, rtol=1e-6, atol=1e-7, err_msg=name)
        np.testing.assert_array_equal(grad[:n], want_grad, err_msg=name)
    np.testing.assert_allclose(results()["c2"][0], TORCH_C2, rtol=1e-6)
    np.testing.assert_array_equal(results()["c2"][1], TORCH_C2_GRAD)
    # The NumPy references give torch's numbers too.
    np.testing.assert_allclose(np_multiclass(ST, LT, 1.0)[0], TORCH_MHINGE, atol=1e-15)
    np.testing.assert_allclose(np_binary(FT, TT, 1.0)[0], TORCH_HINGE, atol=1e-15)


def test_matches_numpy_and_optax_vmap_and_bfloat16():
    got = results()
    for name, (loss, grad) in got["ours"].items():
        want, want_grad = _reference(name)
        assert loss.dtype == grad.dtype == np.float32
        chex.assert_shape(loss, PAIRS[name][2].shape[: 1 if "multiclass" in name else None])
        np.testing.assert_allclose(_plain(name, loss), want, rtol=1e-6, atol=1e-6, err_msg=name)
        np.testing.assert_array_equal(_plain(name, grad), want_grad, err_msg=name)
        # bfloat16 inputs are computed in float32: the same numbers (the inputs are exact).
        if "hinge" in name:
            half = got["vmap_bf16"][name]
            assert half.dtype == np.float32
            x = _plain(name, PAIRS[name][2])
            exact = (_bf16_exact(x) == x).reshape(len(x), -1).all(-1)  # not all torch's inputs
            np.testing.assert_allclose(
                _plain(name, half)[exact], _plain(name, loss)[exact], rtol=1e-6
            )
        optax_loss, optax_grad = (_plain(name, x) for x in got["optax"][name])
        loss, grad = _plain(name, loss), _plain(name, grad)
        np.testing.assert_allclose(loss, optax_loss, rtol=1e-6, atol=1e-6, err_msg=name)
        # The same slopes, except at a kink (torch's inputs have two), where optax's
        # jnp.maximum gives half: perceptron f = 0 (FT[6]); multiclass hinge row 2.
        kink = np.zeros(grad.shape, bool)
        if name == "perceptron":
            kink[6] = True
        if name == "multiclass_hinge":
            kink[2] = True
        np.testing.assert_array_equal(grad[~kink], optax_grad[~kink], err_msg=name)
        np.testing.assert_array_equal(grad[kink], 0.0)
        half = {"perceptron": [-0.5], "multiclass_hinge": [0.5, 0.0, 0.0, 0.0, -0.5]}
        np.testing.assert_array_equal(optax_grad[kink], half.get(name, []), err_msg=name)


def test_infinite_scores_and_bad_targets():
    got = results()
    for name in ("hinge", "perceptron"):  # f [inf, -inf, inf, -inf, 3], t [1, -1, -1, 1, 0]
        loss, grad = (x[EDGE_F] for x in got["ours"][name])
        np.testing.assert_array_equal(loss[:4], [0.0, 0.0, INF, INF], err_msg=name)
        np.testing.assert_array_equal(grad, [0.0, 0.0, 1.0, -1.0, 0.0], err_msg=name)
        # A target of 0 (0/1 labels passed as ±1): NaN; optax returns a number as if fine.
        assert np.isnan(loss[4]) and np.isfinite(got["optax"][name][0][EDGE_F][4])


def test_multiclass_edges_better_than_optax():
    got = results()
    for name in ("multiclass_hinge", "multiclass_perceptron"):
        (loss, grad), (optax_loss, optax_grad) = (
            (x[EDGE_S] for x in got[k][name]) for k in ("ours", "optax")
        )
        # A -inf score (row 0): the finite loss (optax's one-hot dot product gives 0 * -inf =
        # NaN un-jitted; jitted, XLA happens to simplify it away).
        assert np.isfinite(loss[0]) and np.isfinite(grad[0]).all()
        # The label's score +inf (row 1): the limit 0 with a zero gradient (optax: NaN).
        assert loss[1] == 0.0 and np.isnan(optax_loss[1])
        np.testing.assert_array_equal(grad[1], 0.0)
        # A label out of range (row 3): NaN, zero gradient; optax's one-hot of it is all
        # zeros, a finite number.
        assert np.isnan(loss[3]) and np.isfinite(optax_loss[3])
        np.testing.assert_array_equal(grad[3], 0.0)
    # At the kink (row 2: margin exactly 1) the slope is 0, as torch's; optax gives half.
    loss, grad = (x[EDGE_S] for x in got["ours"]["multiclass_hinge"])
    assert loss[2] == 0.0
    np.testing.assert_array_equal(grad[2], 0.0)
    np.testing.assert_array_equal(
        got["optax"]["multiclass_hinge"][1][EDGE_S][2, :3], [0.5, 0, -0.5]
    )


def test_no_retrace_across_values():
    @jax.jit
    @chex.assert_max_traces(n=1)
    def f(x, t, s, lab):
        return HINGE(x, t), MHINGE(s, lab)

    for k in range(3):
        f(F + k, T, S - k, (LAB + k) % 5)


# ------------------------------------------------------------------ static errors

STATIC_ERRORS = [
    (HINGE, (F, T[:3]), ValueError, r"hinge_loss: `targets` must have the same shape"),
    (PERC, (F[:, None], T), ValueError, r"perceptron_loss: `targets` must have the same"),
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
    assert_raises_eager_and_jitted(fn, args, {}, exc, match)


# ------------------------------------------------------------------ run-time values and checked


def test_checked_raises_for_bad_values():
    # T has a target 0 (T_EDGE), LAB a label 5 (row 7): one checked program for both.
    with pytest.raises(checkify.JaxRuntimeError, match=r"`targets` has values other than -1"):
        jaxloss.checked(jax.jit(lambda f, t: HINGE(f, t)))(F, T)
    with pytest.raises(checkify.JaxRuntimeError, match=r"`labels` has values outside \[0, 5\)"):
        jaxloss.checked(jax.jit(lambda s, y: MPERC(s, y)))(S, LAB)
