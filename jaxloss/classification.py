"""Classification losses: sigmoid and softmax cross entropy, integer labels, label smoothing, focal.

Every loss takes one sample's logits (class axis last for the softmax losses) and labels, and
returns one value per position: the sigmoid losses are elementwise, the softmax losses reduce the
class axis. All are stable in log space: logits of +-inf give the limit of the loss (or NaN where
the limit is undefined), and gradients stay finite wherever the loss is finite.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_derivatives import SymbolicZero

from jaxloss import _checks

# ------------------------------------------------------------------------------- shared pieces


def _hyper(fn: str, name: str, value: Any, dtype: Any, *, low: float, high: float | None = None):
    """A hyperparameter as an array of `dtype`: out of range raises if known at trace time, else
    it becomes NaN (and `jaxloss.checked` raises)."""
    ok = _checks.hyperparameter_ok(fn, name, value, low=low, high=high)
    return jnp.where(ok, jnp.asarray(value, dtype), jnp.nan)


def _scalar_hyper(fn: str, name: str, value: Any, dtype: Any, **bounds):
    if np.ndim(value) != 0:
        raise ValueError(f"jaxloss.{fn}: `{name}` must be a scalar; got shape {np.shape(value)}.")
    return _hyper(fn, name, value, dtype, **bounds)


def _per_class(fn, name, value, shape, dtype, *, allow_scalar, low, high=None):
    """A scalar (if allowed) or per-class (C,) hyperparameter, broadcast to `shape` (no implicit
    rank promotion anywhere else)."""
    v = _hyper(fn, name, value, dtype, low=low, high=high)
    if v.ndim or not allow_scalar:
        if not shape:
            raise ValueError(
                f"jaxloss.{fn}: `{name}` must be a scalar when `logits` is a scalar; got shape "
                f"{v.shape}."
            )
        _checks.class_vector_shape(fn, name, v, shape[-1])
    return jnp.broadcast_to(v, shape)


def _probability_labels(fn: str, labels: jax.Array) -> jax.Array:
    """Labels outside [0, 1] become NaN (and `jaxloss.checked` raises)."""
    _checks.probabilities(fn, "labels", labels)
    return jnp.where((labels >= 0) & (labels <= 1), labels, jnp.nan)


def _float_inputs(fn: str, logits: Any, labels: Any, *, class_axis: bool):
    """Floating logits and probability labels of the same shape, in their common dtype."""
    logits, labels = _checks.float_pair(fn, "logits", logits, "labels", labels)
    if class_axis:
        _checks.has_class_axis(fn, "logits", logits)
    return logits, labels, logits.dtype


def _times(c: jax.Array, v: jax.Array) -> jax.Array:
    """c * v with 0 * inf = 0 (a zero weight takes no part of an infinite term) but 0 * NaN = NaN
    (a zero weight never hides a NaN input)."""
    return c * jnp.where((c == 0) & jnp.isinf(v), 0, v)  # d/dc stays v where v is finite


def _smooth(labels: jax.Array, eps: jax.Array, num_classes: Any) -> jax.Array:
    return (1 - eps) * labels + eps / num_classes


def _modulating_factor(log_q: jax.Array, gamma: jax.Array) -> jax.Array:
    """q**gamma from log q, with 0**0 = 1 and no gradient through log q = -inf.

    Through log q the derivative is gamma * q**gamma * d(log q), finite even for gamma < 1 where
    d(q**gamma)/dq is infinite at q = 0 (torchvision's NaN)."""
    zero = log_q == -jnp.inf
    safe = jnp.where(zero, 0, log_q)
    return jnp.where(zero, (gamma == 0).astype(log_q.dtype), jnp.exp(gamma * safe))


# ------------------------------------------------------------------------------- sigmoid core
# XLA:CPU fuses a forward value into the reduction that consumes it (the user's sum, a softmax's
# max and sum) only without selects and compares: each `where` feeding a reduction becomes an
# N x C temporary. So the softmax losses' reductions are select-free (min/max, NaN from a sqrt of
# a negative), the sigmoid losses end in a single select (XLA then writes their value in one
# elementwise pass that the sum reads), and other selects live in the gradient's elementwise pass.


def _mul_0inf(a: jax.Array, u: jax.Array) -> jax.Array:
    """a * u for a >= 0, u in [0, inf], with 0 * inf = 0 and NaN kept, without a select.

    a * min(u, max) is exact for finite u; the second term adds inf where u = inf and a > 0 (any
    normal a: a * max * max overflows; a subnormal a gives a huge finite value instead). That term
    has no derivative: differentiated, a's tangent times max overflows and meets min's 0 (NaN in
    forward-over-forward derivatives through labels), and where u = inf the loss is inf anyway."""
    big = jnp.finfo(u.dtype).max
    finite = jnp.minimum(u, big)
    return a * finite + lax.stop_gradient(jnp.minimum(a * big, u - finite) * big)


def _nan_outside_01(y: jax.Array) -> jax.Array:
    """0 where y lies in [0, 1], NaN elsewhere (sqrt of y - y^2 < 0), without a select; added to
    a forward value only, so the labels the gradient reads stay one input, not a new array."""
    return lax.stop_gradient(0 * jnp.sqrt(y - y * y))


def _abs(x: jax.Array) -> jax.Array:
    # |x| through `where`, not `abs`: its derivative at 0 is a branch's (1), not abs's 0, so second
    # derivatives (Hessian-vector products) are right at x = 0, where a zero-initialised model is.
    return jnp.where(x >= 0, x, -x)


def _sigmoids(x: jax.Array):
    """sigmoid(x) and sigmoid(-x), both accurate (no 1 - sigmoid), finite at x = +-inf."""
    e = jnp.exp(-_abs(x))
    r = 1 / (1 + e)
    pos = x >= 0
    return jnp.where(pos, r, e * r), jnp.where(pos, e * r, r)


def _softplus_parts(x: jax.Array):
    """log1p(exp(-|x|)), max(-x, 0) and max(x, 0): softplus(-x) = t + u_neg = -log sigmoid(x),
    softplus(x) = t + u_pos = -log sigmoid(-x)."""
    pos = x >= 0  # branches, not max(x, 0), whose derivative at 0 is 1/2 (see _abs)
    return jnp.log1p(jnp.exp(-_abs(x))), jnp.where(pos, 0, -x), jnp.where(pos, x, 0)


def _bce_value(x, a, b, factor=None, bad=None):
    """factor * (a softplus(-x) + b softplus(x)) = -factor [a log sigmoid(x) + b log sigmoid(-x)],
    with 0 * inf = 0; plus `bad` (0, or NaN for a label outside [0, 1]) if given."""
    t, u_neg, u_pos = _softplus_parts(x)
    finite = (a + b) * t
    raw = finite + a * u_neg + b * u_pos
    if factor is not None:
        finite, raw = factor * finite, factor * raw
    if bad is not None:
        # Added before the select, not after: XLA:CPU's reduction fusion takes no broadcast
        # constant, so a term added after would store its zeros as an N x C array.
        finite, raw = finite + bad, raw + bad
    # At most one of u_neg, u_pos is non-zero, so NaN in `raw` with x not NaN is 0 * inf, and the
    # finite part is the value (a NaN a or b stays NaN there). One select, and the last operation:
    # XLA then writes the loss in one elementwise pass that a caller's sum reads (fused into the
    # sum instead, each operand of a select would be an N x C temporary).
    return jnp.where(jnp.isnan(raw) & ~jnp.isnan(x), finite, raw)


@jax.custom_jvp
def _bce(x: jax.Array, y: jax.Array, pw: jax.Array, bad: jax.Array) -> jax.Array:
    """-[pw y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))] + bad, all arguments of one shape;
    `bad` (from `_nan_outside_01`) has no derivative."""
    return _bce_value(x, pw * y, 1 - y, bad=bad)


def _bce_jvp(primals, tangents):
    x, y, pw, bad = primals
    tx, ty, tpw, _ = tangents
    out = _bce(x, y, pw, bad)
    t = jnp.zeros_like(out)
    if not isinstance(tx, SymbolicZero):
        # d/dx = (1 - y) sigmoid(x) - pw y sigmoid(-x), finite at x = +-inf. Recomputed from x
        # behind a barrier: shared with the forward value it would be an N x C temporary.
        sig_pos, sig_neg = _sigmoids(lax.optimization_barrier(x))
        t = t + ((1 - y) * sig_pos - pw * y * sig_neg) * tx
    if not isinstance(ty, SymbolicZero) or not isinstance(tpw, SymbolicZero):
        # Label and weight tangents only when asked for: d/dy is infinite at x = +-inf.
        t_, u_neg, u_pos = _softplus_parts(x)
        sp_neg, sp_pos = t_ + u_neg, t_ + u_pos
        if not isinstance(ty, SymbolicZero):
            t = t + (pw * sp_neg - sp_pos) * ty
        if not isinstance(tpw, SymbolicZero):
            t = t + _times(y, sp_neg) * tpw
    return out, t


_bce.defjvp(_bce_jvp, symbolic_zeros=True)


def _focal_pow(q: jax.Array, gamma: Any) -> jax.Array:
    """q**gamma for q in [0, 1] with 0**0 = 1; a whole-number Python gamma is `integer_pow`
    (multiplications, no exp/log)."""
    if isinstance(gamma, (int, float)) and float(gamma).is_integer():
        return lax.integer_pow(q, int(gamma))
    return jnp.power(q, gamma)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _focal(static_gamma, weighted, x, y, gamma, alpha, bad):
    """alpha_t (1 - p_t)**gamma bce(x, y) + bad, p = sigmoid(x), p_t = p y + (1 - p)(1 - y),
    alpha_t = alpha y + (1 - alpha)(1 - y) (1 unless `weighted`); gamma is the Python number
    `static_gamma` unless that is None. alpha_t is a factor inside the core, not outside: the
    value stays one elementwise pass (an outside product would be an N x C temporary)."""
    g = gamma if static_gamma is None else static_gamma
    factor = _focal_pow(_one_minus_pt(x, y), g)
    if weighted:
        factor = _alpha_t(alpha, y) * factor
    return _bce_value(x, y, 1 - y, factor, bad)


def _alpha_t(alpha, y):
    return alpha * y + (1 - alpha) * (1 - y)


def _one_minus_pt(x, y):
    # 1 - p_t = y sigmoid(-x) + (1 - y) sigmoid(x): a sum of non-negative terms, so accurate where
    # 1 - p_t is tiny (no cancellation).
    sig_pos, sig_neg = _sigmoids(x)
    return y * sig_neg + (1 - y) * sig_pos


def _focal_jvp(static_gamma, weighted, primals, tangents):
    x, y, gamma, alpha, bad = primals
    tx, ty, tgamma, talpha, _ = tangents
    out = _focal(static_gamma, weighted, x, y, gamma, alpha, bad)
    gamma = gamma if static_gamma is None else static_gamma
    # recomputed in the gradient pass (see _bce_jvp)
    xb, yb, ab = lax.optimization_barrier((x, y, alpha))
    sig_pos, sig_neg = _sigmoids(xb)
    q = yb * sig_neg + (1 - yb) * sig_pos
    q_g = _focal_pow(q, gamma)
    ce = _bce_value(xb, yb, 1 - yb)
    a_t = _alpha_t(ab, yb) if weighted else 1
    # d(q**gamma) = gamma q**(gamma - 1) dq, written q**gamma * gamma * dq / q where gamma may be
    # below 1 (finite: dq carries a factor that q has); 0 where q = 0.
    if isinstance(gamma, (int, float)) and float(gamma).is_integer() and gamma >= 1:
        d_qg = gamma * _focal_pow(q, gamma - 1)
    else:
        d_qg = jnp.where(q > 0, gamma * q_g / jnp.where(q > 0, q, 1), 0)
    t = jnp.zeros_like(out)
    if not isinstance(tx, SymbolicZero):
        dq = (1 - 2 * yb) * sig_pos * sig_neg
        dce = (1 - yb) * sig_pos - yb * sig_neg
        # dq = 0 where ce = inf (x = +-inf): 0, so alpha_t = 0 leaves a finite gradient there.
        t = t + a_t * (_times(d_qg * dq, ce) + q_g * dce) * tx
    if not isinstance(ty, SymbolicZero):
        t_, u_neg, u_pos = _softplus_parts(xb)
        dy = a_t * (d_qg * (sig_neg - sig_pos) * ce + q_g * (u_neg - u_pos))
        if weighted:
            dy = dy + (2 * ab - 1) * _bce_value(xb, yb, 1 - yb, q_g)
        t = t + dy * ty
    if not isinstance(tgamma, SymbolicZero):
        log_q = jnp.log(jnp.where(q > 0, q, 1))
        t = t + a_t * _times(q_g * ce, log_q) * tgamma
    if weighted and not isinstance(talpha, SymbolicZero):
        t = t + (2 * yb - 1) * _bce_value(xb, yb, 1 - yb, q_g) * talpha
    return out, t


_focal.defjvp(_focal_jvp, symbolic_zeros=True)


def _sigmoid_inputs(fn: str, logits: Any, labels: Any):
    logits, labels, dtype = _float_inputs(fn, logits, labels, class_axis=False)
    _checks.not_nan(fn, "logits", logits)
    _checks.probabilities(fn, "labels", labels)
    return logits, labels, dtype


# ------------------------------------------------------------------------------- softmax core


def _softmax_terms(z: jax.Array):
    """shifted = z - max z, e = exp(shifted), total = sum e (keepdims) and log(total): log p =
    shifted - log(total). One exp per element."""
    shifted = z - lax.stop_gradient(jnp.max(z, axis=-1, keepdims=True))
    e = jnp.exp(shifted)
    total = jnp.sum(e, axis=-1, keepdims=True)
    return shifted, e, total, jnp.log(total)


def _max_and_sum(z: jax.Array):
    """Per position: m = max z and s = sum exp(z - m) (two reductions over z, nothing stored)."""
    # m only shifts: no derivative through it (softmax does not depend on it), so the softmax
    # the gradient rebuilds from (m, 1/s) differentiates right, ties in the max too.
    m = lax.stop_gradient(jnp.max(z, axis=-1))
    return m, jnp.sum(jnp.exp(z - m[..., None]), axis=-1)


def _softmax_from(z: jax.Array, m: jax.Array, s: jax.Array) -> jax.Array:
    """softmax(z) from the residuals m and 1/s (not from logsumexp: exp(z - lse) loses float32
    digits where max z is large). XLA reuses the forward pass's exp(z - m): it writes it straight
    into the gradient's buffer (one exp per element, no temporary).
    """
    return jnp.exp(z - m[..., None]) * (1 / s)[..., None]


def _one_hot(labels: jax.Array, shape: tuple[int, ...], dtype: Any) -> jax.Array:
    """One-hot of `labels` by comparison with an iota: fused where it is used, never stored."""
    iota = lax.broadcasted_iota(labels.dtype, shape, len(shape) - 1)
    return (iota == labels[..., None]).astype(dtype)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _int_ce(cfg, z, labels, safe, nan_if_bad, keep, eps, w):
    """(1 - eps) w_y (-log p_y) + eps / C sum_c w_c (-log p_c), p = softmax(z).

    cfg = (smooth, weighted): static, so plain cross entropy skips the smoothing reduction and the
    weights. `labels` as given (the gradient's one-hot: an out-of-range label matches no class),
    `safe` in [0, C) (for gathers); `nan_if_bad` (0 or NaN per position) makes a bad label's
    value NaN. `keep` (or None) zeroes the gradient of ignored positions whatever their logits.
    Per-position selects stay out of the gradient's N x C pass: XLA would redo them per element.
    """
    return _int_ce_parts(cfg, z, safe, nan_if_bad, eps, w)[0]


def _int_ce_parts(cfg, z, labels, nan_if_bad, eps, w):
    smooth, weighted = cfg
    m, s = _max_and_sum(z)
    log_s = jnp.log(s)
    nll = (m - _take(z, labels)) + log_s + nan_if_bad  # gathered from the raw logits
    if weighted:
        nll = _times(w[labels], nll)
    if not smooth:
        return nll, m, s, log_s
    num_classes = z.shape[-1]
    # -log p_c = gap_c + log s, gap >= 0 (no cancellation). The barrier keeps XLA from sharing
    # the broadcast of m with the exp pass, which would store it as an N x C array.
    gap = lax.optimization_barrier(m)[..., None] - z
    if weighted:
        total = jnp.sum(w) * log_s + jnp.sum(_times(jnp.broadcast_to(w, gap.shape), gap), axis=-1)
    else:
        total = num_classes * log_s + jnp.sum(gap, axis=-1)
    return _times(1 - eps, nll) + _times(eps / num_classes, total), m, s, log_s


def _int_ce_jvp(cfg, primals, tangents):
    smooth, weighted = cfg
    z, labels, safe, nan_if_bad, keep, eps, w = primals
    tz, _, _, _, _, teps, tw = tangents
    out, m, s, log_s = _int_ce_parts(cfg, z, safe, nan_if_bad, eps, w)
    t = jnp.zeros_like(out)
    num_classes = z.shape[-1]
    if not isinstance(tz, SymbolicZero):
        # d/dz_c = A p_c - B [c = y] - eps/C w_c: one fused pass over z in reverse mode.
        e = eps if smooth else 0
        p = _softmax_from(z, m, s)
        onehot = _one_hot(labels, z.shape, z.dtype)
        if weighted:
            w_y = w[safe][..., None]
            big_w = jnp.sum(w) * e / num_classes
            g = ((1 - e) * w_y + big_w) * p - (1 - e) * w_y * onehot
        else:
            g = p - (1 - e) * onehot  # (1 - eps) + eps = 1
        if smooth:
            g = g - e / num_classes * (jnp.broadcast_to(w, z.shape) if weighted else 1)
        if keep is not None:
            g = jnp.where(keep[..., None], g, 0)
        t = t + jnp.sum(g * tz, axis=-1)
    if (smooth and not isinstance(teps, SymbolicZero)) or (
        weighted and not isinstance(tw, SymbolicZero)
    ):
        # Hyperparameter tangents (rare): from the log-softmax written out.
        neg_logp = (m[..., None] - z) + log_s[..., None]
        nll = _take(neg_logp, safe)
        e = eps if smooth else 0
        if smooth and not isinstance(teps, SymbolicZero):
            ww = jnp.broadcast_to(w, z.shape) if weighted else jnp.ones(z.shape, z.dtype)
            total = jnp.sum(_times(ww, neg_logp), axis=-1)
            w_y = w[safe] if weighted else jnp.ones(labels.shape, z.dtype)
            t = t + (total / num_classes - _times(w_y, nll)) * teps
        if weighted and not isinstance(tw, SymbolicZero):
            onehot = _one_hot(safe, z.shape, z.dtype)
            per_class = _times(e / num_classes, neg_logp) + (1 - e) * _times(onehot, neg_logp)
            t = t + jnp.sum(_times(jnp.broadcast_to(tw, z.shape), per_class), axis=-1)
    return out, t


_int_ce.defjvp(_int_ce_jvp, symbolic_zeros=True)


@jax.custom_jvp
def _prob_ce(z: jax.Array, v: jax.Array, nan_if_bad: jax.Array) -> jax.Array:
    """sum_c v_c (-log softmax(z)_c) for non-negative (weighted, smoothed) labels v, 0 * inf = 0;
    NaN where the elementwise `nan_if_bad` (0 or NaN, no derivative) has a NaN."""
    return _prob_ce_parts(z, v, nan_if_bad)[0]


def _prob_ce_parts(z, v, nan_if_bad):
    m, s = _max_and_sum(z)
    # The value reads the statistics through a barrier: without it XLA:CPU fuses max, sum-exp
    # and this sum into one reduction graph that stores N x C intermediates (2-4x slower), or
    # shares the broadcast of m with the gradient's exp pass and stores that.
    m_value, s_value = lax.optimization_barrier((m, s))
    log_s = jnp.log(s_value)
    # -log p_c = (m - z_c) + log s, both >= 0: no cancellation.
    neg_logp = (m_value[..., None] - z) + log_s[..., None]
    # One reduction for the value and the bad-label check: two would also make one graph.
    return jnp.sum(_mul_0inf(v, neg_logp) + nan_if_bad, axis=-1), m, s, log_s


def _prob_ce_jvp(primals, tangents):
    z, v, nan_if_bad = primals
    tz, tv, _ = tangents
    out, m, s, log_s = _prob_ce_parts(z, v, nan_if_bad)
    t = jnp.zeros_like(out)
    if not isinstance(tz, SymbolicZero):
        g = jnp.sum(v, axis=-1)[..., None] * _softmax_from(z, m, s) - v
        t = t + jnp.sum(g * tz, axis=-1)
    if not isinstance(tv, SymbolicZero):
        # d/dv_c = -log p_c, also where v_c = 0 (distillation differentiates through labels).
        t = t + jnp.sum(((m[..., None] - z) + log_s[..., None]) * tv, axis=-1)
    return out, t


_prob_ce.defjvp(_prob_ce_jvp, symbolic_zeros=True)


def _label_log_prob(shifted, log_total, labels):
    """log p of each position's label, without a full log-softmax array."""
    return _take(shifted, labels) - log_total[..., 0]


def _log_one_minus_p(p, e, log_total, at_max):
    """log(1 - p) for softmax probabilities p (every class's, or the label's).

    log1p(-p) is accurate for p <= 1/2. A p > 1/2 is the unique max class's, and for it 1 - p is
    the other classes' sum of e over the total: exact where 1 - p rounds to 0 (p -> 1).
    """
    rest = _rest(e, at_max)
    some = rest > 0
    log_rest = jnp.where(some, jnp.log(jnp.where(some, rest, 1)), -jnp.inf) - log_total
    big = p > 0.5
    return jnp.where(big, log_rest, jnp.log1p(-jnp.where(big, 0, p)))


def _rest(e: jax.Array, at_max: jax.Array) -> jax.Array:
    """The sum of e over the classes that are not at the max (keepdims)."""
    return jnp.sum(jnp.where(at_max, 0, e), axis=-1, keepdims=True)


def _one_minus_p(p, e, total, at_max):
    """1 - p for softmax probabilities p = e / total: 1 - p is exact for p <= 1/2; a p > 1/2 is
    the unique max class's, and its 1 - p is the other classes' sum over the total."""
    big = p > 0.5
    return jnp.where(big, _rest(e, at_max) / total, 1 - p)


def _neg_weighted_sum(weight: jax.Array, logp: jax.Array) -> jax.Array:
    """-sum_c weight_c logp_c with 0 * (-inf) = 0 (a class with zero weight may have logit -inf)."""
    return -jnp.sum(_times(weight, logp), axis=-1)


def _neg_weighted(weight: jax.Array, logp: jax.Array) -> jax.Array:
    return -_times(weight, logp)


def _softmax_inputs(fn, logits, labels):
    logits, labels, dtype = _float_inputs(fn, logits, labels, class_axis=True)
    _checks.non_empty(fn, "logits", logits, axis=-1)
    _checks.softmax_logits(fn, "logits", logits)
    return logits, _probability_labels(fn, labels), dtype


def _integer_inputs(fn, logits, labels, ignore_index, positions=None, classes=None):
    """Checked logits and labels; positions to ignore (0 with zero gradient) and out-of-range
    labels (NaN), with safe stand-ins for both so the gradient stays clean. `positions` (a mask
    of labels' shape) ignores positions too; `classes` (a mask of logits' shape) ignores a
    position with no class selected, and a label on a class it leaves out is bad."""
    logits = _checks.as_logits(fn, "logits", logits)
    labels = _checks.as_integer_labels(fn, "labels", labels)
    _checks.integer_labels_shape(fn, logits, labels)
    _checks.non_empty(fn, "logits", logits, axis=-1)
    if ignore_index is not None:
        # Compared with int32 labels: 2**40 would overflow, True would mean class 1.
        ignore_index = _checks.int32(fn, "ignore_index", ignore_index)
    num_classes = logits.shape[-1]
    ignored = jnp.zeros(labels.shape, bool) if ignore_index is None else labels == ignore_index
    if positions is not None:
        ignored = ignored | ~positions
    if classes is not None:
        ignored = ignored | ~jnp.any(classes, axis=-1)
    bad = ((labels < 0) | (labels >= num_classes)) & ~ignored
    _checks.runtime_check(
        fn, ~bad, f"`labels` has values outside [0, {num_classes}) other than ignore_index."
    )
    left_out = ignored[..., None] if classes is None else ignored[..., None] | ~classes
    _checks.runtime_check(fn, (logits < jnp.inf) | left_out, "`logits` contains NaN or +inf.")
    safe = jnp.where(ignored | bad, 0, labels)
    if classes is not None:
        off = ~_take(classes, safe) & ~ignored & ~bad
        _checks.runtime_check(fn, ~off, "`labels` has a class that `where` leaves out.")
        bad = bad | off
    return logits, labels, safe, ignored, bad


def _integer_result(loss, ignored, bad):
    return jnp.where(ignored, 0, jnp.where(bad, jnp.nan, loss))


def _take(x: jax.Array, labels: jax.Array) -> jax.Array:
    return jnp.take_along_axis(x, labels[..., None], axis=-1)[..., 0]


# ------------------------------------------------------------------ class axis and `where` masks
# The class axis is moved last at trace time, and only when it is not last already: the default
# axis=-1 adds no operation, so its compiled program is the one the tuned core was written for.


def _class_axis(fn: str, axis: Any, logits: Any) -> int | None:
    """`axis` checked (an int in [-ndim, ndim)); its index when it must move, None when it is the
    last axis already (or logits is a scalar, which the class-axis check then reports)."""
    axis = _checks.integer(fn, "axis", axis)
    ndim = jnp.ndim(logits)
    if ndim == 0:
        return None
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"jaxloss.{fn}: `axis` must lie in [{-ndim}, {ndim - 1}] for logits of shape "
            f"{jnp.shape(logits)}; got {axis}."
        )
    axis %= ndim
    return None if axis == ndim - 1 else axis


def _without(shape: tuple[int, ...], axis: int) -> tuple[int, ...]:
    return shape[:axis] + shape[axis + 1 :]


def _last(axis: int | None, x: Any) -> Any:
    return x if axis is None or x is None else jnp.moveaxis(x, axis, -1)


def _class_mask(fn: str, where: Any, shape: tuple[int, ...], axis: int) -> jax.Array | None:
    """`where` as a boolean mask of logits' `shape`: given so (classes to keep), or one entry per
    position (logits' shape without the class `axis`), which keeps or drops a whole position."""
    if where is None:
        return None
    where = jnp.asarray(where)
    positions = _without(shape, axis % len(shape)) if shape else None
    if where.shape not in (shape, positions):
        raise ValueError(
            f"jaxloss.{fn}: `where` must have shape {shape} (logits': classes) or {positions} "
            f"(logits' without the class axis: positions); got {where.shape}."
        )
    if where.dtype != jnp.bool_:
        raise TypeError(f"jaxloss.{fn}: `where` must be a boolean mask; got dtype {where.dtype}.")
    return where if where.shape == shape else jnp.broadcast_to(jnp.expand_dims(where, axis), shape)


def _probability_axis_last(fn, axis, logits, labels, where):
    """Probability-label arguments with the class `axis` moved last (shapes checked first, so an
    error names the shapes the caller gave)."""
    ax = _class_axis(fn, axis, logits)
    if ax is None:
        return logits, labels, _class_mask(fn, where, jnp.shape(logits), -1)
    logits, labels = _checks.real(fn, "logits", logits), _checks.real(fn, "labels", labels)
    _checks.same_shape(fn, "logits", logits, "labels", labels)
    where = _class_mask(fn, where, logits.shape, ax)
    return _last(ax, logits), _last(ax, labels), _last(ax, where)


def _integer_axis_last(fn, axis, logits, labels, where=None):
    """Integer-label logits with the class `axis` moved last; labels have no class axis (optax's
    convention: logits' shape without `axis`). Also `where` checked and split into a mask of
    positions (labels' shape) or of classes (logits' shape, moved too); the other one is None."""
    ax = _class_axis(fn, axis, logits)
    if ax is not None:
        logits = _checks.real(fn, "logits", logits)
        expected = _without(logits.shape, ax)
        if jnp.shape(labels) != expected:
            raise ValueError(
                f"jaxloss.{fn}: `labels` must have logits' shape without its class axis {ax}, "
                f"{expected} (one class index per position); got {jnp.shape(labels)}."
            )
    positions = classes = None
    if where is not None:
        where = jnp.asarray(where)
        shape, label_shape = jnp.shape(logits), jnp.shape(labels)
        if where.shape == shape and where.ndim:
            classes = _last(ax, where)
        elif where.shape == label_shape:
            positions = where
        else:
            raise ValueError(
                f"jaxloss.{fn}: `where` must have shape {label_shape} (labels': positions) or "
                f"{shape} (logits': classes); got {where.shape}."
            )
        if where.dtype != jnp.bool_:
            raise TypeError(
                f"jaxloss.{fn}: `where` must be a boolean mask; got dtype {where.dtype}."
            )
    return _last(ax, logits), positions, classes


def _masked_classes(where, logits, labels, dtype):
    """Classes outside `where` leave the softmax and the sum; a position with none selected
    computes on zeros. Returns logits, labels, the positions kept and their class counts C'."""
    keep = jnp.any(where, axis=-1, keepdims=True)
    # Masked classes' values are never looked at.
    logits = jnp.where(keep, jnp.where(where, logits, -jnp.inf), 0)
    labels = jnp.where(where, labels, 0)
    num_classes = jnp.maximum(jnp.sum(where, axis=-1, keepdims=True), 1).astype(dtype)
    return logits, labels, keep, num_classes


# ------------------------------------------------------------------------------- public API


def sigmoid_binary_cross_entropy(
    logits: Any, labels: Any, *, pos_weight: Any = None, label_smoothing: Any = 0.0
) -> jax.Array:
    """Elementwise binary cross entropy of sigmoid(logits) against (soft) labels.

    `loss = -[pos_weight * y * log sigmoid(x) + (1 - y) * log(1 - sigmoid(x))]` with
    `y = labels * (1 - label_smoothing) + label_smoothing / 2`.

    Args:
      logits: float array of any shape; +-inf allowed (the loss is then 0 or +inf).
      labels: same shape, values in [0, 1] (outside gives NaN).
      pos_weight: None, a scalar or a per-class vector (C,) (logits.shape[-1]), >= 0: weight of
        the positive term, like torch's `BCEWithLogitsLoss(pos_weight=)`.
      label_smoothing: in [0, 1].

    Returns:
      loss of logits' shape; float32 for half-precision inputs.

    Example:
      >>> import jax.numpy as jnp, jaxloss
      >>> jnp.set_printoptions(precision=4)
      >>> print(jaxloss.sigmoid_binary_cross_entropy(
      ...     jnp.array([0.0, 2.0, jnp.inf]), jnp.array([1.0, 0.0, 1.0])))
      [0.6931 2.1269 0.    ]

    Reference: equals `optax.sigmoid_binary_cross_entropy` and
    `torch.nn.functional.binary_cross_entropy_with_logits(reduction='none', pos_weight=)`.
    """
    return _sigmoid_bce(
        "sigmoid_binary_cross_entropy",
        logits,
        labels,
        pos_weight=pos_weight,
        label_smoothing=label_smoothing,
    )


def _sigmoid_bce(fn, logits, labels, *, pos_weight=None, label_smoothing=0.0):
    """`sigmoid_binary_cross_entropy` for the public function `fn` (named in errors)."""
    logits, labels, dtype = _sigmoid_inputs(fn, logits, labels)
    eps = _scalar_hyper(fn, "label_smoothing", label_smoothing, dtype, low=0, high=1)
    pw = 1 if pos_weight is None else pos_weight
    pw = _per_class(fn, "pos_weight", pw, logits.shape, dtype, allow_scalar=True, low=0)
    return _bce(logits, _smooth(labels, eps, 2), pw, _nan_outside_01(labels))


def sigmoid_focal_loss(
    logits: Any, labels: Any, *, alpha: Any = None, gamma: Any = 2.0
) -> jax.Array:
    """Elementwise focal loss of sigmoid(logits) against (soft) labels (Lin et al. 2017).

    `loss = alpha_t * (1 - p_t)**gamma * bce(x, y)` with `p = sigmoid(x)`,
    `p_t = p y + (1 - p)(1 - y)`, `alpha_t = alpha y + (1 - alpha)(1 - y)` (1 if alpha is None),
    with `1 - p_t = y sigmoid(-x) + (1 - y) sigmoid(x)` (a sum of non-negative terms: accurate
    where it is tiny) and a hand-written derivative; a whole-number Python `gamma` is computed by
    multiplication (`lax.integer_pow`).

    Args:
      logits: float array of any shape; +-inf allowed.
      labels: same shape, values in [0, 1] (outside gives NaN).
      alpha: None, or a scalar or per-class vector (C,) in [0, 1]: the weight of positives.
      gamma: >= 0; gamma = 0 with alpha None is `sigmoid_binary_cross_entropy` exactly.

    Returns:
      loss of logits' shape; float32 for half-precision inputs.

    Example:
      >>> import jax.numpy as jnp, jaxloss
      >>> jnp.set_printoptions(precision=4)
      >>> logits, labels = jnp.array([3.0, -1.0]), jnp.array([1.0, 1.0])
      >>> print(jaxloss.sigmoid_focal_loss(logits, labels, alpha=0.25))
      [2.7321e-05 1.7547e-01]

    Reference: Lin et al., "Focal Loss for Dense Object Detection", 2017; equals
    `torchvision.ops.sigmoid_focal_loss(reduction='none')` where that is finite, with finite
    gradients also for gamma < 1 at saturated logits (where torchvision gives NaN).
    """
    fn = "sigmoid_focal_loss"
    logits, labels, dtype = _sigmoid_inputs(fn, logits, labels)
    if isinstance(gamma, (int, float)) and not isinstance(gamma, bool):
        # A Python gamma is static: checked now, and a whole number becomes integer_pow.
        _checks.in_range(fn, "gamma", gamma, low=0)
        static_gamma, gamma = float(gamma), jnp.zeros((), dtype)
    else:
        static_gamma, gamma = None, _scalar_hyper(fn, "gamma", gamma, dtype, low=0)
    a = jnp.zeros((), dtype)
    if alpha is not None:
        a = _per_class(fn, "alpha", alpha, logits.shape, dtype, allow_scalar=True, low=0, high=1)
    bad = _nan_outside_01(labels)
    return _focal(static_gamma, alpha is not None, logits, labels, gamma, a, bad)


def smooth_labels(labels: Any, alpha: Any) -> jax.Array:
    """Label smoothing: `(1 - alpha) * labels + alpha / C`, C = labels.shape[-1].

    Args:
      labels: float array (..., C) of probabilities in [0, 1] (outside gives NaN).
      alpha: smoothing factor in [0, 1].

    Returns:
      smoothed labels of labels' shape; float32 for half-precision inputs.

    Example:
      >>> import jax.numpy as jnp, jaxloss
      >>> jnp.set_printoptions(precision=4)
      >>> print(jaxloss.smooth_labels(jnp.array([0.0, 1.0, 0.0, 0.0]), 0.1))
      [0.025 0.925 0.025 0.025]

    Reference: Mueller et al., "When does label smoothing help?", 2019; equals
    `optax.smooth_labels`.
    """
    fn = "smooth_labels"
    labels = _checks.as_float(fn, "labels", labels)
    _checks.has_class_axis(fn, "labels", labels)
    alpha = _scalar_hyper(fn, "alpha", alpha, labels.dtype, low=0, high=1)
    return _smooth(_probability_labels(fn, labels), alpha, labels.shape[-1])


def softmax_cross_entropy(
    logits: Any,
    labels: Any,
    *,
    label_smoothing: Any = 0.0,
    class_weights: Any = None,
    where: Any = None,
    axis: int = -1,
) -> jax.Array:
    """Cross entropy of softmax(logits) against probability labels, over the class axis.

    `loss = -sum_c w_c y_c log softmax(x)_c` with `y = (1 - label_smoothing) labels +
    label_smoothing / C`; a class whose label (after smoothing) is 0 contributes 0 even if its
    logit is -inf.

    Args:
      logits: float array (..., C) (the class axis at `axis`); -inf allowed (a masked class),
        +inf gives NaN.
      labels: same shape, values in [0, 1] (outside gives NaN).
      label_smoothing: in [0, 1].
      class_weights: None or (C,) non-negative weights w_c.
      where: None or a boolean mask, of logits' shape: classes left out of the softmax and of the
        sum (as in `optax.softmax_cross_entropy(where=)`); smoothing then spreads over the C'
        selected classes. Or of logits' shape without the class axis: positions left out. A
        position with no selected class gives 0.
      axis: the class axis (an int), e.g. 1 for channel-first (N, C, H, W) images; the result
        equals moving it last.

    Returns:
      loss of logits' shape without the class axis; float32 for half-precision inputs.

    Example:
      >>> import jax.numpy as jnp, jaxloss
      >>> jnp.set_printoptions(precision=4)
      >>> logits = jnp.array([[2.0, 0.0, -jnp.inf], [0.0, 1.0, 0.0]])
      >>> labels = jnp.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
      >>> print(jaxloss.softmax_cross_entropy(logits, labels))
      [0.1269 1.0514]
      >>> print(jaxloss.softmax_cross_entropy(logits.T, labels.T, axis=0))
      [0.1269 1.0514]

    Reference: equals `optax.softmax_cross_entropy` (which gives NaN for a -inf logit) and
    `torch.nn.functional.cross_entropy` with probability targets, `weight=` and
    `label_smoothing=`.
    """
    fn = "softmax_cross_entropy"
    logits, labels, where = _probability_axis_last(fn, axis, logits, labels, where)
    logits, labels, dtype = _float_inputs(fn, logits, labels, class_axis=True)
    _checks.non_empty(fn, "logits", logits, axis=-1)
    eps = _scalar_hyper(fn, "label_smoothing", label_smoothing, dtype, low=0, high=1)
    num_classes = logits.shape[-1]
    if where is not None:
        logits, labels, keep, num_classes = _masked_classes(where, logits, labels, dtype)
    _checks.softmax_logits(fn, "logits", logits)
    _checks.probabilities(fn, "labels", labels)
    # A row with a label outside [0, 1] is NaN: added in the value's reduction, select-free.
    nan_if_bad = _nan_outside_01(labels)
    if not (isinstance(label_smoothing, (int, float)) and label_smoothing == 0):
        labels = _smooth(labels, eps, num_classes)
    if where is not None:
        labels = jnp.where(where, labels, 0)
    if class_weights is not None:
        w = _per_class(
            fn, "class_weights", class_weights, logits.shape, dtype, allow_scalar=False, low=0
        )
        labels = labels * w
    loss = _prob_ce(logits, labels, nan_if_bad)
    return loss if where is None else jnp.where(keep[..., 0], loss, 0)


def poly_loss_cross_entropy(
    logits: Any, labels: Any, *, epsilon: Any = 2.0, axis: int = -1, where: Any = None
) -> jax.Array:
    """PolyLoss (Poly-1): cross entropy plus epsilon times the first polynomial term.

    `loss = -sum_c y_c log p_c + epsilon * sum_c y_c (1 - p_c)`, `p = softmax(x)`; for a one-hot
    y this is `-log p_t + epsilon (1 - p_t)`. `1 - p_c` is computed from the other classes' sum
    where p_c > 1/2 (no cancellation as p_c -> 1).

    Args:
      logits: float array (..., C) (the class axis at `axis`); -inf allowed, +inf gives NaN.
      labels: same shape, values in [0, 1] (outside gives NaN).
      epsilon: >= -1 (the paper's range: the coefficients of the (1 - p_t)^j stay non-negative,
        so the loss falls as p_t rises; optax accepts any). 2.0 is the paper's ImageNet value,
        -1 its detection one; 0 is `softmax_cross_entropy`.
      axis: the class axis (an int); the result equals moving it last.
      where: None or a boolean mask of logits' shape (classes kept in the softmax and the sums)
        or of its shape without the class axis (positions kept); as in `softmax_cross_entropy`.

    Returns:
      loss of logits' shape without the class axis; float32 for half-precision inputs.

    Example:
      >>> import jax.numpy as jnp, jaxloss
      >>> jnp.set_printoptions(precision=4)
      >>> logits = jnp.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
      >>> labels = jnp.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
      >>> print(jaxloss.poly_loss_cross_entropy(logits, labels, epsilon=1.0))
      [0.3261 1.6574]

    Reference: Leng et al., "PolyLoss: A Polynomial Expansion Perspective of Classification Loss
    Functions", ICLR 2022 (Poly-1, eq. 3); equals `optax.poly_loss_cross_entropy`.
    """
    fn = "poly_loss_cross_entropy"
    logits, labels, where = _probability_axis_last(fn, axis, logits, labels, where)
    logits, labels, dtype = _float_inputs(fn, logits, labels, class_axis=True)
    _checks.non_empty(fn, "logits", logits, axis=-1)
    eps = _scalar_hyper(fn, "epsilon", epsilon, dtype, low=-1)
    if where is not None:
        logits, labels, keep, _ = _masked_classes(where, logits, labels, dtype)
    _checks.softmax_logits(fn, "logits", logits)
    _checks.probabilities(fn, "labels", labels)
    ce = _prob_ce(logits, labels, _nan_outside_01(labels))
    shifted, e, total, _ = _softmax_terms(logits)
    q = _one_minus_p(e / total, e, total, shifted == 0)
    loss = ce + eps * jnp.sum(labels * q, axis=-1)
    return loss if where is None else jnp.where(keep[..., 0], loss, 0)


def softmax_cross_entropy_with_integer_labels(
    logits: Any,
    labels: Any,
    *,
    label_smoothing: Any = 0.0,
    class_weights: Any = None,
    ignore_index: int | None = None,
    where: Any = None,
    axis: int = -1,
) -> jax.Array:
    """Cross entropy of softmax(logits) against integer class labels, without a one-hot array.

    `loss = (1 - eps) * w_y * (-log p_y) + eps / C * sum_c w_c * (-log p_c)`, `p = softmax(x)`,
    `eps = label_smoothing`; 0 where `labels == ignore_index`.

    Args:
      logits: float array (..., C) (the class axis at `axis`); -inf allowed, +inf gives NaN.
      labels: integer array of logits' shape without the class axis, values in [0, C) or
        `ignore_index`; any other value gives NaN (optax silently reads -1 as the last class).
      label_smoothing: in [0, 1].
      class_weights: None or (C,) non-negative weights w_c.
      ignore_index: None or an int; those positions give 0 with zero gradient.
      where: None or a boolean mask, as in `optax.softmax_cross_entropy_with_integer_labels`:
        of labels' shape, positions left out (0 with zero gradient, like `ignore_index`); or of
        logits' shape, classes left out of the softmax (smoothing spreads over the C' kept
        ones), a position with none kept gives 0, and a label on a left-out class gives NaN
        (optax returns logsumexp of the kept logits minus the label's logit, possibly < 0).
      axis: the class axis of logits (an int), e.g. 1 for (N, C, H, W) logits with (N, H, W)
        labels; the result equals moving it last.

    Returns:
      loss of labels' shape; float32 for half-precision inputs.

    Example:
      >>> import jax.numpy as jnp, jaxloss
      >>> jnp.set_printoptions(precision=4)
      >>> logits = jnp.array([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
      >>> print(jaxloss.softmax_cross_entropy_with_integer_labels(
      ...     logits, jnp.array([0, -100, 1]), ignore_index=-100, label_smoothing=0.1))
      [0.2269 0.     0.6931]

    Reference: equals `torch.nn.functional.cross_entropy(logits, labels, reduction='none',
    weight=, ignore_index=, label_smoothing=)` element for element.
    """
    return _integer_ce(
        "softmax_cross_entropy_with_integer_labels",
        logits,
        labels,
        label_smoothing=label_smoothing,
        class_weights=class_weights,
        ignore_index=ignore_index,
        axis=axis,
        where=where,
    )


def _integer_ce(
    fn,
    logits,
    labels,
    *,
    label_smoothing=0.0,
    class_weights=None,
    ignore_index=None,
    axis=-1,
    where=None,
):
    """`softmax_cross_entropy_with_integer_labels` for the public function `fn`."""
    logits, positions, classes = _integer_axis_last(fn, axis, logits, labels, where)
    logits, labels, safe, ignored, bad = _integer_inputs(
        fn, logits, labels, ignore_index, positions, classes
    )
    dtype = logits.dtype
    smooth = not (isinstance(label_smoothing, (int, float)) and label_smoothing == 0)
    eps = _scalar_hyper(fn, "label_smoothing", label_smoothing, dtype, low=0, high=1)
    w = None
    if class_weights is not None:
        w = _per_class(
            fn,
            "class_weights",
            class_weights,
            (logits.shape[-1],),
            dtype,
            allow_scalar=False,
            low=0,
        )
    masked = ignore_index is not None or positions is not None or classes is not None
    keep = ~ignored if masked else None
    nan_if_bad = jnp.where(bad, jnp.nan, 0).astype(dtype)
    if classes is None:
        loss = _int_ce((smooth, w is not None), logits, labels, safe, nan_if_bad, keep, eps, w)
    else:
        loss = _class_masked_int_ce(logits, safe, ignored, nan_if_bad, classes, smooth, eps, w)
    # Bad labels are NaN already; the select only where there are ignored positions.
    return jnp.where(ignored, 0, loss) if masked else loss


def _class_masked_int_ce(logits, safe, ignored, nan_if_bad, classes, smooth, eps, w):
    """The integer-label cross entropy with the classes outside `classes` left out of the softmax
    (and smoothing spread over the C' kept ones), through the probability-label core: a rare
    option, so its one-hot labels are worth the simplicity. Ignored positions compute on zeros."""
    z = jnp.where(ignored[..., None], 0, jnp.where(classes, logits, -jnp.inf))
    v = _one_hot(safe, z.shape, z.dtype)
    if smooth:
        count = jnp.maximum(jnp.sum(classes, axis=-1, keepdims=True), 1).astype(z.dtype)
        v = (1 - eps) * v + eps / count * classes
    if w is not None:
        v = v * jnp.broadcast_to(w, z.shape)
    return _prob_ce(z, v, jnp.broadcast_to(nan_if_bad[..., None], z.shape))


def softmax_focal_loss(
    logits: Any, labels: Any, *, alpha: Any = None, gamma: Any = 2.0, axis: int = -1
) -> jax.Array:
    """Multi-class focal loss of softmax(logits) against probability labels.

    `loss = -sum_c alpha_c y_c (1 - p_c)**gamma log p_c`, `p = softmax(x)`, with log(1 - p_c)
    computed in log space (exact even where p_c rounds to 1).

    Args:
      logits: float array (..., C) (the class axis at `axis`); -inf allowed, +inf gives NaN.
      labels: same shape, values in [0, 1] (outside gives NaN).
      alpha: None, a scalar or a per-class vector (C,), non-negative.
      gamma: >= 0; gamma = 0 is `softmax_cross_entropy` (with class_weights=alpha) up to
        rounding.
      axis: the class axis (an int); the result equals moving it last.

    Returns:
      loss of logits' shape without the class axis; float32 for half-precision inputs.

    Example:
      >>> import jax.numpy as jnp, jaxloss
      >>> jnp.set_printoptions(precision=4)
      >>> logits = jnp.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
      >>> labels = jnp.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
      >>> print(jaxloss.softmax_focal_loss(logits, labels))
      [0.0041 0.5313]

    Reference: Lin et al., "Focal Loss for Dense Object Detection", 2017, with the softmax in
    place of the sigmoid; finite gradients for every gamma >= 0, also gamma < 1 as p_c -> 1.
    """
    fn = "softmax_focal_loss"
    logits, labels, _ = _probability_axis_last(fn, axis, logits, labels, None)
    logits, labels, dtype = _softmax_inputs(fn, logits, labels)
    gamma = _scalar_hyper(fn, "gamma", gamma, dtype, low=0)
    shifted, e, total, log_total = _softmax_terms(logits)
    log_q = _log_one_minus_p(e / total, e, log_total, shifted == 0)
    weight = _modulating_factor(log_q, gamma)
    if alpha is not None:
        weight = (
            _per_class(fn, "alpha", alpha, logits.shape, dtype, allow_scalar=True, low=0) * weight
        )
    return _neg_weighted_sum(labels * weight, shifted - log_total)


def softmax_focal_loss_with_integer_labels(
    logits: Any,
    labels: Any,
    *,
    alpha: Any = None,
    gamma: Any = 2.0,
    ignore_index: int | None = None,
    axis: int = -1,
) -> jax.Array:
    """Multi-class focal loss of softmax(logits) against integer class labels.

    `loss = -alpha_y (1 - p_y)**gamma log p_y`, `p = softmax(x)`; 0 where
    `labels == ignore_index`.

    Args:
      logits: float array (..., C) (the class axis at `axis`); -inf allowed, +inf gives NaN.
      labels: integer array of logits' shape without the class axis, values in [0, C) or
        `ignore_index` (anything else gives NaN).
      alpha: None, a scalar or a per-class vector (C,), non-negative.
      gamma: >= 0; gamma = 0 is `softmax_cross_entropy_with_integer_labels` (with
        class_weights=alpha) up to rounding.
      ignore_index: None or an int; those positions give 0 with zero gradient.
      axis: the class axis of logits (an int); the result equals moving it last.

    Returns:
      loss of labels' shape; float32 for half-precision inputs.

    Example:
      >>> import jax.numpy as jnp, jaxloss
      >>> jnp.set_printoptions(precision=4)
      >>> logits = jnp.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
      >>> labels = jnp.array([0, 0])
      >>> print(jaxloss.softmax_focal_loss_with_integer_labels(logits, labels, gamma=0.5))
      [0.0671 1.3773]

    Reference: Lin et al., "Focal Loss for Dense Object Detection", 2017, with the softmax in
    place of the sigmoid; finite gradients for every gamma >= 0, also gamma < 1 as p_y -> 1.
    """
    fn = "softmax_focal_loss_with_integer_labels"
    logits, _, _ = _integer_axis_last(fn, axis, logits, labels)
    logits, _, safe, ignored, bad = _integer_inputs(fn, logits, labels, ignore_index)
    # An ignored position computes on zeros: no NaN from its logits reaches the gradient.
    logits = jnp.where(ignored[..., None], 0, logits)
    dtype = logits.dtype
    gamma = _scalar_hyper(fn, "gamma", gamma, dtype, low=0)
    shifted, e, total, log_total = _softmax_terms(logits)
    p_y = _take(e, safe)[..., None] / total
    weight = _modulating_factor(_log_one_minus_p(p_y, e, log_total, shifted == 0)[..., 0], gamma)
    if alpha is not None:
        a = _per_class(fn, "alpha", alpha, (logits.shape[-1],), dtype, allow_scalar=True, low=0)
        weight = a[safe] * weight
    loss = _neg_weighted(weight, _label_log_prob(shifted, log_total, safe))
    return _integer_result(loss, ignored, bad)
