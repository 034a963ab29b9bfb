"""Classification losses: sigmoid and softmax cross entropy, integer labels, label smoothing, focal.

Every loss takes one sample's logits (class axis last for the softmax losses) and labels, and
returns one value per position: the sigmoid losses are elementwise, the softmax losses reduce the
class axis. All are stable in log space: logits of +-inf give the limit of the loss (or NaN where
the limit is undefined), and gradients stay finite wherever the loss is finite.
"""

from __future__ import annotations

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
    return c * jnp.where((c == 0) & ~jnp.isnan(v), 0, v)


def _smooth(labels: jax.Array, eps: jax.Array, num_classes: Any) -> jax.Array:
    return (1 - eps) * labels + eps / num_classes


def _softmax_logits_check(fn: str, logits: jax.Array) -> None:
    # -inf is a masked class; +inf has no limit (inf - inf), so it gives NaN like NaN does.
    _checks.runtime_check(fn, logits < jnp.inf, "`logits` contains NaN or +inf.")


def _modulating_factor(log_q: jax.Array, gamma: jax.Array) -> jax.Array:
    """q**gamma from log q, with 0**0 = 1 and no gradient through log q = -inf.

    Through log q the derivative is gamma * q**gamma * d(log q), finite even for gamma < 1 where
    d(q**gamma)/dq is infinite at q = 0 (torchvision's NaN)."""
    zero = log_q == -jnp.inf
    safe = jnp.where(zero, 0, log_q)
    return jnp.where(zero, (gamma == 0).astype(log_q.dtype), jnp.exp(gamma * safe))


# ------------------------------------------------------------------------------- sigmoid core


def _softplus_pair(x: jax.Array):
    """softplus(x), softplus(-x), sigmoid(x), sigmoid(-x) from one exp and one log1p."""
    pos = x >= 0
    # |x| through `where`, not `abs`: its derivative at 0 is the branch's, so second derivatives
    # (Hessian-vector products) are right at x = 0.
    e = jnp.exp(-jnp.where(pos, x, -x))
    t = jnp.log1p(e)
    r = 1 / (1 + e)
    sp_pos = jnp.where(pos, x, 0) + t  # = -log(1 - sigmoid(x)), +inf at x = +inf
    sp_neg = jnp.where(pos, 0, -x) + t  # = -log sigmoid(x)
    return sp_pos, sp_neg, jnp.where(pos, r, e * r), jnp.where(pos, e * r, r)


def _bce_value(y, pw, sp_pos, sp_neg):
    return _times(pw * y, sp_neg) + _times(1 - y, sp_pos)


@jax.custom_jvp
def _bce(x: jax.Array, y: jax.Array, pw: jax.Array) -> jax.Array:
    """-[pw y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))], all arguments of one shape."""
    sp_pos, sp_neg, _, _ = _softplus_pair(x)
    return _bce_value(y, pw, sp_pos, sp_neg)


def _bce_jvp(primals, tangents):
    # d/dx = (1 - y) sigmoid(x) - pw y sigmoid(-x) reuses the forward exp; finite at x = +-inf.
    x, y, pw = primals
    tx, ty, tpw = tangents
    sp_pos, sp_neg, sig_pos, sig_neg = _softplus_pair(x)
    out = _bce_value(y, pw, sp_pos, sp_neg)
    t = jnp.zeros_like(out)
    if not isinstance(tx, SymbolicZero):
        t = t + ((1 - y) * sig_pos - pw * y * sig_neg) * tx
    # Label tangents only when asked for: d/dy is infinite at x = +-inf.
    if not isinstance(ty, SymbolicZero):
        t = t + (pw * sp_neg - sp_pos) * ty
    if not isinstance(tpw, SymbolicZero):
        t = t + _times(y, sp_neg) * tpw
    return out, t


_bce.defjvp(_bce_jvp, symbolic_zeros=True)


def _log_one_minus_pt_parts(x: jax.Array, y: jax.Array):
    """log((1 - y) sigmoid(x)) and log(1 - p_t) = log((1 - y) sigmoid(x) + y sigmoid(-x)), with
    the sigmoids, from the softplus pair the cross entropy also uses (XLA computes it once)."""
    sp_pos, sp_neg, sig_pos, sig_neg = _softplus_pair(x)
    a = jnp.log1p(-y) - sp_neg
    # Exactly -softplus(+-x) for hard labels; never underflows to -inf for finite x.
    return a, jnp.logaddexp(a, jnp.log(y) - sp_pos), sig_pos, sig_neg


@jax.custom_jvp
def _log_one_minus_pt(x: jax.Array, y: jax.Array) -> jax.Array:
    return _log_one_minus_pt_parts(x, y)[1]


def _log_one_minus_pt_jvp(primals, tangents):
    # d/dx = w sigmoid(-x) - (1 - w) sigmoid(x) with w = exp(a - l), d/dy = (sigmoid(-x) -
    # sigmoid(x)) / (1 - p_t): finite at y = 0 and 1, where autodiff of log1p(-y) gives 0 * inf.
    x, y = primals
    tx, ty = tangents
    a, out, sig_pos, sig_neg = _log_one_minus_pt_parts(x, y)
    t = jnp.zeros_like(out)
    if not isinstance(tx, SymbolicZero):
        w = jnp.exp(a - out)
        t = t + (w * sig_neg - (1 - w) * sig_pos) * tx
    if not isinstance(ty, SymbolicZero):
        t = t + (sig_neg - sig_pos) * jnp.exp(-out) * ty
    return out, t


_log_one_minus_pt.defjvp(_log_one_minus_pt_jvp, symbolic_zeros=True)


def _sigmoid_inputs(fn: str, logits: Any, labels: Any):
    logits, labels, dtype = _float_inputs(fn, logits, labels, class_axis=False)
    _checks.not_nan(fn, "logits", logits)
    return logits, _probability_labels(fn, labels), dtype


# ------------------------------------------------------------------------------- softmax core


def _softmax_terms(z: jax.Array):
    """shifted = z - max z, e = exp(shifted), total = sum e (keepdims) and log(total): log p =
    shifted - log(total). One exp per element."""
    shifted = z - lax.stop_gradient(jnp.max(z, axis=-1, keepdims=True))
    e = jnp.exp(shifted)
    total = jnp.sum(e, axis=-1, keepdims=True)
    return shifted, e, total, jnp.log(total)


def _label_log_prob(shifted, log_total, labels):
    """log p of each position's label, without a full log-softmax array."""
    return _take(shifted, labels) - log_total[..., 0]


def _log_one_minus_p(p, e, log_total, at_max):
    """log(1 - p) for softmax probabilities p (every class's, or the label's).

    log1p(-p) is accurate for p <= 1/2. A p > 1/2 is the unique max class's, and for it 1 - p is
    the other classes' sum of e over the total: exact where 1 - p rounds to 0 (p -> 1).
    """
    rest = jnp.sum(jnp.where(at_max, 0, e), axis=-1, keepdims=True)
    some = rest > 0
    log_rest = jnp.where(some, jnp.log(jnp.where(some, rest, 1)), -jnp.inf) - log_total
    big = p > 0.5
    return jnp.where(big, log_rest, jnp.log1p(-jnp.where(big, 0, p)))


def _neg_weighted_sum(weight: jax.Array, logp: jax.Array) -> jax.Array:
    """-sum_c weight_c logp_c with 0 * (-inf) = 0 (a class with zero weight may have logit -inf)."""
    return -jnp.sum(_times(weight, logp), axis=-1)


def _neg_weighted(weight: jax.Array, logp: jax.Array) -> jax.Array:
    return -_times(weight, logp)


def _softmax_inputs(fn, logits, labels):
    logits, labels, dtype = _float_inputs(fn, logits, labels, class_axis=True)
    _checks.non_empty(fn, "logits", logits, axis=-1)
    _softmax_logits_check(fn, logits)
    return logits, _probability_labels(fn, labels), dtype


def _integer_inputs(fn, logits, labels, ignore_index):
    """Checked logits and labels; positions to ignore (0 with zero gradient) and out-of-range
    labels (NaN), with safe stand-ins for both so the gradient stays clean."""
    logits = _checks.as_logits(fn, "logits", logits)
    labels = _checks.as_integer_labels(fn, "labels", labels)
    _checks.integer_labels_shape(fn, logits, labels)
    _checks.non_empty(fn, "logits", logits, axis=-1)
    if ignore_index is not None:
        # Compared with int32 labels: 2**40 would overflow, True would mean class 1.
        ignore_index = _checks.int32(fn, "ignore_index", ignore_index)
    num_classes = logits.shape[-1]
    ignored = jnp.zeros(labels.shape, bool) if ignore_index is None else labels == ignore_index
    bad = ((labels < 0) | (labels >= num_classes)) & ~ignored
    _checks.runtime_check(
        fn, ~bad, f"`labels` has values outside [0, {num_classes}) other than ignore_index."
    )
    # An ignored position computes on zeros: no NaN from its logits reaches the gradient.
    logits = jnp.where(ignored[..., None], 0, logits)
    _softmax_logits_check(fn, logits)
    safe = jnp.where(ignored | bad, 0, labels)
    return logits, safe, ignored, bad


def _integer_result(loss, ignored, bad):
    return jnp.where(ignored, 0, jnp.where(bad, jnp.nan, loss))


def _take(x: jax.Array, labels: jax.Array) -> jax.Array:
    return jnp.take_along_axis(x, labels[..., None], axis=-1)[..., 0]


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
    return _bce(logits, _smooth(labels, eps, 2), pw)


def sigmoid_focal_loss(
    logits: Any, labels: Any, *, alpha: Any = None, gamma: Any = 2.0
) -> jax.Array:
    """Elementwise focal loss of sigmoid(logits) against (soft) labels (Lin et al. 2017).

    `loss = alpha_t * (1 - p_t)**gamma * bce(x, y)` with `p = sigmoid(x)`,
    `p_t = p y + (1 - p)(1 - y)`, `alpha_t = alpha y + (1 - alpha)(1 - y)` (1 if alpha is None),
    computed as `exp(gamma * log(1 - p_t))` with `log(1 - p_t)` from log-sigmoids.

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
    gamma = _scalar_hyper(fn, "gamma", gamma, dtype, low=0)
    # 1 - p_t = 0 only at x = +inf with y = 1 or x = -inf with y = 0, where the loss is 0:
    # compute elsewhere on a stand-in so no NaN reaches the gradient ("double where").
    done = ((logits == jnp.inf) & (labels == 1)) | ((logits == -jnp.inf) & (labels == 0))
    x = jnp.where(done, 0, logits)
    ce = _bce(x, labels, jnp.ones_like(x))
    loss = ce * _modulating_factor(_log_one_minus_pt(x, labels), gamma)
    if alpha is not None:
        a = _per_class(fn, "alpha", alpha, x.shape, dtype, allow_scalar=True, low=0, high=1)
        loss = (a * labels + (1 - a) * (1 - labels)) * loss
    return jnp.where(done, 0, loss)


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
) -> jax.Array:
    """Cross entropy of softmax(logits) against probability labels, over the last axis.

    `loss = -sum_c w_c y_c log softmax(x)_c` with `y = (1 - label_smoothing) labels +
    label_smoothing / C`; a class whose label (after smoothing) is 0 contributes 0 even if its
    logit is -inf.

    Args:
      logits: float array (..., C); -inf allowed (a masked class), +inf gives NaN.
      labels: same shape, values in [0, 1] (outside gives NaN).
      label_smoothing: in [0, 1].
      class_weights: None or (C,) non-negative weights w_c.
      where: None or a boolean mask of logits' shape: classes left out of the softmax and of the
        sum (as in `optax.softmax_cross_entropy(where=)`); smoothing then spreads over the C'
        selected classes. A position with no selected class gives 0.

    Returns:
      loss of shape logits.shape[:-1]; float32 for half-precision inputs.

    Example:
      >>> import jax.numpy as jnp, jaxloss
      >>> jnp.set_printoptions(precision=4)
      >>> logits = jnp.array([[2.0, 0.0, -jnp.inf], [0.0, 1.0, 0.0]])
      >>> labels = jnp.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
      >>> print(jaxloss.softmax_cross_entropy(logits, labels))
      [0.1269 1.0514]

    Reference: equals `optax.softmax_cross_entropy` (which gives NaN for a -inf logit) and
    `torch.nn.functional.cross_entropy` with probability targets, `weight=` and
    `label_smoothing=`.
    """
    fn = "softmax_cross_entropy"
    logits, labels, dtype = _float_inputs(fn, logits, labels, class_axis=True)
    _checks.non_empty(fn, "logits", logits, axis=-1)
    eps = _scalar_hyper(fn, "label_smoothing", label_smoothing, dtype, low=0, high=1)
    num_classes = logits.shape[-1]
    if where is not None:
        where = jnp.asarray(where)
        _checks.mask_shape(fn, "where", where, logits.shape)
        keep = jnp.any(where, axis=-1, keepdims=True)
        # Masked classes leave the softmax (their values are never looked at); an all-masked
        # position computes on zeros.
        logits = jnp.where(keep, jnp.where(where, logits, -jnp.inf), 0)
        labels = jnp.where(where, labels, 0)
        num_classes = jnp.maximum(jnp.sum(where, axis=-1, keepdims=True), 1).astype(dtype)
    _softmax_logits_check(fn, logits)
    labels = _smooth(_probability_labels(fn, labels), eps, num_classes)
    if where is not None:
        labels = jnp.where(where, labels, 0)
    if class_weights is not None:
        w = _per_class(
            fn, "class_weights", class_weights, logits.shape, dtype, allow_scalar=False, low=0
        )
        labels = labels * w
    shifted, _, _, log_total = _softmax_terms(logits)
    loss = _neg_weighted_sum(labels, shifted - log_total)
    return loss if where is None else jnp.where(keep[..., 0], loss, 0)


def softmax_cross_entropy_with_integer_labels(
    logits: Any,
    labels: Any,
    *,
    label_smoothing: Any = 0.0,
    class_weights: Any = None,
    ignore_index: int | None = None,
) -> jax.Array:
    """Cross entropy of softmax(logits) against integer class labels, without a one-hot array.

    `loss = (1 - eps) * w_y * (-log p_y) + eps / C * sum_c w_c * (-log p_c)`, `p = softmax(x)`,
    `eps = label_smoothing`; 0 where `labels == ignore_index`.

    Args:
      logits: float array (..., C); -inf allowed, +inf gives NaN.
      labels: integer array of shape logits.shape[:-1], values in [0, C) or `ignore_index`;
        any other value gives NaN (optax silently reads -1 as the last class).
      label_smoothing: in [0, 1].
      class_weights: None or (C,) non-negative weights w_c.
      ignore_index: None or an int; those positions give 0 with zero gradient.

    Returns:
      loss of shape logits.shape[:-1]; float32 for half-precision inputs.

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
    )


def _integer_ce(fn, logits, labels, *, label_smoothing=0.0, class_weights=None, ignore_index=None):
    """`softmax_cross_entropy_with_integer_labels` for the public function `fn`."""
    logits, safe, ignored, bad = _integer_inputs(fn, logits, labels, ignore_index)
    dtype = logits.dtype
    num_classes = logits.shape[-1]
    eps = _scalar_hyper(fn, "label_smoothing", label_smoothing, dtype, low=0, high=1)
    shifted, _, _, log_total = _softmax_terms(logits)
    logp_y = _label_log_prob(shifted, log_total, safe)
    # The smoothing term sum_c w_c (-log p_c) = (sum_c w_c) log(total) - sum_c w_c shifted_c:
    # a logsumexp-based sum of same-sign terms, no smoothed label array.
    if class_weights is None:
        nll = -logp_y
        smooth = num_classes * log_total[..., 0] - jnp.sum(shifted, axis=-1)
    else:
        w = _per_class(
            fn, "class_weights", class_weights, (num_classes,), dtype, allow_scalar=False, low=0
        )
        nll = _neg_weighted(w[safe], logp_y)
        smooth = jnp.sum(w) * log_total[..., 0] + _neg_weighted_sum(
            jnp.broadcast_to(w, shifted.shape), shifted
        )
    loss = _times(1 - eps, nll) + _times(eps / num_classes, smooth)
    return _integer_result(loss, ignored, bad)


def softmax_focal_loss(
    logits: Any, labels: Any, *, alpha: Any = None, gamma: Any = 2.0
) -> jax.Array:
    """Multi-class focal loss of softmax(logits) against probability labels.

    `loss = -sum_c alpha_c y_c (1 - p_c)**gamma log p_c`, `p = softmax(x)`, with log(1 - p_c)
    computed in log space (exact even where p_c rounds to 1).

    Args:
      logits: float array (..., C); -inf allowed, +inf gives NaN.
      labels: same shape, values in [0, 1] (outside gives NaN).
      alpha: None, a scalar or a per-class vector (C,), non-negative.
      gamma: >= 0; gamma = 0 is `softmax_cross_entropy` (with class_weights=alpha) exactly.

    Returns:
      loss of shape logits.shape[:-1]; float32 for half-precision inputs.

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
) -> jax.Array:
    """Multi-class focal loss of softmax(logits) against integer class labels.

    `loss = -alpha_y (1 - p_y)**gamma log p_y`, `p = softmax(x)`; 0 where
    `labels == ignore_index`.

    Args:
      logits: float array (..., C); -inf allowed, +inf gives NaN.
      labels: integer array of shape logits.shape[:-1], values in [0, C) or `ignore_index`
        (anything else gives NaN).
      alpha: None, a scalar or a per-class vector (C,), non-negative.
      gamma: >= 0; gamma = 0 is `softmax_cross_entropy_with_integer_labels` (with
        class_weights=alpha) exactly.
      ignore_index: None or an int; those positions give 0 with zero gradient.

    Returns:
      loss of shape logits.shape[:-1]; float32 for half-precision inputs.

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
    logits, safe, ignored, bad = _integer_inputs(fn, logits, labels, ignore_index)
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
