"""CTC against torch constants, a NumPy float64 Graves recursion and optax; impossible alignments,
padding, -inf logits, gradients, static and run-time errors."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.experimental import checkify

import jaxloss

CTC = jaxloss.ctc_loss
CTCF = jaxloss.ctc_loss_with_forward_probs
INF = np.inf

# ------------------------------------------------------------------ NumPy float64 reference


def np_ctc(x, pad, labels, lab_pad, blank=0):
    """One sequence by Graves et al. (2006), eq. 6-8, exact in float64 (log 0 = -inf).

    Extended labels l' = (blank, y1, blank, y2, ..., blank); alpha_t(s) sums alpha_{t-1}(s),
    alpha_{t-1}(s-1) and, when l'_s is a label other than l'_{s-2}, alpha_{t-1}(s-2); padded
    frames are skipped. Returns the loss and the alphas in optax's layout: blank states
    alpha(2n) (T, L+1), label states alpha(2n+1) (T, L), the last blank row replaced by
    log(alpha_T(2n) + alpha_T(2n-1)).
    """
    logp = x - np.logaddexp.reduce(x, axis=-1, keepdims=True)
    y = labels[lab_pad == 0]
    ext = np.full(2 * len(y) + 1, blank)
    ext[1::2] = y
    alpha = np.full(len(ext), -INF)
    alpha[0] = 0.0  # before frame 0: nothing emitted (the recursion then gives Graves' init)
    rows = []
    for t in range(len(x)):
        if pad[t] == 0:
            prev = alpha.copy()
            for s in range(len(ext)):
                terms = [prev[s]] + ([prev[s - 1]] if s >= 1 else [])
                if s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]:
                    terms.append(prev[s - 2])
                alpha[s] = np.logaddexp.reduce(terms) + logp[t, ext[s]]
        rows.append(alpha.copy())
    alphas = np.array(rows)
    ends = np.concatenate([alphas[-1, :1], np.logaddexp(alphas[-1, 2::2], alphas[-1, 1::2])])
    blank_rows = alphas[:, 0::2].copy()
    blank_rows[-1] = ends
    return -ends[-1], blank_rows, alphas[:, 1::2]


def np_ctc_batch(x, pad, labels, lab_pad, blank=0):
    return np.array([np_ctc(*a, blank=blank)[0] for a in zip(x, pad, labels, lab_pad)])


# ------------------------------------------------------------------ torch constants
# torch 2.13.0+cpu, float64: x = torch.tensor(XT, requires_grad=True);
# loss = F.ctc_loss(F.log_softmax(x, -1).transpose(0, 1), torch.tensor(LT), torch.tensor(IN_LEN),
#                   torch.tensor(TGT_LEN), blank=0, reduction="none", zero_infinity=False)
# (loss[0] + loss[1]).backward() gives GRAD_T = x.grad[:2].
XT = np.array(
    [
        [[0.1, 2.0, 1.8, -0.8], [-0.4, -0.8, 0.9, -0.1], [1.1, -2.8, 2.3, -0.1],
         [1.0, -0.2, -0.6, 0.7], [1.2, -0.3, -0.2, 1.0]],
        [[-1.3, -2.3, 0.6, -1.0], [-2.9, -1.2, -0.7, -1.8], [-2.2, 0.1, 1.3, -0.3],
         [-1.1, 0.6, 1.1, -0.5], [0.8, 1.6, -0.3, -1.2]],
        [[0.5, 0.4, 1.6, -1.9], [-1.0, -1.3, -2.6, 0.2], [0.8, -1.1, 2.1, 1.2],
         [0.9, 0.6, 1.4, -2.0], [0.9, 0.9, -2.7, 0.5]],
    ]
)  # fmt: skip
LT = np.array([[1, 2, 2], [3, 1, 0], [1, 1, 0]])  # a repeat needing a blank; padding; impossible
IN_LEN, TGT_LEN = np.array([5, 4, 2]), np.array([3, 2, 2])
LOSS_T = [3.9415695689823718, 4.716895917090017, INF]  # [1, 1] in 2 frames needs 3: inf
GRAD_T = np.array(
    [
        [[0.06064503760274834, -0.49410653581678976, 0.40349265494786213, 0.02996884326617927],
         [0.019161668237454455, -0.00022197219747101547, -0.2207281327106694, 0.20178843667068597],
         [-0.07559284799494102, 0.004361021245429076, 0.006341000571056534, 0.06489082617845542],
         [-0.4073446214375931, 0.1342274657949909, -0.05702913682947044, 0.33014629247207267],
         [0.31905084928466393, 0.09750241084819743, -0.7743185313429946, 0.3577652712101332]],
        [[-0.15450806996670297, 0.039120992201501656, 0.7109905992669393, -0.5956035215017381],
         [-0.04178975835298688, -0.05820823707112382, 0.4877561258073207, -0.38775813038320994],
         [-0.019341115455325995, -0.5489950991879117, 0.6521931470718404, -0.08385693242860263],
         [-0.06280955391353424, -0.5634292541161523, 0.5210422017650536, 0.10519660626463301],
         [0.0, 0.0, 0.0, 0.0]],
    ]
)  # fmt: skip
# The same with labels LT3 and blank=3.
LT3 = np.array([[1, 2, 2], [0, 1, 0], [1, 1, 0]])
LOSS_T_BLANK3 = [4.414420800172028, 4.948420572641453, INF]
# optax's paddings: 1 for a padded frame / label.
PAD_T = (np.arange(5) >= IN_LEN[:, None]).astype(float)
LPAD_T = (np.arange(3) >= TGT_LEN[:, None]).astype(float)


def test_numpy_reference_reproduces_torch():
    np.testing.assert_allclose(np_ctc_batch(XT, PAD_T, LT, LPAD_T), LOSS_T, rtol=1e-13)
    np.testing.assert_allclose(
        np_ctc_batch(XT, PAD_T, LT3, LPAD_T, blank=3), LOSS_T_BLANK3, rtol=1e-13
    )


def random_batch(seed, batch, frames, classes, num_labels):
    """Random logits, paddings anywhere among the frames, right-padded labels (0..N of them)
    with repeats, which need a blank between."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, frames, classes)) * 2
    pad = (rng.uniform(size=(batch, frames)) < 0.2).astype(float)
    labels = rng.integers(1, classes, size=(batch, num_labels))
    labels[::3, 1] = labels[::3, 0]
    lengths = np.arange(batch) % (num_labels + 1)
    lab_pad = (np.arange(num_labels) >= lengths[:, None]).astype(float)
    return x, pad, labels, lab_pad


# One batch, T = 5 frames, K = 4 classes, N = 3 labels: torch's three sequences, random ones, then
# edge cases. Every check below reads the results of one compiled program (a scan and its
# gradient compile for seconds).
XR, PADR, LABR, LPADR = random_batch(1, 6, 5, 4, 3)
EDGE_NAMES = ["garbage", "minus_inf", "impossible", "no_frame", "nothing", "label_4",
              "label_blank", "not_right_padded", "half_padding"]  # fmt: skip
EDGE = {name: 9 + i for i, name in enumerate(EDGE_NAMES)}
XB = np.concatenate([XT, XR, np.random.default_rng(2).normal(size=(9, 5, 4))])
PADB = np.concatenate([PAD_T, PADR, np.zeros((9, 5))])
LABB = np.concatenate([LT, LABR, np.tile([1, 2, 3], (9, 1))])
LPADB = np.concatenate([LPAD_T, LPADR, np.zeros((9, 3))])
r = EDGE["garbage"]  # NaN and +-inf in padded frames
XB[r, 1], XB[r, 4], PADB[r, [1, 4]], LPADB[r, 2] = np.nan, [INF, -INF, 0.0, np.nan], 1, 1
r = EDGE["minus_inf"]  # class 3 off in frames 1, 2 (it is a label); class 2 off everywhere
LABB[r], XB[r, 1:3, 3], XB[r, :, 2] = [3, 1, 3], -INF, -INF
r = EDGE["impossible"]  # [2, 2, 2] needs 5 frames, has 4
LABB[r], PADB[r, 1] = [2, 2, 2], 1
r = EDGE["no_frame"]  # two labels, every frame padded
PADB[r], LPADB[r, 2] = 1, 1
r = EDGE["nothing"]  # no label, no frame: probability 1
PADB[r], LPADB[r] = 1, 1
LABB[EDGE["label_4"], 1] = 4  # out of range: optax reads it as probability 1
LABB[EDGE["label_blank"], 0] = 0  # the blank
LPADB[EDGE["not_right_padded"]] = [0, 1, 0]  # optax silently scores the first two labels
PADB[EDGE["half_padding"], 3] = 0.5  # optax mixes the frame in by half
BAD = [EDGE[k] for k in ("label_4", "label_blank", "not_right_padded", "half_padding")]
GOOD = np.setdiff1d(np.arange(len(XB)), BAD)
IMPOSSIBLE = [2, EDGE["impossible"], EDGE["no_frame"]]
NAN_IN_OPTAX = [EDGE["garbage"], EDGE["minus_inf"]]
SAME_AS_OPTAX = np.setdiff1d(GOOD, NAN_IN_OPTAX)
# Blank last instead of first: the same losses with blank_id=3 (as torch's LOSS_T_BLANK3 shows).
PERM = [1, 2, 3, 0]
EPS = np.array([-1e5, -50.0, 1.0], np.float32)  # traced log_epsilon; 1.0 is out of range


def value_grad_alphas(fn):
    """(loss, alphas) and the gradient of the summed loss, in one forward and backward pass."""

    def total(x, *rest):
        loss, blank, label = fn(x, *rest)
        return loss.sum(), (loss, blank, label)

    return jax.value_and_grad(total, has_aux=True)


def program(x, eps):
    args = (PADB, LABB, LPADB)
    x_bf16 = x[..., PERM].astype(jnp.bfloat16)

    def bf16_blank_last(e):  # boolean paddings too (0.5 is then padding)
        labels = np.where(LABB > 0, LABB - 1, -1)
        return CTC(x_bf16, PADB != 0, labels, LPADB != 0, blank_id=3, log_epsilon=e)

    return {
        # float64, one sequence at a time under vmap (the batched path runs below and in the
        # doctests)
        "ours": value_grad_alphas(jax.vmap(CTCF))(x, *args),
        "optax": value_grad_alphas(optax.ctc_loss_with_forward_probs)(x, *args),
        "bf16": jax.vmap(bf16_blank_last)(eps),
        "optax_bf16": optax.ctc_loss(x.astype(jnp.bfloat16), *args),
    }


@pytest.fixture(scope="module")
def out():
    with jax.enable_x64(True):
        # XLA's backend optimisations off: the same numbers, compiled in half the time (a scan
        # and its gradient take seconds to compile).
        options = {"xla_backend_optimization_level": 0}
        compiled = jax.jit(program).lower(XB, EPS).compile(compiler_options=options)
        got = jax.device_get(compiled(XB, EPS))
    (_, (loss, blank, label)), grad = got["ours"]
    (_, (o_loss, o_blank, o_label)), o_grad = got["optax"]
    # vmap puts the batch first; optax's alphas are (T, B, N+1).
    return {
        "loss": loss,
        "blank": blank.swapaxes(0, 1),
        "label": label.swapaxes(0, 1),
        "grad": grad,
        "optax": (o_loss, o_blank, o_label, o_grad),
        "bf16": got["bf16"],
        "optax_bf16": got["optax_bf16"],
    }


def reference(x=XB):
    x = np.where(PADB[..., None] == 1, 0.0, x)  # padded frames ignored (NumPy warns on NaN)
    return [np_ctc(*a) for a in zip(x[GOOD], PADB[GOOD], LABB[GOOD], LPADB[GOOD])]


def test_matches_torch(out):
    np.testing.assert_allclose(out["loss"][:2], LOSS_T[:2], rtol=1e-13)
    np.testing.assert_allclose(out["grad"][:2], GRAD_T, rtol=1e-10, atol=1e-14)


def test_matches_numpy_loss_and_every_forward_probability(out):
    lengths = (LPADB == 0).sum(1)
    for b, (want, want_blank, want_label) in zip(GOOD, reference()):
        n = lengths[b]
        pairs = ((out["blank"][:, b, : n + 1], want_blank), (out["label"][:, b, :n], want_label))
        for ours, ref in pairs:
            reach = np.isfinite(ref)
            np.testing.assert_allclose(ours[reach], ref[reach], rtol=1e-12, err_msg=str(b))
            assert (ours[~reach] < -5e4).all()  # log 0 stands at about log_epsilon
        assert np.isinf(want) == (b in IMPOSSIBLE)
        if np.isfinite(want):
            np.testing.assert_allclose(out["loss"][b], want, rtol=1e-12, err_msg=str(b))
    assert out["loss"][EDGE["nothing"]] == 0.0


def np_grad(b, h=1e-6):
    """Central differences of the NumPy loss of sequence b (float64, ~1e-9 accurate)."""
    g = np.zeros((5, 4))
    for i in np.ndindex(g.shape):
        e = np.zeros((5, 4))
        e[i] = h
        plus, minus = (np_ctc(XB[b] + s * e, PADB[b], LABB[b], LPADB[b])[0] for s in (1, -1))
        g[i] = (plus - minus) / (2 * h)
    return g


def test_gradient_matches_finite_differences_of_numpy(out):
    for b in range(3, 9):  # the random sequences
        np.testing.assert_allclose(out["grad"][b], np_grad(b), atol=1e-8, err_msg=str(b))


def test_matches_optax_values_and_gradients(out):
    o_loss, o_blank, o_label, o_grad = out["optax"]
    same = SAME_AS_OPTAX
    np.testing.assert_allclose(out["loss"][same], o_loss[same], rtol=1e-13)
    # Unreachable states sit near log_epsilon = -1e5: absolute error ~1e-16 * 1e5.
    np.testing.assert_allclose(out["blank"][:, same], o_blank[:, same], rtol=1e-13, atol=1e-10)
    np.testing.assert_allclose(out["label"][:, same], o_label[:, same], rtol=1e-13, atol=1e-10)
    np.testing.assert_allclose(out["grad"][same], o_grad[same], atol=1e-10)


def test_impossible_alignments_finite_with_finite_gradients(out):
    """torch gives inf; jaxloss, like optax, about -log_epsilon, and a finite gradient."""
    assert np.isinf(LOSS_T[2])
    assert (np.abs(out["loss"][IMPOSSIBLE] - 1e5) < 20).all()
    small = out["bf16"][1, IMPOSSIBLE]
    assert (small > 30).all() and (small < 70).all()  # log_epsilon = -50
    chex.assert_tree_all_finite(out["grad"])
    assert np.abs(out["grad"][IMPOSSIBLE]).max() > 0.1  # a gradient, not zeros
    np.testing.assert_array_equal(out["grad"][EDGE["no_frame"]], 0.0)
    np.testing.assert_array_equal(out["grad"][EDGE["nothing"]], 0.0)


def test_padded_frames_and_minus_inf_logits_where_optax_gives_nan(out):
    o_loss, _, _, o_grad = out["optax"]
    g, m = EDGE["garbage"], EDGE["minus_inf"]
    assert np.isnan(o_loss[[g, m]]).all() and np.isnan(o_grad[[g, m]]).all()
    # finite and equal to NumPy (test_matches_numpy_loss_and_every_forward_probability)
    assert np.isfinite(out["loss"][[g, m]]).all()
    np.testing.assert_array_equal(out["grad"][g, [1, 4]], 0.0)
    np.testing.assert_array_equal(out["grad"][m][np.isinf(XB[m])], 0.0)


def test_bad_values_give_nan_where_optax_is_silently_wrong(out):
    o_loss = out["optax"][0]
    assert np.isnan(out["loss"][BAD]).all() and np.isfinite(out["loss"][GOOD]).all()
    assert np.isnan(out["blank"][:, BAD]).all() and np.isnan(out["label"][:, BAD]).all()
    assert np.isnan(out["bf16"][:2, BAD[:3]]).all()
    assert np.isfinite(o_loss[BAD]).all()  # optax: a finite number for each
    r = EDGE["not_right_padded"]
    first_two = np_ctc(XB[r], PADB[r], LABB[r, :2], np.zeros(2))[0]
    np.testing.assert_allclose(o_loss[r], first_two, rtol=1e-12)


def test_bfloat16_blank_last_and_traced_log_epsilon(out):
    """bfloat16 logits are computed in float32; blank_id=3 on permuted classes and boolean
    paddings give the same losses; a traced log_epsilon out of range gives NaN."""
    got = out["bf16"]
    assert got.dtype == np.float32
    rounded = np.asarray(XB.astype(jnp.bfloat16), np.float64)
    want = np.array([r[0] for r in reference(rounded)])
    possible = np.isfinite(want)
    for row in got[:2]:
        np.testing.assert_allclose(row[GOOD][possible], want[possible], rtol=4e-6)
    np.testing.assert_allclose(got[0, IMPOSSIBLE], out["loss"][IMPOSSIBLE], rtol=1e-6)
    assert np.isnan(got[2]).all()
    # optax takes the log-softmax in bfloat16: errors of about 1e-3 on the same inputs.
    same = np.isin(GOOD, SAME_AS_OPTAX) & possible
    theirs = out["optax_bf16"][GOOD][same]
    assert np.abs(theirs - want[same]).max() > 1e-3  # jaxloss: within 4e-6 relative


# ------------------------------------------------------------------ static errors

X0, PAD0, LAB0, LPAD0 = XT, PAD_T, LT, LPAD_T
STATIC_ERRORS = [
    ((X0[0, 0], PAD0[0, 0], LAB0[0], LPAD0[0]), {}, ValueError, r"`logits` must have shape \(B, T, K\)"),  # noqa: E501
    ((LAB0[..., None], PAD0[:, :3], LAB0, LPAD0), {}, TypeError, r"`logits` must be a floating"),
    ((X0 + 0j, PAD0, LAB0, LPAD0), {}, TypeError, r"`logits` must be real"),
    ((X0[..., :0], PAD0, LAB0, LPAD0), {}, ValueError, r"`logits` must have at least one class"),
    ((X0[:, :0], PAD0[:, :0], LAB0, LPAD0), {}, ValueError, r"`logits` must have at least one frame"),  # noqa: E501
    ((X0, PAD0[:, :4], LAB0, LPAD0), {}, ValueError, r"`logit_paddings` must have shape logits.shape\[:-1\] = \(3, 5\)"),  # noqa: E501
    ((X0, PAD0.T, LAB0, LPAD0), {}, ValueError, r"`logit_paddings` must have shape"),
    ((X0, PAD0, LAB0.astype(float), LPAD0), {}, TypeError, r"`labels` must be an integer array"),
    ((X0, PAD0, LAB0[:2], LPAD0[:2]), {}, ValueError, r"`labels` must have shape \(B, N\) with B = logits.shape\[0\]"),  # noqa: E501
    ((X0, PAD0, LAB0[0], LPAD0[0]), {}, ValueError, r"`labels` must have shape \(B, N\)"),
    ((X0[0], PAD0[0], LAB0, LPAD0), {}, ValueError, r"`labels` must have shape \(N,\) for \(T, K\)"),  # noqa: E501
    ((X0, PAD0, LAB0, LPAD0[:, :2]), {}, ValueError, r"`label_paddings` must have shape labels.shape = \(3, 3\)"),  # noqa: E501
    ((X0, PAD0 + 0j, LAB0, LPAD0), {}, TypeError, r"`logit_paddings` must be real"),
    ((X0, PAD0, LAB0, LPAD0), {"blank_id": 4}, ValueError, r"`blank_id` must lie in \[0, 3\]; got 4"),  # noqa: E501
    ((X0, PAD0, LAB0, LPAD0), {"blank_id": -1}, ValueError, r"`blank_id` must lie in \[0, 3\]"),
    ((X0, PAD0, LAB0, LPAD0), {"blank_id": 1.0}, TypeError, r"`blank_id` must be an integer"),
    ((X0, PAD0, LAB0, LPAD0), {"log_epsilon": 0.0}, ValueError, r"`log_epsilon` must be a finite negative"),  # noqa: E501
    ((X0, PAD0, LAB0, LPAD0), {"log_epsilon": -INF}, ValueError, r"`log_epsilon` must be a finite"),  # noqa: E501
    ((X0, PAD0, LAB0, LPAD0), {"log_epsilon": np.ones(2)}, ValueError, r"`log_epsilon` must be a scalar"),  # noqa: E501
]  # fmt: skip


@pytest.mark.parametrize("case", range(len(STATIC_ERRORS)))
def test_static_errors(case):
    args, kwargs, exc, match = STATIC_ERRORS[case]
    for fn, name in ((CTC, "ctc_loss"), (CTCF, "ctc_loss_with_forward_probs")):
        with pytest.raises(exc, match=rf"jaxloss.{name}: " + match):
            fn(*args, **kwargs)
        with pytest.raises(exc, match=rf"jaxloss.{name}: " + match):  # at trace time too
            jax.jit(lambda *a, fn=fn: fn(*a, **kwargs))(*args)


# ------------------------------------------------------------------ run-time values and checked


def test_checked_raises():
    """`jaxloss.checked` names each bad value (one compilation: same shapes, new values)."""
    x, pad, labels, lab_pad = XT[:2], PAD_T[:2], LT[:2], LPAD_T[:2]
    checked = jaxloss.checked(CTC)
    chex.assert_tree_all_finite(checked(x, pad, labels, lab_pad))  # good input passes
    cases = [
        ((x, pad, np.array([[1, 0, 2], [3, 1, 0]]), lab_pad), r"ctc_loss: `labels` must lie in "
         r"\[0, 4\) and differ from blank_id = 0 where not padded"),
        ((x, pad, labels, np.array([[1.0, 0, 0], [0, 0, 1]])), r"`label_paddings` must be 0 .* "
         r"right-padded"),
        ((x, pad + 0.5, labels, lab_pad), r"`logit_paddings` must be 0 \(a frame\) or 1"),
        ((np.where(np.arange(4) == 2, np.nan, x), pad, labels, lab_pad),
         r"`logits` contains NaN or \+inf"),
    ]  # fmt: skip
    for args, match in cases:
        with pytest.raises(checkify.JaxRuntimeError, match=match):
            checked(*args)
