"""Sparsemax losses and Fenchel-Young losses built from a max function.

The sparsemax (Martins & Astudillo 2016) is the Euclidean projection of scores onto the
probability simplex: like softmax, but it gives exact zeros. Its loss is the Fenchel-Young loss
of the Gini entropy (Blondel et al. 2020), whose gradient is `sparsemax(z) - onehot(y)`; the
binary loss is its two-class case with `sparse_plus` and `sparse_sigmoid`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from jaxloss import _checks
from jaxloss.classification import _one_hot, _take, _times
from jaxloss.margin import _integer_scores, _positive_part


@jax.custom_jvp
def _sparsemax(z: jax.Array) -> jax.Array:
    """Projection of each row (last axis) onto the probability simplex, sort-based.

    With u the scores sorted in decreasing order, the support is the k largest where
    k = max{k : 1 + k u_k > u_1 + ... + u_k}, tau = (u_1 + ... + u_k - 1) / k and
    p = max(z - tau, 0). -inf scores get p = 0; a NaN or +inf score gives NaN.
    """
    # Shifted by the max (sparsemax is shift invariant): u_1 = 0 and the cumulative sums stay
    # small, where optax's, of the raw scores, lose float32 digits for large scores.
    z = z - jnp.max(z, axis=-1, keepdims=True)
    u = -jnp.sort(-z, axis=-1)
    cumsum = jnp.cumsum(u, axis=-1)
    k = 1 + lax.broadcasted_iota(z.dtype, z.shape, z.ndim - 1)
    size = jnp.sum(1 + k * u > cumsum, axis=-1, keepdims=True)  # >= 1: 1 + u_1 > u_1
    tau = (jnp.take_along_axis(cumsum, size - 1, axis=-1) - 1) / size.astype(z.dtype)
    return _positive_part(z - tau)


@_sparsemax.defjvp
def _sparsemax_jvp(primals, tangents):
    (z,), (tz,) = primals, tangents
    p = _sparsemax(z)
    # Jacobian diag(s) - s s^T / |S| on the support s = [p > 0]: the tangent minus its mean over
    # the support, zero off it.
    support = (p > 0).astype(z.dtype)
    mean = jnp.sum(support * tz, axis=-1, keepdims=True) / jnp.sum(support, axis=-1, keepdims=True)
    return p, support * (tz - mean)


@jax.custom_jvp
def _sparsemax_nll(z: jax.Array, label: jax.Array) -> jax.Array:
    """sum_j p_j (z_j - z_y) + (1 - sum_j p_j^2) / 2, p = sparsemax(z): the Fenchel-Young loss
    Omega*(z) - z_y of the Gini entropy, written with score differences (shift invariant; 0 where
    p_j = 0, also for a -inf score)."""
    p = _sparsemax(z)
    gaps = jnp.where(p > 0, z - _take(z, label)[..., None], 0)
    return jnp.sum(p * gaps, axis=-1) + (1 - jnp.sum(p * p, axis=-1)) / 2


@_sparsemax_nll.defjvp
def _sparsemax_nll_jvp(primals, tangents):
    z, label = primals
    tz, _ = tangents
    # d/dz = sparsemax(z) - onehot(y): exact, and its own derivative is sparsemax's Jacobian.
    grad = _sparsemax(z) - _one_hot(label, z.shape, z.dtype)
    return _sparsemax_nll(z, label), jnp.sum(grad * tz, axis=-1)


def sparsemax_loss(logits: Any, labels: Any) -> jax.Array:
    """Elementwise binary sparsemax loss: zero exactly where `sparse_sigmoid(logits) == labels`.

    With `x = logits`, `y = labels`: `loss = sparse_plus(x) - x y + y (y - 1)`, computed as
    `((c + 1) / 2 - y)**2 + (1 - y) max(x - 1, 0) + y max(-1 - x, 0)`, `c = clip(x, -1, 1)`
    (no inf - inf at x = ±inf). For y = 1 it is `sparse_plus(-x)`, for y = 0 `sparse_plus(x)`;
    its gradient is `sparse_sigmoid(x) - y`, `sparse_sigmoid(x) = clip((x + 1) / 2, 0, 1)`.

    Args:
      logits: float array x of any shape; ±inf allowed.
      labels: array of the same shape with values in [0, 1]: 0/1 labels (integer, bool or
        float), or soft labels (the Fenchel-Young loss, Blondel et al. 2020, Sec. 4.4, whose
        minimum 0 is at `sparse_sigmoid(x) = y`). A value outside [0, 1] gives NaN (optax reads
        any non-zero label as 1) and `jaxloss.checked` raises.

    Returns:
      loss of logits' shape; float32 for half-precision inputs.

    Example:
      >>> import jax.numpy as jnp, jaxloss
      >>> logits = jnp.array([2.0, 0.0, 0.0, -jnp.inf])
      >>> print(jaxloss.sparsemax_loss(logits, jnp.array([1.0, 1.0, 0.5, 0.0])))
      [0.   0.25 0.   0.  ]

    Reference: Blondel, Martins & Niculae, "Learning with Fenchel-Young losses", JMLR 2020;
    equals `optax.losses.sparsemax_loss` for 0/1 labels.
    """
    fn = "sparsemax_loss"
    x, y = _checks.float_pair(fn, "logits", logits, "labels", labels)
    _checks.not_nan(fn, "logits", x)
    _checks.probabilities(fn, "labels", y)
    return _binary_sparsemax(x, y)


@jax.jit  # as margin's cores: one compilation un-jitted; the checks stay outside
def _binary_sparsemax(x: jax.Array, y: jax.Array) -> jax.Array:
    # Branches, not clip/maximum: their ties would halve the slope at x = ±1.
    above, below = x > 1, x < -1
    c = jnp.where(above, 1, jnp.where(below, -1, x))
    tails = _times(1 - y, jnp.where(above, x - 1, 0)) + _times(y, jnp.where(below, -1 - x, 0))
    loss = jnp.square((c + 1) / 2 - y) + tails
    return jnp.where((y >= 0) & (y <= 1), loss, jnp.nan)


def multiclass_sparsemax_loss(scores: Any, labels: Any) -> jax.Array:
    """Multiclass sparsemax loss over the last axis, against integer labels.

    `loss = -z_y + (1/2) sum_{j in S} (z_j**2 - tau**2) + 1/2`, with S and tau the support and
    threshold of `p = sparsemax(z)`, computed as `sum_j p_j (z_j - z_y) + (1 - |p|**2) / 2`.
    Its gradient is `p - onehot(y)`, exact (a custom JVP), and zero exactly when p is the label's
    one-hot: at a margin of 1 over every other class.

    Args:
      scores: float array (..., C), C >= 1; -inf allowed (a class switched off), +inf gives NaN.
      labels: integer array of shape scores.shape[:-1], values in [0, C); any other value gives
        NaN and `jaxloss.checked` raises.

    Returns:
      loss of shape scores.shape[:-1] (one sample (C,) with a scalar label too, which optax's
      vmap rejects); float32 for half-precision inputs.

    Example:
      >>> import jax.numpy as jnp, jaxloss
      >>> jnp.set_printoptions(precision=4)
      >>> scores = jnp.array([[2.0, 0.5, 1.8], [1.0, 0.0, -jnp.inf]])
      >>> print(jaxloss.multiclass_sparsemax_loss(scores, jnp.array([0, 1])))
      [0.16 1.  ]

    Reference: Martins & Astudillo, "From softmax to sparsemax: a sparse model of attention and
    multi-label classification", ICML 2016 (Eq. 18); equals
    `optax.losses.multiclass_sparsemax_loss`, which loses float32 digits for large scores (its
    projection's cumulative sums are of the raw scores) and reads a label out of range as a
    class.
    """
    fn = "multiclass_sparsemax_loss"
    scores, safe, bad = _integer_scores(fn, scores, labels)
    _checks.runtime_check(fn, scores < jnp.inf, "`scores` contains +inf.")
    return _multiclass_sparsemax(scores, safe, bad)


@jax.jit  # the sort-based projection is some 40 operations: one compilation un-jitted
def _multiclass_sparsemax(scores: jax.Array, safe: jax.Array, bad: jax.Array) -> jax.Array:
    return jnp.where(bad, jnp.nan, _sparsemax_nll(scores, safe))


def make_fenchel_young_loss(max_fun: Callable[..., Any]) -> Callable[..., jax.Array]:
    """A Fenchel-Young loss `max_fun(scores) - <targets, scores>` over the last axis.

    `max_fun` is a regularised max (the convex conjugate Omega* of a regulariser): `logsumexp`
    gives the softmax cross entropy, the sparsemax conjugate the sparsemax loss. As in optax, the
    constant Omega(targets) is left out (it is 0 for one-hot targets of either).

    Args:
      max_fun: a function of one row of scores (C,) to a scalar, called as
        `max_fun(row, *args, **kwargs)` with the loss's extra arguments passed unchanged.

    Returns:
      `fenchel_young_loss(scores, targets, *args, **kwargs)`: scores a float array (..., C),
      targets of the same shape; returns shape scores.shape[:-1] (max_fun mapped over the leading
      axes). A target of 0 takes no part of a -inf score (optax's dot product gives NaN there).

    Example:
      >>> import jax.numpy as jnp, jaxloss
      >>> jnp.set_printoptions(precision=4)
      >>> loss = jaxloss.make_fenchel_young_loss(jax.scipy.special.logsumexp)
      >>> scores = jnp.array([[2.0, 0.0, -jnp.inf], [0.0, 0.0, 0.0]])
      >>> print(loss(scores, jnp.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])))
      [0.1269 1.0986]

    Reference: Blondel, Martins & Niculae, "Learning with Fenchel-Young losses", JMLR 2020;
    equals `optax.losses.make_fenchel_young_loss` without extra arguments. optax's `jnp.vectorize`
    silently drops keyword arguments (`b=` never reaches `logsumexp`) and rejects positional ones
    (a TypeError): here both reach `max_fun`.
    """
    if not callable(max_fun):
        raise TypeError(
            f"jaxloss.make_fenchel_young_loss: `max_fun` must be a function of a score vector; "
            f"got {max_fun!r}."
        )
    fn = f"make_fenchel_young_loss({getattr(max_fun, '__name__', 'max_fun')})"

    def value(scores, targets, *args, **kwargs):
        row_max = jnp.vectorize(lambda row: max_fun(row, *args, **kwargs), signature="(n)->()")
        return row_max(scores) - jnp.sum(_times(targets, scores), axis=-1)

    # Without extra arguments (which may be static, like an axis), one compiled program: an
    # un-jitted call then compiles once, not once per operation.
    plain = jax.jit(value)

    def fenchel_young_loss(scores: Any, targets: Any, *args: Any, **kwargs: Any) -> jax.Array:
        """`max_fun(scores) - <targets, scores>` over the last axis."""
        scores, targets = _checks.float_pair(fn, "scores", scores, "targets", targets)
        _checks.has_class_axis(fn, "scores", scores)
        return value(scores, targets, *args, **kwargs) if args or kwargs else plain(scores, targets)

    return fenchel_young_loss
