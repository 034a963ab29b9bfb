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


def value_grad_alphas(fn):
    """(loss, alphas) and the gradient of the summed loss, in one forward and backward pass."""

    def total(x, *rest):
        loss, blank, label = fn(x, *rest)
        return loss.sum(), (loss, blank, label)

    return jax.value_and_grad(total, has_aux=True)


@pytest.mark.x64
def test_float64_matches_torch_and_numpy_alphas():
    """torch's three sequences and six random ones in one float64 batch: values and gradients
    against torch, every reachable forward probability against the NumPy recursion."""
    x, pad, labels, lab_pad = random_batch(1, 6, 5, 4, 3)
    x, pad = np.concatenate([XT, x]), np.concatenate([PAD_T, pad])
    labels, lab_pad = np.concatenate([LT, labels]), np.concatenate([LPAD_T, lab_pad])

    def run(x):
        return value_grad_alphas(CTCF)(x, pad, labels, lab_pad), CTC(
            x[:3], PAD_T, LT3, LPAD_T, blank_id=3
        )

    ((_, (loss, blank, label)), grad), loss3 = jax.device_get(jax.jit(run)(x))
    np.testing.assert_allclose(loss[:2], LOSS_T[:2], rtol=1e-13)
    np.testing.assert_allclose(grad[:2], GRAD_T, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(loss3[:2], LOSS_T_BLANK3[:2], rtol=1e-13)
    # Impossible: torch's inf becomes -log_epsilon plus a few, like optax.
    assert 1e5 - 10 < loss[2] < 1e5 + 10 and 1e5 - 10 < loss3[2] < 1e5 + 10
    chex.assert_tree_all_finite(grad)
    lengths = (lab_pad == 0).sum(1)
    for b in range(len(x)):
        want, want_blank, want_label = np_ctc(x[b], pad[b], labels[b], lab_pad[b])
        n = lengths[b]
        for ours, ref in ((blank[:, b, : n + 1], want_blank), (label[:, b, :n], want_label)):
            reach = np.isfinite(ref)
            np.testing.assert_allclose(ours[reach], ref[reach], rtol=1e-12)
            assert (ours[~reach] < -5e4).all()  # log 0 stands at about log_epsilon
        if np.isfinite(want):
            np.testing.assert_allclose(loss[b], want, rtol=1e-12)


# One float32 batch, T = 8 frames, K = 5 classes, N = 3 labels: random rows, then edge cases.
NUM_RANDOM = 8
XB, PADB, LABB, LPADB = random_batch(0, NUM_RANDOM + 9, 8, 5, 3)
XB = XB.astype(np.float32)
LPADB[NUM_RANDOM:] = 0
EDGE = {name: NUM_RANDOM + i for i, name in enumerate(
    ["garbage", "minus_inf", "impossible", "no_frame", "nothing", "label_5", "label_blank",
     "not_right_padded", "half_padding"]
)}  # fmt: skip
r = EDGE["garbage"]  # NaN and +-inf in padded frames
PADB[r], XB[r, 2], XB[r, 7] = 0, np.nan, [INF, -INF, 0.0, np.nan, 1.0]
PADB[r, [2, 7]] = 1
r = EDGE["minus_inf"]  # class 4 off in some frames though it is a label; class 3 off everywhere
PADB[r], LABB[r], XB[r, 3:6, 4], XB[r, :, 3] = 0, [4, 1, 4], -INF, -INF
r = EDGE["impossible"]  # [2, 2, 2] needs 5 frames, has 4
PADB[r], LABB[r] = [0, 1, 0, 1, 0, 1, 0, 1], [2, 2, 2]
r = EDGE["no_frame"]  # two labels, every frame padded
PADB[r], LPADB[r, 2] = 1, 1
r = EDGE["nothing"]  # no label, no frame: probability 1
PADB[r], LPADB[r] = 1, 1
LABB[EDGE["label_5"], 1] = 5  # out of range: optax reads it as probability 1
LABB[EDGE["label_blank"], 0] = 0  # the blank
LPADB[EDGE["not_right_padded"]] = [0, 1, 0]  # optax silently scores the first two labels
PADB[EDGE["half_padding"], 3] = 0.5  # optax mixes the frame in by half
BAD = [EDGE[k] for k in ("label_5", "label_blank", "not_right_padded", "half_padding")]
GOOD = np.setdiff1d(np.arange(len(XB)), BAD)
NAN_IN_OPTAX = [EDGE["garbage"], EDGE["minus_inf"]]


def batch_reference():
    x = np.where(PADB[..., None] == 1, 0.0, XB.astype(np.float64))  # ignoring padded frames
    return np_ctc_batch(x[GOOD], PADB[GOOD], LABB[GOOD], LPADB[GOOD])


@jax.jit
@chex.assert_max_traces(n=1)
def float32_program(x):
    args = (PADB, LABB, LPADB)
    n = NUM_RANDOM
    return {
        "ours": value_grad_alphas(CTCF)(x, *args),
        "optax": value_grad_alphas(optax.ctc_loss_with_forward_probs)(x, *args),
        "vmap": jax.vmap(CTCF)(x[:n], PADB[:n], LABB[:n], LPADB[:n]),  # one sequence at a time
        "half": [CTC(x[:n].astype(h), PADB[:n], LABB[:n], LPADB[:n]) for h in HALF],
        "small_eps": CTC(x, *args, log_epsilon=-50.0),
    }


HALF = (jnp.float16, jnp.bfloat16)


@pytest.fixture(scope="module")
def f32():
    float32_program(XB + 1)  # other values: no new trace
    return jax.device_get(float32_program(XB))


def test_float32_matches_optax_values_and_gradients(f32):
    (_, (loss, blank, label)), grad = f32["ours"]
    (_, want), want_grad = f32["optax"]
    for a in (loss, blank, label, grad):
        assert a.dtype == np.float32
    chex.assert_shape([loss, blank, label], [(17,), (8, 17, 4), (8, 17, 3)])
    same = np.setdiff1d(GOOD, NAN_IN_OPTAX)
    np.testing.assert_allclose(loss[same], want[0][same], rtol=2e-6)
    # Unreachable states sit near log_epsilon = -1e5, where float32's spacing is 0.008.
    np.testing.assert_allclose(blank[:, same], want[1][:, same], rtol=2e-6, atol=2e-5)
    np.testing.assert_allclose(label[:, same], want[2][:, same], rtol=2e-6, atol=2e-5)
    possible = np.setdiff1d(same, [EDGE["impossible"], EDGE["no_frame"]])
    np.testing.assert_allclose(grad[possible], want_grad[possible], atol=2e-6)
    # Impossible: gradients from differences of states near -1e5 (float32 spacing 0.008).
    np.testing.assert_allclose(grad[same], want_grad[same], atol=5e-3)


def test_float32_matches_numpy(f32):
    loss = f32["ours"][0][1][0]
    ref = batch_reference()
    possible = np.isfinite(ref)
    np.testing.assert_array_equal(GOOD[~possible], [EDGE["impossible"], EDGE["no_frame"]])
    np.testing.assert_allclose(loss[GOOD][possible], ref[possible], rtol=2e-6)
    assert loss[EDGE["nothing"]] == 0.0


def test_impossible_alignments_finite_with_finite_gradients(f32):
    """torch gives inf; jaxloss, like optax, about -log_epsilon, and a finite gradient."""
    (_, (loss, _, _)), grad = f32["ours"]
    impossible = [EDGE["impossible"], EDGE["no_frame"]]
    assert (np.abs(loss[impossible] - 1e5) < 20).all()
    small = f32["small_eps"][impossible]
    assert (small > 30).all() and (small < 70).all()  # log_epsilon = -50
    chex.assert_tree_all_finite(grad)
    np.testing.assert_array_equal(grad[EDGE["no_frame"]], 0.0)
    np.testing.assert_array_equal(grad[EDGE["nothing"]], 0.0)


def test_padded_frames_and_minus_inf_logits_where_optax_gives_nan(f32):
    (_, (loss, _, _)), grad = f32["ours"]
    (_, (want, _, _)), want_grad = f32["optax"]
    g, m = EDGE["garbage"], EDGE["minus_inf"]
    assert np.isnan(want[[g, m]]).all() and np.isnan(want_grad[[g, m]]).all()
    assert np.isfinite(loss[[g, m]]).all()  # and equal to NumPy (test_float32_matches_numpy)
    np.testing.assert_array_equal(grad[g, [2, 7]], 0.0)
    np.testing.assert_array_equal(grad[m][np.isinf(XB[m])], 0.0)


def test_bad_values_give_nan_where_optax_is_silently_wrong(f32):
    (_, (loss, blank, label)), _ = f32["ours"]
    (_, (want, _, _)), _ = f32["optax"]
    assert np.isnan(loss[BAD]).all() and np.isfinite(loss[GOOD]).all()
    assert np.isnan(blank[:, BAD]).all() and np.isnan(label[:, BAD]).all()
    assert np.isfinite(want[BAD]).all()  # optax: a finite number for each
    r = EDGE["not_right_padded"]
    first_two = np_ctc(XB[r].astype(np.float64), PADB[r], LABB[r, :2], np.zeros(2))[0]
    np.testing.assert_allclose(want[r], first_two, rtol=2e-6)


def test_one_sequence_vmap_and_half_precision(f32):
    (_, (loss, blank, label)), _ = f32["ours"]
    n = NUM_RANDOM
    chex.assert_trees_all_close(f32["vmap"], (loss[:n], blank[:, :n].swapaxes(0, 1),
                                              label[:, :n].swapaxes(0, 1)), rtol=1e-6)  # fmt: skip
    ref = batch_reference()[:n]  # float32 arithmetic on half-precision inputs
    for h, got in zip(HALF, f32["half"]):
        assert got.dtype == np.float32
        x = np.asarray(XB[:n].astype(h), np.float64)
        np.testing.assert_allclose(got, np_ctc_batch(x, PADB[:n], LABB[:n], LPADB[:n]), rtol=4e-6)
    del ref


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
    """`jaxloss.checked` names each bad value; the other rows are left to run."""
    x, pad, labels, lab_pad = XB[:2], PADB[:2], LABB[:2].copy(), LPADB[:2].copy()
    labels[1, 0] = 0
    lab_pad[1] = 0
    checked = jaxloss.checked(CTC)
    with pytest.raises(checkify.JaxRuntimeError, match=r"ctc_loss: `labels` must lie in \[0, 5\)"):
        checked(x, pad, labels, lab_pad)
    with pytest.raises(checkify.JaxRuntimeError, match=r"`label_paddings` must be 0 .* right-"):
        checked(x, pad, LABB[:2], np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    nan_x = x.copy()
    nan_x[1, 0, 0] = np.nan
    with pytest.raises(checkify.JaxRuntimeError, match=r"`logits` contains NaN or \+inf"):
        jaxloss.checked(CTCF)(nan_x, np.zeros((2, 8)), LABB[:2], LPADB[:2])
    with pytest.raises(checkify.JaxRuntimeError, match=r"`log_epsilon` must be a finite negative"):
        jaxloss.checked(jax.jit(lambda e: CTC(x, PADB[:2], LABB[:2], LPADB[:2], log_epsilon=e)))(
            1.0
        )
    chex.assert_tree_all_finite(checked(x, PADB[:2], LABB[:2], LPADB[:2]))
